//! Tree walking with AVX2 gathers: the block's rows eight to a vector, its eight
//! vectors stepping together so that their gathers overlap.
//!
//! Nodes are repacked into 8 bytes (threshold; missing flag, distance to `next`
//! and feature), so a step is one 64-bit gather per lane for the node, one 32-bit
//! gather for the lane's feature value, a compare, and a blend between the "true"
//! child (one node on) and `next`. The first step needs no node gather: every lane
//! is on the root. It reaches the same leaves as the scalar walk of
//! [`super::Ensemble::leaves`]; a unit test holds the two together.
//!
//! Measured on the benchmark's random forest (100 trees of depth 10, one thread,
//! `batchinfer bench`): 550k rows/s scalar, 930k with this walk. AVX-512 (sixteen
//! lanes), 32-bit gathers of the unpacked 12-byte nodes, and a feature-major copy
//! of the block were each no faster on this machine (AMD Zen 4).

use super::{Node, FEATURE, MISSING_TRUE, ROW_BLOCK};

/// Walks the `ROW_BLOCK` rows of one block through one tree; writes their leaves.
///
/// Arguments: the packed nodes, the bits of a packed node's feature, the tree's
/// root and (shallowest, deepest) path, the block's first value, each row's offset
/// from it, and the leaves to fill.
type Walk = unsafe fn(&[Packed], u32, u32, (u32, u32), *const f32, &Offsets, &mut Leaves);
pub(super) type Offsets = [i32; ROW_BLOCK];
pub(super) type Leaves = [u32; ROW_BLOCK];

/// A node in 8 bytes: its threshold's bits, then `MISSING_TRUE`, the distance to
/// `next` and the feature, packed so that a step gathers two values per node.
type Packed = [u32; 2];

/// The nodes packed for the AVX2 walk, and the walk for their comparison.
#[derive(Debug)]
pub(super) struct Walker {
    nodes: Vec<Packed>,
    feature_bits: u32,
    walk: Walk,
}

impl Walker {
    /// The AVX2 walker for `nodes` (laid out by [`super::Ensemble::parse`]) under
    /// `mode`, when this CPU has AVX2 and the indices fit in 32 bits and each
    /// node's feature and distance to `next` in 31; None otherwise (the caller
    /// walks with scalar code). The caller checks that the row offsets fit too.
    pub(super) fn new(nodes: &[Node], mode: super::Mode) -> Option<Walker> {
        let walk = pick(mode, nodes.iter().any(|n| n.meta & MISSING_TRUE != 0))?;
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
        let nodes = (nodes.iter().enumerate())
            .map(|(i, n)| {
                let jump = n.next - i as u32;
                [
                    n.threshold.to_bits(),
                    (n.meta & MISSING_TRUE) | jump << feature_bits | (n.meta & FEATURE),
                ]
            })
            .collect();
        Some(Walker {
            nodes,
            feature_bits,
            walk,
        })
    }

    /// Walks the block whose first value is `x` through the tree at `root`.
    ///
    /// # Safety
    /// `root` and `depth` are a tree's root and depths as `parse` found them, and
    /// for every offset `o` in `offsets` and feature `j` the trees read,
    /// `x.add(o + j)` is readable and `o + j` fits in i32.
    pub(super) unsafe fn leaves(
        &self,
        root: u32,
        depth: (u32, u32),
        x: *const f32,
        offsets: &Offsets,
        leaves: &mut Leaves,
    ) {
        // SAFETY: `new` checked the CPU and the packing; the caller, the rest.
        unsafe {
            (self.walk)(
                &self.nodes,
                self.feature_bits,
                root,
                depth,
                x,
                offsets,
                leaves,
            )
        }
    }
}

fn pick(mode: super::Mode, any_missing: bool) -> Option<Walk> {
    #[cfg(target_arch = "x86_64")]
    {
        use super::Mode;
        use std::arch::x86_64::*;
        if !std::arch::is_x86_feature_detected!("avx2") {
            return None;
        }
        macro_rules! walk {
            ($p:expr) => {
                if any_missing {
                    x86::walk::<{ $p }, true> as Walk
                } else {
                    x86::walk::<{ $p }, false> as Walk
                }
            };
        }
        return match mode {
            Mode::Leq => Some(walk!(_CMP_LE_OQ)),
            Mode::Lt => Some(walk!(_CMP_LT_OQ)),
            Mode::Gte => Some(walk!(_CMP_GE_OQ)),
            Mode::Gt => Some(walk!(_CMP_GT_OQ)),
            Mode::Eq => Some(walk!(_CMP_EQ_OQ)),
            Mode::Neq | Mode::Leaf => None,
        };
    }
    #[allow(unreachable_code)]
    {
        let _ = (mode, any_missing);
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::{FEATURE, ROW_BLOCK};
    use super::{Leaves, Offsets, Packed};

    const WIDTH: usize = 8;
    const VECTORS: usize = ROW_BLOCK / WIDTH;

    /// # Safety
    /// The CPU has AVX2 ([`super::pick`] checks). `nodes` are packed by
    /// [`super::Walker::new`] from a layout where a branch's "true" child follows
    /// it and its `next` is in range, and a leaf's `next` is itself with a NaN
    /// threshold and feature 0; `root` is a tree's root. For every row offset `o`
    /// and feature `j` the trees read, `x.add(o + j)` is readable and `o + j` fits
    /// in i32; `nodes.len() * 2` fits in i32.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn walk<const P: i32, const MISSING: bool>(
        nodes: &[Packed],
        feature_bits: u32,
        root: u32,
        (shallowest, deepest): (u32, u32),
        x: *const f32,
        offsets: &Offsets,
        leaves: &mut Leaves,
    ) {
        // SAFETY (whole body): the gathers read node i's two words at byte 8·i and
        // 8·i + 4, i in range by the layout invariants, and x at offset + feature,
        // readable by the caller's guarantee; the loads and stores of `offsets` and
        // `leaves` stay inside those arrays.
        let base = nodes.as_ptr() as *const i64;
        let feature = _mm256_set1_epi32(((1u32 << feature_bits) - 1) as i32);
        let jump_shift = _mm_cvtsi32_si128(feature_bits as i32);
        let jump_mask = _mm256_set1_epi32(FEATURE as i32);
        let one = _mm256_set1_epi32(1);
        let mut at = [_mm256_set1_epi32(root as i32); VECTORS];
        let rows: [__m256i; VECTORS] = std::array::from_fn(|v| unsafe {
            _mm256_loadu_si256(offsets.as_ptr().add(v * WIDTH) as *const __m256i)
        });
        // One step of the lanes at `i`, given their nodes; returns where they go,
        // and a movemask that is all ones when every lane was on a leaf.
        let advance = |v: usize, i: __m256i, threshold: __m256, meta: __m256i| {
            let jump = _mm256_srl_epi32(_mm256_and_si256(meta, jump_mask), jump_shift);
            let at_x = _mm256_add_epi32(rows[v], _mm256_and_si256(meta, feature));
            let value = unsafe { _mm256_i32gather_ps::<4>(x, at_x) };
            let mut go = _mm256_cmp_ps::<P>(value, threshold);
            if MISSING {
                let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(value, value);
                let tracks = _mm256_castsi256_ps(_mm256_srai_epi32::<31>(meta));
                go = _mm256_or_ps(go, _mm256_and_ps(nan, tracks));
            }
            let on_leaf = _mm256_movemask_epi8(_mm256_cmpeq_epi32(jump, _mm256_setzero_si256()));
            // The "true" child is one step on; the other `jump` steps on.
            let step = _mm256_castps_si256(_mm256_blendv_ps(
                _mm256_castsi256_ps(jump),
                _mm256_castsi256_ps(one),
                go,
            ));
            (_mm256_add_epi32(i, step), on_leaf)
        };
        // Every lane starts at the root: its node needs no gather.
        if deepest > 0 {
            let [threshold, meta] = nodes[root as usize];
            let threshold = _mm256_set1_ps(f32::from_bits(threshold));
            let meta = _mm256_set1_epi32(meta as i32);
            for (v, i) in at.iter_mut().enumerate() {
                *i = advance(v, *i, threshold, meta).0;
            }
        }
        for step in 1..deepest {
            let mut all_leaves = -1i32;
            for (v, at) in at.iter_mut().enumerate() {
                let i = *at;
                // Both words of lanes 0-3, then of lanes 4-7, de-interleaved.
                let low = unsafe { _mm256_i32gather_epi64::<8>(base, _mm256_castsi256_si128(i)) };
                let high =
                    unsafe { _mm256_i32gather_epi64::<8>(base, _mm256_extracti128_si256::<1>(i)) };
                let (low, high) = (_mm256_castsi256_ps(low), _mm256_castsi256_ps(high));
                let threshold = _mm256_castsi256_ps(_mm256_permute4x64_epi64::<0b11_01_10_00>(
                    _mm256_castps_si256(_mm256_shuffle_ps::<0b10_00_10_00>(low, high)),
                ));
                let meta = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_castps_si256(
                    _mm256_shuffle_ps::<0b11_01_11_01>(low, high),
                ));
                let (next, on_leaf) = advance(v, i, threshold, meta);
                *at = next;
                all_leaves &= on_leaf;
            }
            // Every lane was already on a leaf (unbalanced trees end early).
            if step >= shallowest && all_leaves == -1 {
                break;
            }
        }
        for (v, at) in at.iter().enumerate() {
            unsafe { _mm256_storeu_si256(leaves.as_mut_ptr().add(v * WIDTH) as *mut __m256i, *at) };
        }
    }
}
