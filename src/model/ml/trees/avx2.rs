//! Tree walking with AVX2 gathers: the block's rows eight to a vector, its eight
//! vectors stepping together so that their gathers overlap.
//!
//! Nodes are repacked into 8 bytes (threshold; missing flag, distance to `next`
//! and feature), so a step is one 64-bit gather per lane for the node, one 32-bit
//! gather for the lane's feature value, a compare, and a blend between the "true"
//! child (one node on) and `next`. The first steps need no node gather: every lane
//! starts on the root, and the next two levels are tables a lane indexes by its
//! path with a permute ([`Top`]). It reaches the same leaves as the scalar walk of
//! [`super::Ensemble::leaves`]; unit tests hold the two together.
//!
//! Set splits (XGBoost's and LightGBM's categorical splits, ONNX's `BRANCH_MEMBER`
//! beside one comparison) step the same way: a member node's threshold is a NaN
//! whose payload names its set, so the comparison alone never takes its "true"
//! child; where a lane is on one, the value's category (the set's [`Rule`]) picks a
//! bit from the set's words with one more gather, and a member takes the "true"
//! child. Sets whose members are not all small non-negative integers (bits) leave
//! the ensemble to the scalar walk. The member test runs at every step, branch
//! free: skipping it where no lane was on a set was slower (XGBoost, 100 trees of
//! depth 6 with categorical splits, 1 thread: 1.45M rows/s with the skip, 1.85M
//! without; the scalar walk 0.32M).
//!
//! Measured on the benchmark's random forest (100 trees of depth 10, one thread,
//! `batchinfer bench`): 550k rows/s scalar, 800k with 32-bit gathers, 910k with
//! the packed nodes and the root step, 1.08M with the tables. AVX-512 (sixteen
//! lanes), a feature-major copy of the block, and a third table level were no
//! faster on this machine (AMD Zen 4).

use super::sets::{Rule, Set};
use super::{Node, FEATURE, MISSING_TRUE, ROW_BLOCK, SET_PAYLOAD};

/// Walks the `ROW_BLOCK` rows of one block through one tree; writes their leaves.
///
/// Arguments: the packed nodes, the bits of a packed node's feature, the tree, the
/// block's first value, each row's offset from it, the leaves to fill, and the
/// sets member nodes test.
type Walk = unsafe fn(&[Packed], u32, Tree, *const f32, &Offsets, &mut Leaves, &Sets);
pub(super) type Offsets = [i32; ROW_BLOCK];
pub(super) type Leaves = [u32; ROW_BLOCK];

/// One tree, as the walker keeps it.
#[derive(Debug)]
struct Planted {
    root: u32,
    /// Its shortest and longest root-to-leaf path.
    depth: (u32, u32),
    top: Top,
}

/// One tree, as the walk needs it (passed by value: passing a reference to a
/// [`Planted`] made the forest's walk 8-15% slower, 4 runs alternately).
#[derive(Clone, Copy)]
struct Tree<'a> {
    root: u32,
    top: &'a Top,
    depth: (u32, u32),
}

/// A node in 8 bytes: its threshold's bits, then `MISSING_TRUE`, the distance to
/// `next` and the feature, packed so that a step gathers two values per node.
type Packed = [u32; 2];

/// The member bits of every set, as 32-bit words, each set padded to the same
/// `width` in words: set `s` starts at word `s * width`. The walk's member node
/// carries that word index plus 1 in its threshold's payload, so a step finds the
/// set's word with no gather but the word's own.
#[derive(Debug, Default)]
struct Sets {
    words: Vec<u32>,
    /// The bits each set holds (`width` × 32).
    bits: u32,
}

/// The most words the padded sets may take (16 MiB), and so the largest payload.
const MAX_SET_WORDS: usize = 1 << 22;

impl Sets {
    /// The sets' table and their one rule; None where a set holds members other
    /// than bits, the sets' rules differ, or the padded sets would be too large.
    fn new(sets: &[Set]) -> Option<(Sets, Option<Rule>)> {
        let rule = sets.first().map(Set::rule);
        let set_bits: Vec<_> = sets
            .iter()
            .map(|set| set.bits_only().filter(|_| Some(set.rule()) == rule))
            .collect::<Option<_>>()?;
        let width = set_bits.iter().map(|b| b.len() * 2).max().unwrap_or(0);
        // Payloads are word index + 1 and must leave the leaves' payload 0 alone.
        if sets.len() * width >= MAX_SET_WORDS - 1 {
            return None;
        }
        let mut words = vec![0u32; sets.len() * width];
        for (s, bits) in set_bits.iter().enumerate() {
            for (w, &word) in bits.iter().enumerate() {
                words[s * width + 2 * w] = word as u32;
                words[s * width + 2 * w + 1] = (word >> 32) as u32;
            }
        }
        let bits = u32::try_from(width * 32).ok()?;
        Some((Sets { words, bits }, rule))
    }

    /// The walk's threshold for a node whose threshold is `t`: a member node's
    /// names its set's first word instead of the set.
    fn threshold(&self, t: f32) -> u32 {
        let payload = (t.to_bits() & SET_PAYLOAD) as usize;
        if !t.is_nan() || payload == 0 {
            return t.to_bits();
        }
        let first = (payload - 1) * (self.bits as usize / 32);
        f32::NAN.to_bits() | (first as u32 + 1)
    }
}

/// Levels below the root that a tree's [`Top`] tabulates.
const TOP_LEVELS: usize = 2;

/// The first levels of a tree as lookup tables. A lane's path there (one bit per
/// level, 1 where it did not take the "true" child) picks its node with a permute
/// instead of a gather.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
struct Top {
    /// For levels 1..=TOP_LEVELS, each path's packed node (threshold, then meta).
    node: [[[u32; 8]; 2]; TOP_LEVELS],
    /// Each path's node index one level further down.
    below: [u32; 8],
}

/// The nodes packed for the AVX2 walk, the trees' top levels, and the walk for
/// their comparison.
#[derive(Debug)]
pub(super) struct Walker {
    nodes: Vec<Packed>,
    trees: Vec<Planted>,
    feature_bits: u32,
    sets: Sets,
    walk: Walk,
}

impl Walker {
    /// The AVX2 walker for `nodes` (laid out by [`super::Ensemble::parse`]) and its
    /// trees' `roots` and (shortest, longest) `depths` under `mode`, and the `sets`
    /// their member nodes test (none: every branch compares by `mode`), when this
    /// CPU has AVX2, the indices fit in 32 bits and each node's feature and
    /// distance to `next` in 31, and every set's members are bits; None otherwise
    /// (the caller walks with scalar code). The caller checks that the row offsets
    /// fit too.
    pub(super) fn new(
        nodes: &[Node],
        roots: &[u32],
        depths: &[(u32, u32)],
        mode: super::Mode,
        sets: &[Set],
    ) -> Option<Walker> {
        let (sets, rule) = Sets::new(sets)?;
        let walk = pick(mode, nodes.iter().any(|n| n.meta & MISSING_TRUE != 0), rule)?;
        if nodes.len() >= i32::MAX as usize / 2 {
            return None;
        }
        let bits = |v: u32| u32::BITS - v.leading_zeros();
        let feature_bits = nodes.iter().map(|n| bits(n.meta & FEATURE)).max()?;
        let jump_bits = (nodes.iter().enumerate())
            .map(|(i, n)| bits(n.next.wrapping_sub(i as u32)))
            .max()?;
        if feature_bits + jump_bits > 31
            || nodes.iter().enumerate().any(|(i, n)| (n.next as usize) < i)
        {
            return None;
        }
        let packed: Vec<Packed> = (nodes.iter().enumerate())
            .map(|(i, n)| {
                let jump = n.next - i as u32;
                [
                    sets.threshold(n.threshold),
                    (n.meta & MISSING_TRUE) | jump << feature_bits | (n.meta & FEATURE),
                ]
            })
            .collect();
        let trees = (roots.iter().zip(depths))
            .map(|(&root, &depth)| Planted {
                root,
                depth,
                top: top(nodes, &packed, root),
            })
            .collect();
        Some(Walker {
            nodes: packed,
            trees,
            feature_bits,
            sets,
            walk,
        })
    }

    /// The number of nodes, and so of values [`Walker::add_values`] needs.
    pub(super) fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Walks the block whose first value is `x` through tree number `tree`.
    ///
    /// # Safety
    /// The roots and depths given to `new` are the trees' as `parse` found them, and
    /// for every offset `o` in `offsets` and feature `j` the trees read,
    /// `x.add(o + j)` is readable and `o + j` fits in i32.
    pub(super) unsafe fn leaves(
        &self,
        tree: usize,
        x: *const f32,
        offsets: &Offsets,
        leaves: &mut Leaves,
    ) {
        let t = &self.trees[tree];
        let tree = Tree {
            root: t.root,
            top: &t.top,
            depth: t.depth,
        };
        // SAFETY: `new` checked the CPU and the packing; the caller, the rest.
        unsafe {
            (self.walk)(
                &self.nodes,
                self.feature_bits,
                tree,
                x,
                offsets,
                leaves,
                &self.sets,
            )
        }
    }

    /// Adds each row's leaf value to its sum, `sums[l] += values[leaves[l]]`, eight
    /// rows at a time.
    ///
    /// # Safety
    /// Every leaf is a node index, as [`Walker::leaves`] returns them, and `values`
    /// holds a value for every node ([`Walker::nodes`]).
    pub(super) unsafe fn add_values(
        &self,
        values: &[f32],
        leaves: &Leaves,
        sums: &mut [f32; ROW_BLOCK],
    ) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a Walker exists only where `pick` found AVX2, and the leaves are
        // node indices into `values` (the caller's guarantee).
        unsafe {
            x86::add_values(values.as_ptr(), leaves, sums)
        }
        #[cfg(not(target_arch = "x86_64"))]
        for (sum, &leaf) in sums.iter_mut().zip(leaves) {
            *sum += values[leaf as usize];
        }
    }
}

/// The top levels of the tree at `root`, with the nodes as packed.
fn top(nodes: &[Node], packed: &[Packed], root: u32) -> Top {
    // A leaf's children are the leaf itself, as stepping a leaf stays on it.
    let children = |i: u32| {
        let n = nodes[i as usize];
        if n.next == i {
            [i, i]
        } else {
            [i + 1, n.next]
        }
    };
    let mut level = vec![root];
    let mut top = Top {
        node: [[[0; 8]; 2]; TOP_LEVELS],
        below: [0; 8],
    };
    for k in 0..=TOP_LEVELS {
        level = level.iter().flat_map(|&i| children(i)).collect();
        if k == TOP_LEVELS {
            top.below[..level.len()].copy_from_slice(&level);
        } else {
            for (path, &i) in level.iter().enumerate() {
                let [threshold, meta] = packed[i as usize];
                top.node[k][0][path] = threshold;
                top.node[k][1][path] = meta;
            }
        }
    }
    top
}

/// The walk's `SETS` parameter: no sets, or the rule its sets follow.
const NO_SETS: u8 = 0;
const EXACT: u8 = 1;
const XGBOOST: u8 = 2;
const LIGHTGBM: u8 = 3;

fn pick(mode: super::Mode, any_missing: bool, sets: Option<Rule>) -> Option<Walk> {
    #[cfg(target_arch = "x86_64")]
    {
        use super::Mode;
        use std::arch::x86_64::*;
        if !std::arch::is_x86_feature_detected!("avx2") {
            return None;
        }
        macro_rules! walk {
            ($p:expr, $s:expr) => {
                if any_missing {
                    x86::walk::<{ $p }, true, { $s }> as Walk
                } else {
                    x86::walk::<{ $p }, false, { $s }> as Walk
                }
            };
        }
        // Sets beside LEQ (LightGBM) or LT (XGBoost), as `Ensemble::build` makes them.
        macro_rules! with_sets {
            ($p:expr) => {
                match sets {
                    None => walk!($p, NO_SETS),
                    Some(Rule::Exact) => walk!($p, EXACT),
                    Some(Rule::Xgboost) => walk!($p, XGBOOST),
                    Some(Rule::Lightgbm) => walk!($p, LIGHTGBM),
                }
            };
        }
        return match (mode, sets) {
            (Mode::Leq, _) => Some(with_sets!(_CMP_LE_OQ)),
            (Mode::Lt, _) => Some(with_sets!(_CMP_LT_OQ)),
            (_, Some(_)) => None,
            (Mode::Gte, None) => Some(walk!(_CMP_GE_OQ, NO_SETS)),
            (Mode::Gt, None) => Some(walk!(_CMP_GT_OQ, NO_SETS)),
            (Mode::Eq, None) => Some(walk!(_CMP_EQ_OQ, NO_SETS)),
            (Mode::Neq | Mode::Member | Mode::LeqOrZero | Mode::LeqNotZero | Mode::Leaf, None) => {
                None
            }
        };
    }
    #[allow(unreachable_code)]
    {
        let _ = (mode, any_missing, sets);
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::{FEATURE, ROW_BLOCK, SET_PAYLOAD};
    use super::{
        Leaves, Offsets, Packed, Sets, Tree, EXACT, LIGHTGBM, NO_SETS, TOP_LEVELS, XGBOOST,
    };

    const WIDTH: usize = 8;
    const VECTORS: usize = ROW_BLOCK / WIDTH;

    /// # Safety
    /// The CPU has AVX2 ([`super::pick`] checks). `nodes` are packed by
    /// [`super::Walker::new`] from a layout where a branch's "true" child follows
    /// it and its `next` is in range, and a leaf's `next` is itself with a NaN
    /// threshold and feature 0; `root` is a tree's root. For every row offset `o`
    /// and feature `j` the trees read, `x.add(o + j)` is readable and `o + j` fits
    /// in i32; `nodes.len() * 2` fits in i32. With `SETS`, a threshold that is a
    /// NaN with a payload `p` names the set at word `p - 1` of `sets`
    /// (`Sets::threshold`).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn walk<const P: i32, const MISSING: bool, const SETS: u8>(
        nodes: &[Packed],
        feature_bits: u32,
        Tree {
            root,
            top,
            depth: (shallowest, deepest),
        }: Tree,
        x: *const f32,
        offsets: &Offsets,
        leaves: &mut Leaves,
        sets: &Sets,
    ) {
        // SAFETY (whole body): the gathers read node i's two words at byte 8·i and
        // 8·i + 4, i in range by the layout invariants, and x at offset + feature,
        // readable by the caller's guarantee. Every load and store of `offsets`,
        // `leaves` and the top tables is unaligned (`loadu`/`storeu`: these arrays
        // are only 4-byte aligned) and covers 8 u32 inside an array of 8 or more.
        let base = nodes.as_ptr() as *const i64;
        let feature = _mm256_set1_epi32(((1u32 << feature_bits) - 1) as i32);
        let jump_shift = _mm_cvtsi32_si128(feature_bits as i32);
        let jump_mask = _mm256_set1_epi32(FEATURE as i32);
        let one = _mm256_set1_epi32(1);
        let mut at = [_mm256_set1_epi32(root as i32); VECTORS];
        // SAFETY: v < VECTORS, so the 8 offsets read are inside `offsets`.
        let rows: [__m256i; VECTORS] = std::array::from_fn(|v| unsafe {
            _mm256_loadu_si256(offsets.as_ptr().add(v * WIDTH) as *const __m256i)
        });
        // The lanes of vector `v` compare with their nodes: where the "true" child
        // is taken (all ones), and each node's distance to `next` (0 on a leaf).
        let decide = |v: usize, threshold: __m256, meta: __m256i| {
            let jump = _mm256_srl_epi32(_mm256_and_si256(meta, jump_mask), jump_shift);
            let at_x = _mm256_add_epi32(rows[v], _mm256_and_si256(meta, feature));
            // SAFETY: x at row offset + feature is readable (the caller's guarantee).
            let value = unsafe { _mm256_i32gather_ps::<4>(x, at_x) };
            let mut go = _mm256_cmp_ps::<P>(value, threshold);
            if SETS != NO_SETS {
                // SAFETY: the set table is the one `Sets::new` built for these nodes.
                go = _mm256_or_ps(go, unsafe { member::<SETS>(sets, value, threshold) });
            }
            if MISSING {
                let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(value, value);
                let tracks = _mm256_castsi256_ps(_mm256_srai_epi32::<31>(meta));
                go = _mm256_or_ps(go, _mm256_and_ps(nan, tracks));
            }
            (_mm256_castps_si256(go), jump)
        };
        let mut first = 0;
        if deepest > TOP_LEVELS as u32 {
            // Every lane starts on the root, then finds its node in the top levels'
            // tables by its path: no gathers for the node.
            let [threshold, meta] = nodes[root as usize];
            let (threshold, meta) = (
                _mm256_set1_ps(f32::from_bits(threshold)),
                _mm256_set1_epi32(meta as i32),
            );
            let mut path = [_mm256_setzero_si256(); VECTORS];
            for (v, path) in path.iter_mut().enumerate() {
                *path = _mm256_andnot_si256(decide(v, threshold, meta).0, one);
            }
            for level in &top.node {
                // Unaligned loads from the table itself: `[u32; 8]` is only 4-byte
                // aligned, and `map` would load from a moved copy.
                // SAFETY: each load reads the 8 u32 of one table row, unaligned.
                let [threshold, meta] = level
                    .each_ref()
                    .map(|words| unsafe { _mm256_loadu_si256(words.as_ptr() as *const __m256i) });
                for (v, path) in path.iter_mut().enumerate() {
                    let threshold =
                        _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(threshold, *path));
                    let meta = _mm256_permutevar8x32_epi32(meta, *path);
                    let not_true = _mm256_andnot_si256(decide(v, threshold, meta).0, one);
                    *path = _mm256_or_si256(_mm256_slli_epi32::<1>(*path), not_true);
                }
            }
            // SAFETY: `below` holds 8 u32; the load is unaligned.
            let below = unsafe { _mm256_loadu_si256(top.below.as_ptr() as *const __m256i) };
            for (at, path) in at.iter_mut().zip(path) {
                *at = _mm256_permutevar8x32_epi32(below, path);
            }
            first = TOP_LEVELS as u32 + 1;
        }
        for step in first..deepest {
            let mut all_leaves = -1i32;
            for (v, at) in at.iter_mut().enumerate() {
                let i = *at;
                // Both words of lanes 0-3, then of lanes 4-7, de-interleaved.
                // SAFETY: lane i's node index is in range by the layout invariants,
                // so both 8-byte gathers read inside `nodes`.
                let low = unsafe { _mm256_i32gather_epi64::<8>(base, _mm256_castsi256_si128(i)) };
                // SAFETY: as for `low`.
                let high =
                    unsafe { _mm256_i32gather_epi64::<8>(base, _mm256_extracti128_si256::<1>(i)) };
                let (low, high) = (_mm256_castsi256_ps(low), _mm256_castsi256_ps(high));
                let threshold = _mm256_castsi256_ps(_mm256_permute4x64_epi64::<0b11_01_10_00>(
                    _mm256_castps_si256(_mm256_shuffle_ps::<0b10_00_10_00>(low, high)),
                ));
                let meta = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_castps_si256(
                    _mm256_shuffle_ps::<0b11_01_11_01>(low, high),
                ));
                let (go, jump) = decide(v, threshold, meta);
                all_leaves &=
                    _mm256_movemask_epi8(_mm256_cmpeq_epi32(jump, _mm256_setzero_si256()));
                // The "true" child is one step on; the other `jump` steps on.
                *at = _mm256_add_epi32(i, _mm256_blendv_epi8(jump, one, go));
            }
            // Every lane was already on a leaf (unbalanced trees end early).
            if step >= shallowest && all_leaves == -1 {
                break;
            }
        }
        for (v, at) in at.iter().enumerate() {
            // SAFETY: v < VECTORS: the 8 lanes stored are inside `leaves`.
            unsafe { _mm256_storeu_si256(leaves.as_mut_ptr().add(v * WIDTH) as *mut __m256i, *at) };
        }
    }

    /// All ones in the lanes whose threshold names a set (a NaN with a payload)
    /// that holds the category of `value` under rule `SETS`; zero elsewhere.
    ///
    /// # Safety
    /// The CPU has AVX2; every payload in `threshold` is 0 or the first word of a
    /// set of `sets` plus 1 (`Sets::threshold`).
    #[target_feature(enable = "avx2")]
    unsafe fn member<const SETS: u8>(sets: &Sets, value: __m256, threshold: __m256) -> __m256 {
        let bits = _mm256_castps_si256(threshold);
        let exponent = _mm256_set1_epi32(0x7F80_0000);
        let payload = _mm256_and_si256(bits, _mm256_set1_epi32(SET_PAYLOAD as i32));
        let zero = _mm256_setzero_si256();
        let is_set = _mm256_andnot_si256(
            _mm256_cmpeq_epi32(payload, zero),
            _mm256_cmpeq_epi32(_mm256_and_si256(bits, exponent), exponent),
        );
        // The category: the integer part (truncated toward zero), and whether the
        // rule gives the value one (NaN never has one).
        let k = _mm256_cvttps_epi32(value);
        let valid = match SETS {
            EXACT => _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_cvtepi32_ps(k), value),
            XGBOOST => _mm256_and_ps(
                _mm256_cmp_ps::<_CMP_GE_OQ>(value, _mm256_setzero_ps()),
                _mm256_cmp_ps::<_CMP_LT_OQ>(value, _mm256_set1_ps(16_777_215.0)),
            ),
            // -0.5 is category 0 (toward zero), as in LightGBM.
            LIGHTGBM => _mm256_cmp_ps::<_CMP_GT_OQ>(value, _mm256_set1_ps(-1.0)),
            _ => _mm256_setzero_ps(),
        };
        let base = _mm256_sub_epi32(payload, _mm256_set1_epi32(1));
        // 0 <= k < the sets' bits: k's word is inside the set's words.
        let in_range = _mm256_and_si256(
            _mm256_cmpgt_epi32(_mm256_set1_epi32(sets.bits as i32), k),
            _mm256_cmpgt_epi32(k, _mm256_set1_epi32(-1)),
        );
        let ask = _mm256_and_si256(
            _mm256_and_si256(is_set, in_range),
            _mm256_castps_si256(valid),
        );
        let at = _mm256_add_epi32(base, _mm256_srli_epi32::<5>(k));
        // SAFETY: only lanes in `ask` read, at a word of their set.
        let word = unsafe {
            _mm256_mask_i32gather_epi32::<4>(zero, sets.words.as_ptr() as *const i32, at, ask)
        };
        let bit = _mm256_srlv_epi32(word, _mm256_and_si256(k, _mm256_set1_epi32(31)));
        let one = _mm256_set1_epi32(1);
        _mm256_castsi256_ps(_mm256_and_si256(
            ask,
            _mm256_cmpeq_epi32(_mm256_and_si256(bit, one), one),
        ))
    }

    /// # Safety
    /// The CPU has AVX2, and `values.add(leaf)` is readable for every leaf.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn add_values(
        values: *const f32,
        leaves: &Leaves,
        sums: &mut [f32; ROW_BLOCK],
    ) {
        for v in 0..VECTORS {
            // SAFETY: the loads and stores stay inside `leaves` and `sums`; the
            // gather reads `values` at the leaves (the caller's guarantee).
            unsafe {
                let at = _mm256_loadu_si256(leaves.as_ptr().add(v * WIDTH) as *const __m256i);
                let sum = sums.as_mut_ptr().add(v * WIDTH);
                let value = _mm256_i32gather_ps::<4>(values, at);
                _mm256_storeu_ps(sum, _mm256_add_ps(_mm256_loadu_ps(sum), value));
            }
        }
    }
}
