//! `TreeEnsembleClassifier` and `TreeEnsembleRegressor` (ai.onnx.ml), evaluated by
//! batchinfer's own evaluator.
//!
//! tract 0.23.9 has no regressor, mis-labels binary classifiers and evaluates trees
//! at a few hundred rows per second. Here:
//! - nodes are 12 bytes, laid out depth-first with the "true" child right after its
//!   parent, so a step is one load and a select;
//! - leaves point to themselves, so a group of [`LANES`] rows walks a tree in
//!   lockstep for exactly the tree's depth, with independent loads in flight and no
//!   branch on "is this a leaf";
//! - when every node uses one comparison (scikit-learn: LEQ, XGBoost and LightGBM:
//!   LT) the comparison is a compile-time choice;
//! - rows are scored in blocks, tree by tree, so a tree stays in cache while a block
//!   walks it;
//! - on CPUs with AVX2 and uniform comparisons, the block walks eight rows per
//!   vector with gathers ([`avx2`]).
//!
//! Accumulation is in f32, in tree order, as onnxruntime does for float models.

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::classes::{self, BinaryScore, Labels, PostTransform};
use super::kernel::Kernel;

mod avx2;
mod linear;
mod opset5;
mod sets;

use sets::{Rule, Set};

/// Rows walked through one tree before moving to the next.
const ROW_BLOCK: usize = 64;
/// Rows walking a tree in lockstep.
const LANES: usize = 8;

const MISSING_TRUE: u32 = 1 << 31;
const FEATURE: u32 = !MISSING_TRUE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Member,
    /// LightGBM's split with zeros as missing: `x <= t`, or `x` is within 1e-35 of
    /// 0 (then it goes the default way, here the "true" one)...
    LeqOrZero,
    /// ...or `x <= t` and `x` is not within 1e-35 of 0 (default "false").
    LeqNotZero,
    Leaf,
}

/// LightGBM's `kZeroThreshold`: values within it of 0 are zeros.
const ZERO: f32 = 1e-35;

#[inline(always)]
fn is_zero(x: f32) -> bool {
    (-ZERO..=ZERO).contains(&x)
}

impl Mode {
    fn parse(s: &str) -> TractResult<Mode> {
        Ok(match s {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "BRANCH_MEMBER" => Mode::Member,
            // batchinfer's own, for native LightGBM models (`model::native`).
            "BATCHINFER_LEQ_OR_ZERO" => Mode::LeqOrZero,
            "BATCHINFER_LEQ_NOT_ZERO" => Mode::LeqNotZero,
            "LEAF" => Mode::Leaf,
            other => bail!("unknown node mode {other}"),
        })
    }
}

/// One node. A branch goes to the next node when its comparison holds (or the value
/// is NaN and `MISSING_TRUE` is set), else to `next`. A leaf has a NaN threshold,
/// feature 0 and `next` pointing to itself, so stepping a leaf stays on it under
/// every comparison but NEQ (mixed and NEQ ensembles check for leaves explicitly).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Node {
    threshold: f32,
    /// Feature index, with `MISSING_TRUE` in the top bit.
    meta: u32,
    next: u32,
}

/// The comparison of a branch: `x` goes to the "true" child when it holds.
trait Compare {
    fn holds(&self, node: usize, x: f32, threshold: f32) -> bool;
}

macro_rules! uniform {
    ($name:ident, $op:tt) => {
        struct $name;
        impl Compare for $name {
            #[inline(always)]
            fn holds(&self, _node: usize, x: f32, t: f32) -> bool {
                x $op t
            }
        }
    };
}
uniform!(Leq, <=);
uniform!(Lt, <);
uniform!(Gte, >=);
uniform!(Gt, >);
uniform!(Equal, ==);

/// A member node's threshold is a NaN whose payload is its set's index plus 1; a
/// leaf's is the plain NaN (payload 0).
const SET_PAYLOAD: u32 = 0x003F_FFFF;

fn member_threshold(set: usize) -> f32 {
    f32::from_bits(f32::NAN.to_bits() | (set as u32 + 1))
}

/// Whether `x` is in the set a member node's threshold `t` names (false for a
/// leaf's threshold).
#[inline(always)]
fn member(sets: &[Set], x: f32, t: f32) -> bool {
    let payload = (t.to_bits() & SET_PAYLOAD) as usize;
    payload != 0 && sets[payload - 1].contains(x)
}

/// Ensembles whose splits compare one way (`C`) or test sets: a NaN threshold is
/// a set (or a leaf, which then stays where it is), so no node's mode is looked up.
struct WithSets<'a, C> {
    compare: C,
    sets: &'a [Set],
}

impl<C: Compare> Compare for WithSets<'_, C> {
    #[inline(always)]
    fn holds(&self, node: usize, x: f32, t: f32) -> bool {
        if t.is_nan() {
            member(self.sets, x, t)
        } else {
            self.compare.holds(node, x, t)
        }
    }
}

/// Ensembles mixing comparisons, or using NEQ or sets: the mode of every node, and
/// the sets member nodes point to.
struct Mixed<'a> {
    modes: &'a [Mode],
    sets: &'a [Set],
}

impl Compare for Mixed<'_> {
    #[inline(always)]
    fn holds(&self, node: usize, x: f32, t: f32) -> bool {
        match self.modes[node] {
            Mode::Leq => x <= t,
            Mode::Lt => x < t,
            Mode::Gte => x >= t,
            Mode::Gt => x > t,
            Mode::Eq => x == t,
            Mode::Neq => x != t,
            Mode::Member => member(self.sets, x, t),
            Mode::LeqOrZero => x <= t || is_zero(x),
            Mode::LeqNotZero => x <= t && !is_zero(x),
            Mode::Leaf => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// A parsed ensemble: trees as roots into one node array, leaf weights by target.
#[derive(Debug)]
pub struct Ensemble {
    roots: Vec<u32>,
    /// Shortest and longest root-to-leaf path of each tree, in steps.
    depths: Vec<(u32, u32)>,
    /// For summed ensembles whose leaves each hold one weight, all for the same
    /// target: that target, and each node's value.
    leaf_value: Option<(usize, Vec<f32>)>,
    /// The AVX2 walk, where the CPU and the ensemble allow it.
    walk: Option<avx2::Walker>,
    /// Leaves holding a linear model, if any.
    linear: Option<linear::Leaves>,
    nodes: Vec<Node>,
    /// The one comparison every branch uses, or None: see `modes`.
    mode: Option<Mode>,
    /// The one comparison every branch that is not a set split uses, where the
    /// others are set splits (`WithSets`).
    with_sets: Option<Mode>,
    /// Per-node modes (leaves included), used when `mode` is None.
    modes: Vec<Mode>,
    /// The sets of member nodes, whose `threshold` bits are an index here.
    sets: Vec<Set>,
    /// For each node, its first weight in `weights`; leaves own `leaf[i]..leaf[i + 1]`.
    leaf: Vec<u32>,
    weights: Vec<(u32, f32)>,
    n_targets: usize,
    /// Number of features the trees read: the input must be at least this wide.
    n_features: usize,
    aggregate: Aggregate,
    base_values: Vec<f32>,
    all_weights_positive: bool,
    /// Distinct target/class ids that leaves write to.
    targets_used: usize,
}

fn attr_vec<T>(node: &NodeProto, name: &str, len: usize) -> TractResult<Vec<T>>
where
    for<'a> T: tract_onnx::pb_helpers::AttrTVecType<'a>,
{
    let v: Vec<T> = node.get_attr_vec(name)?;
    ensure!(
        v.len() == len,
        "attribute {name}: expected {len} values, found {}",
        v.len()
    );
    Ok(v)
}

fn refuse_as_tensor(node: &NodeProto, names: &[&str]) -> TractResult<()> {
    for name in names {
        if node.attribute.iter().any(|a| a.name == *name) {
            bail!("attribute {name} (double-precision trees) is not supported by batchinfer yet");
        }
    }
    Ok(())
}

/// An ensemble's trees as its attributes list them, before they are laid out: the
/// legacy operators' (tree id, node id) pairs, or opset 5's nodes renamed to them.
#[derive(Default)]
struct Table {
    tree_ids: Vec<i64>,
    node_ids: Vec<i64>,
    features: Vec<i64>,
    values: Vec<f32>,
    modes: Vec<Mode>,
    true_ids: Vec<i64>,
    false_ids: Vec<i64>,
    missing: Vec<bool>,
    /// The set of each `BRANCH_MEMBER` node, by position in the lists above.
    sets: HashMap<usize, Set>,
    /// (tree id, node id, target, weight) of every leaf weight.
    leaves: Vec<(i64, i64, i64, f32)>,
    /// The leaves that hold a linear model (batchinfer's extension).
    linear: Vec<linear::Listed>,
}

impl Table {
    /// Appends one node.
    #[allow(clippy::too_many_arguments)] // one per column of the table
    fn push(
        &mut self,
        tree: i64,
        node: i64,
        feature: i64,
        value: f32,
        mode: Mode,
        (true_id, false_id): (i64, i64),
        missing: bool,
    ) {
        self.tree_ids.push(tree);
        self.node_ids.push(node);
        self.features.push(feature);
        self.values.push(value);
        self.modes.push(mode);
        self.true_ids.push(true_id);
        self.false_ids.push(false_id);
        self.missing.push(missing);
    }

    /// `TreeEnsembleClassifier`/`Regressor` (opsets 1–3); `prefix` is `class` or
    /// `target`. `BRANCH_MEMBER` is accepted here too, with the sets in
    /// `membership_values` (floats, NaN-delimited, as opset 5 has them) and their
    /// rule in `batchinfer_membership_rule`: that is how a native model's
    /// categorical splits are written ([`crate::model::native`]).
    fn legacy(node: &NodeProto, prefix: &str) -> TractResult<Table> {
        refuse_as_tensor(
            node,
            &[
                "nodes_values_as_tensor",
                "nodes_hitrates_as_tensor",
                "base_values_as_tensor",
            ],
        )?;
        refuse_as_tensor(node, &[&format!("{prefix}_weights_as_tensor")])?;
        let tree_ids: Vec<i64> = node.get_attr_vec("nodes_treeids")?;
        let n = tree_ids.len();
        ensure!(n > 0, "the ensemble has no nodes");
        let modes: Vec<String> = attr_vec(node, "nodes_modes", n)?;
        let modes: Vec<Mode> = modes
            .iter()
            .map(|m| Mode::parse(m))
            .collect::<TractResult<_>>()?;
        let missing: Vec<i64> =
            match node.get_attr_opt_vec::<i64>("nodes_missing_value_tracks_true")? {
                Some(v) if !v.is_empty() => {
                    ensure!(
                        v.len() == n,
                        "nodes_missing_value_tracks_true: expected {n} values"
                    );
                    v
                }
                _ => vec![0; n],
            };
        let leaf_tree: Vec<i64> = node.get_attr_vec(&format!("{prefix}_treeids"))?;
        let m = leaf_tree.len();
        let leaf_node: Vec<i64> = attr_vec(node, &format!("{prefix}_nodeids"), m)?;
        let leaf_target: Vec<i64> = attr_vec(node, &format!("{prefix}_ids"), m)?;
        let leaf_weight: Vec<f32> = attr_vec(node, &format!("{prefix}_weights"), m)?;
        let rule = match node.get_attr_opt::<&str>("batchinfer_membership_rule")? {
            None => Rule::Exact,
            Some(name) => Rule::parse(name)
                .with_context(|| format!("unknown batchinfer_membership_rule {name}"))?,
        };
        let members = node
            .get_attr_opt_vec::<f32>("membership_values")?
            .unwrap_or_default();
        Ok(Table {
            node_ids: attr_vec(node, "nodes_nodeids", n)?,
            features: attr_vec(node, "nodes_featureids", n)?,
            values: attr_vec(node, "nodes_values", n)?,
            true_ids: attr_vec(node, "nodes_truenodeids", n)?,
            false_ids: attr_vec(node, "nodes_falsenodeids", n)?,
            missing: missing.iter().map(|v| *v != 0).collect(),
            sets: member_sets(&modes, &members, rule)?,
            modes,
            tree_ids,
            linear: linear::read(node)?,
            leaves: (0..m)
                .map(|j| (leaf_tree[j], leaf_node[j], leaf_target[j], leaf_weight[j]))
                .collect(),
        })
    }
}

/// The set of each `BRANCH_MEMBER` node, by position, from NaN-delimited members.
fn member_sets(modes: &[Mode], members: &[f32], rule: Rule) -> TractResult<HashMap<usize, Set>> {
    let at: Vec<usize> = (0..modes.len())
        .filter(|&i| modes[i] == Mode::Member)
        .collect();
    if at.is_empty() {
        return Ok(HashMap::new());
    }
    let lists = sets::split_members(members, at.len()).map_err(|e| anyhow!(e))?;
    Ok(at
        .into_iter()
        .zip(lists)
        .map(|(i, list)| (i, Set::new(rule, list)))
        .collect())
}

impl Ensemble {
    /// Parses the node and leaf attributes of a legacy ensemble; `prefix` is
    /// `class` or `target`.
    fn parse(node: &NodeProto, prefix: &str, n_targets: usize) -> TractResult<Ensemble> {
        let table = Table::legacy(node, prefix)?;
        let aggregate = match node
            .get_attr_opt::<&str>("aggregate_function")?
            .unwrap_or("SUM")
        {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => bail!("aggregate_function {other} is not supported"),
        };
        let base_values = node
            .get_attr_opt_vec::<f32>("base_values")?
            .unwrap_or_default();
        Ensemble::build(table, n_targets, aggregate, base_values)
    }

    /// Lays the trees of `table` out for the walk.
    #[allow(clippy::too_many_lines)] // one pass from the attribute table to the layout; split, the checks between parallel arrays would sit apart from where the arrays are read
    fn build(
        table: Table,
        n_targets: usize,
        aggregate: Aggregate,
        base_values: Vec<f32>,
    ) -> TractResult<Ensemble> {
        let Table {
            tree_ids,
            node_ids,
            features,
            values,
            modes: parsed_modes,
            true_ids,
            false_ids,
            missing,
            sets: sets_by_node,
            leaves: leaf_list,
            linear: linear_list,
        } = table;
        let n = tree_ids.len();
        // Global index of each (tree, node) pair, in the order the nodes are listed.
        let mut index = HashMap::with_capacity(n);
        for i in 0..n {
            ensure!(
                index.insert((tree_ids[i], node_ids[i]), i as u32).is_none(),
                "node {} of tree {} is listed twice",
                node_ids[i],
                tree_ids[i]
            );
        }
        // Leaf weights grouped by leaf node.
        let mut by_leaf: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
        let mut all_weights_positive = true;
        let mut used = std::collections::BTreeSet::new();
        for &(tree, leaf_node, target, weight) in &leaf_list {
            ensure!(
                target >= 0 && (target as usize) < n_targets,
                "leaf of tree {tree} writes to target {target}, but there are {n_targets}"
            );
            let at = *index.get(&(tree, leaf_node)).with_context(|| {
                format!("leaf weight for unknown node {leaf_node} of tree {tree}")
            })?;
            by_leaf.entry(at).or_default().push((target as u32, weight));
            all_weights_positive &= weight >= 0.0;
            used.insert(target);
        }

        // Children of every branch, by original index; roots are the nodes no node
        // points to.
        let mut children = vec![(0u32, 0u32); n];
        let mut is_child = vec![false; n];
        let mut max_feature = 0usize;
        for i in 0..n {
            if parsed_modes[i] == Mode::Leaf {
                continue;
            }
            let child = |id: i64| -> TractResult<u32> {
                Ok(*index.get(&(tree_ids[i], id)).with_context(|| {
                    format!(
                        "node {} of tree {} points to missing node {id}",
                        node_ids[i], tree_ids[i]
                    )
                })?)
            };
            let (t, f) = (child(true_ids[i])?, child(false_ids[i])?);
            is_child[t as usize] = true;
            is_child[f as usize] = true;
            children[i] = (t, f);
            ensure!(
                features[i] >= 0 && (features[i] as u32) < MISSING_TRUE,
                "feature id {} out of range in tree {}",
                features[i],
                tree_ids[i]
            );
            max_feature = max_feature.max(features[i] as usize + 1);
        }
        let mut roots_by_tree = std::collections::BTreeMap::new();
        for i in 0..n {
            if !is_child[i] {
                ensure!(
                    roots_by_tree.insert(tree_ids[i], i).is_none(),
                    "tree {} has more than one root",
                    tree_ids[i]
                );
            }
        }

        // Lay every tree out depth-first, "true" child first.
        let mut nodes = Vec::with_capacity(n);
        let mut node_modes = Vec::with_capacity(n);
        let mut leaf = Vec::with_capacity(n + 1);
        let mut weights: Vec<(u32, f32)> = Vec::with_capacity(leaf_list.len());
        let mut sets = Vec::with_capacity(sets_by_node.len());
        let mut roots = Vec::with_capacity(roots_by_tree.len());
        let mut depths = Vec::with_capacity(roots_by_tree.len());
        let mut placed = vec![false; n];
        let mut new_index = vec![usize::MAX; n];
        for (&tree, &root) in &roots_by_tree {
            roots.push(nodes.len() as u32);
            let mut depth = 0u32;
            let mut shallowest = u32::MAX;
            // (original index, depth, new index of the parent whose `next` it is)
            let mut stack = vec![(root, 0u32, None::<usize>)];
            while let Some((orig, d, false_parent)) = stack.pop() {
                ensure!(
                    !placed[orig],
                    "tree {tree} reaches node {} twice",
                    node_ids[orig]
                );
                placed[orig] = true;
                let at = nodes.len();
                new_index[orig] = at;
                if let Some(p) = false_parent {
                    let parent: &mut Node = &mut nodes[p];
                    parent.next = at as u32;
                }
                depth = depth.max(d);
                leaf.push(weights.len() as u32);
                node_modes.push(parsed_modes[orig]);
                if parsed_modes[orig] == Mode::Leaf {
                    shallowest = shallowest.min(d);
                    weights.extend(by_leaf.get(&(orig as u32)).into_iter().flatten());
                    nodes.push(Node {
                        threshold: f32::NAN,
                        meta: 0,
                        next: at as u32,
                    });
                } else {
                    let meta = features[orig] as u32 | if missing[orig] { MISSING_TRUE } else { 0 };
                    // A member node's "threshold" is the index of its set.
                    let threshold = match sets_by_node.get(&orig) {
                        Some(set) => {
                            sets.push(set.clone());
                            ensure!(
                                sets.len() < SET_PAYLOAD as usize,
                                "the ensemble has more than {SET_PAYLOAD} set splits"
                            );
                            member_threshold(sets.len() - 1)
                        }
                        None => values[orig],
                    };
                    nodes.push(Node {
                        threshold,
                        meta,
                        next: 0,
                    });
                    let (t, f) = children[orig];
                    // Pushed last, popped first: the "true" child lands right after.
                    stack.push((f as usize, d + 1, Some(at)));
                    stack.push((t as usize, d + 1, None));
                }
            }
            depths.push((shallowest.min(depth), depth));
        }
        leaf.push(weights.len() as u32);
        ensure!(placed.iter().all(|p| *p), "some nodes belong to no tree");
        let leaf_weights = |i: usize| &weights[leaf[i] as usize..leaf[i + 1] as usize];
        let leaves_of = || (0..nodes.len()).filter(|&i| node_modes[i] == Mode::Leaf);
        let single_target = leaves_of()
            .map(|i| match leaf_weights(i) {
                [(target, _)] => Some(*target),
                _ => None,
            })
            .reduce(|a, b| if a == b { a } else { None })
            .flatten();
        let leaf_value = single_target.map(|target| {
            let mut values = vec![0.0; nodes.len()];
            for i in leaves_of() {
                values[i] = leaf_weights(i)[0].1;
            }
            (target as usize, values)
        });
        let branch_modes: std::collections::BTreeSet<Mode> = node_modes
            .iter()
            .copied()
            .filter(|m| *m != Mode::Leaf)
            .collect();
        let mode = match branch_modes.len() {
            0 => Some(Mode::Leq),
            1 => branch_modes
                .into_iter()
                .next()
                .filter(|m| matches!(m, Mode::Leq | Mode::Lt | Mode::Gte | Mode::Gt | Mode::Eq)),
            _ => None,
        };
        let with_sets = {
            let others: std::collections::BTreeSet<Mode> = (node_modes.iter().copied())
                .filter(|m| !matches!(m, Mode::Leaf | Mode::Member))
                .collect();
            // XGBoost's (LT) and LightGBM's (LEQ) categorical models.
            let uniform = matches!(others.iter().next(), Some(Mode::Leq | Mode::Lt));
            (mode.is_none() && !sets.is_empty() && others.len() == 1 && uniform)
                .then(|| *others.iter().next().expect("one mode"))
        };
        let walk = match (mode, with_sets) {
            (Some(mode), _) => avx2::Walker::new(&nodes, &roots, &depths, mode, &[]),
            (None, Some(mode)) => avx2::Walker::new(&nodes, &roots, &depths, mode, &sets),
            (None, None) => None,
        };
        let linear = if linear_list.is_empty() {
            None
        } else {
            let place = |tree: i64, node: i64| {
                let at = new_index[*index.get(&(tree, node))? as usize];
                (node_modes[at] == Mode::Leaf).then_some(at)
            };
            Some(linear::Leaves::new(linear_list, nodes.len(), place)?)
        };
        let max_feature = max_feature.max(linear.as_ref().map_or(0, linear::Leaves::width));
        Ok(Ensemble {
            roots,
            depths,
            // A linear leaf's value depends on the row: no value per leaf.
            leaf_value: leaf_value.filter(|_| {
                linear.is_none() && matches!(aggregate, Aggregate::Sum | Aggregate::Average)
            }),
            walk,
            linear,
            nodes,
            mode,
            with_sets,
            modes: node_modes,
            sets,
            leaf,
            weights,
            n_targets,
            n_features: max_feature,
            aggregate,
            base_values,
            all_weights_positive,
            targets_used: used.len(),
        })
    }

    /// Walks `LANES` rows through the tree at `root` in lockstep; returns their leaves.
    #[inline(always)]
    fn leaves<C: Compare>(
        &self,
        cmp: &C,
        root: u32,
        (shallowest, deepest): (u32, u32),
        rows: &[&[f32]; LANES],
    ) -> [usize; LANES] {
        let mut at = [root as usize; LANES];
        let check_leaf = self.mode.is_none() && self.with_sets.is_none();
        for step in 0..deepest {
            // Past the shallowest leaf, stop as soon as every lane is on a leaf
            // (unbalanced trees, such as LightGBM's, end long before their depth).
            if step >= shallowest && at.iter().all(|&i| self.nodes[i].next as usize == i) {
                break;
            }
            for lane in 0..LANES {
                let i = at[lane];
                let node = self.nodes[i];
                if check_leaf && self.modes[i] == Mode::Leaf {
                    continue;
                }
                let x = rows[lane][(node.meta & FEATURE) as usize];
                let go = cmp.holds(i, x, node.threshold)
                    | ((node.meta & MISSING_TRUE != 0) & x.is_nan());
                at[lane] = if go { i + 1 } else { node.next as usize };
            }
        }
        at
    }

    fn accumulate<C: Compare>(
        &self,
        cmp: &C,
        x: &[f32],
        n: usize,
        f: usize,
        out: &mut [f32],
        touched: &mut [bool],
    ) {
        // The AVX2 walk indexes a block's values with i32 offsets.
        let walk = self
            .walk
            .as_ref()
            .filter(|_| ROW_BLOCK * f < i32::MAX as usize);
        let mut offsets: avx2::Offsets = [0; ROW_BLOCK];
        let mut leaves: avx2::Leaves = [0; ROW_BLOCK];
        // With the AVX2 walk and one value per leaf, each block's sums are gathered
        // tree by tree, then added to `out` (from 0, so the sums are the same).
        let gather = walk.zip(self.leaf_value.as_ref());
        if let Some((walk, (_, values))) = gather {
            assert_eq!(values.len(), walk.nodes(), "one value per node");
        }
        for start in (0..n).step_by(ROW_BLOCK) {
            let mut sums = [0f32; ROW_BLOCK];
            let end = (start + ROW_BLOCK).min(n);
            // Lanes past the end repeat the last row; their leaves are ignored.
            let row = |lane: usize| (start + lane).min(end - 1);
            let groups: Vec<[&[f32]; LANES]> = match walk {
                Some(_) => Vec::new(),
                None => (0..ROW_BLOCK)
                    .step_by(LANES)
                    .map(|group| std::array::from_fn(|l| &x[row(group + l) * f..][..f]))
                    .collect(),
            };
            for (lane, offset) in offsets.iter_mut().enumerate() {
                *offset = ((row(lane) - start) * f) as i32;
            }
            for (tree, (&root, &depth)) in self.roots.iter().zip(&self.depths).enumerate() {
                match walk {
                    // SAFETY: the walker has the roots and depths `parse` found;
                    // `scores` checked f >= n_features, so every offset plus feature
                    // read stays inside rows start..end of `x`, and ROW_BLOCK * f
                    // fits in i32 (checked above).
                    Some(walk) => unsafe {
                        walk.leaves(tree, x[start * f..].as_ptr(), &offsets, &mut leaves)
                    },
                    None => {
                        for (g, rows) in groups.iter().enumerate() {
                            let found = self.leaves(cmp, root, depth, rows);
                            for (slot, leaf) in leaves[g * LANES..].iter_mut().zip(found) {
                                *slot = leaf as u32;
                            }
                        }
                    }
                }
                match gather {
                    // SAFETY: the leaves are the ones the walk just returned, and
                    // `values` has one value per node (asserted above).
                    Some((walk, (_, values))) => unsafe {
                        walk.add_values(values, &leaves, &mut sums)
                    },
                    None => self.add_leaves(&leaves[..end - start], start, (x, f), out, touched),
                }
            }
            if let Some((_, (target, _))) = gather {
                let t = self.n_targets;
                for (r, sum) in (start..end).zip(sums) {
                    out[r * t + target] += sum;
                }
            }
        }
    }

    /// Adds the weights of the leaves that rows `start..` reached in one tree.
    fn add_leaves(
        &self,
        leaves: &[u32],
        start: usize,
        (x, f): (&[f32], usize),
        out: &mut [f32],
        touched: &mut [bool],
    ) {
        let t = self.n_targets;
        if let Some((target, values)) = &self.leaf_value {
            for (r, &leaf) in (start..).zip(leaves) {
                out[r * t + target] += values[leaf as usize];
            }
            return;
        }
        for (r, &leaf) in (start..).zip(leaves) {
            let leaf = leaf as usize;
            let acc = &mut out[r * t..(r + 1) * t];
            let ws = &self.weights[self.leaf[leaf] as usize..self.leaf[leaf + 1] as usize];
            for &(target, w) in ws {
                let w = match &self.linear {
                    Some(linear) => linear.value(leaf, &x[r * f..(r + 1) * f], w),
                    None => w,
                };
                let slot = &mut acc[target as usize];
                match self.aggregate {
                    Aggregate::Sum | Aggregate::Average => *slot += w,
                    Aggregate::Min => *slot = slot.min(w),
                    Aggregate::Max => *slot = slot.max(w),
                }
                if !touched.is_empty() {
                    touched[r * t + target as usize] = true;
                }
            }
        }
    }

    /// Aggregated scores `[N, n_targets]` (base values not yet added).
    fn scores(&self, x: &[f32], n: usize, f: usize) -> TractResult<Vec<f32>> {
        ensure!(f > 0, "the tree ensemble needs at least one input column");
        ensure!(
            f >= self.n_features,
            "the trees read feature {} but the input has {f} columns",
            self.n_features.saturating_sub(1)
        );
        let t = self.n_targets;
        let init = match self.aggregate {
            Aggregate::Sum | Aggregate::Average => 0.0,
            Aggregate::Min => f32::INFINITY,
            Aggregate::Max => f32::NEG_INFINITY,
        };
        let mut out = vec![init; n * t];
        if n == 0 {
            return Ok(out);
        }
        let min_max = matches!(self.aggregate, Aggregate::Min | Aggregate::Max);
        let mut touched = vec![false; if min_max { n * t } else { 0 }];
        let sets = &self.sets;
        match self.with_sets {
            Some(Mode::Leq) => {
                let cmp = WithSets { compare: Leq, sets };
                self.accumulate(&cmp, x, n, f, &mut out, &mut touched);
                return Ok(self.finish(out, touched));
            }
            Some(Mode::Lt) => {
                let cmp = WithSets { compare: Lt, sets };
                self.accumulate(&cmp, x, n, f, &mut out, &mut touched);
                return Ok(self.finish(out, touched));
            }
            _ => {}
        }
        match self.mode {
            Some(Mode::Leq) => self.accumulate(&Leq, x, n, f, &mut out, &mut touched),
            Some(Mode::Lt) => self.accumulate(&Lt, x, n, f, &mut out, &mut touched),
            Some(Mode::Gte) => self.accumulate(&Gte, x, n, f, &mut out, &mut touched),
            Some(Mode::Gt) => self.accumulate(&Gt, x, n, f, &mut out, &mut touched),
            Some(Mode::Eq) => self.accumulate(&Equal, x, n, f, &mut out, &mut touched),
            Some(Mode::Neq | Mode::Member | Mode::LeqOrZero | Mode::LeqNotZero | Mode::Leaf)
            | None => {
                let mixed = Mixed {
                    modes: &self.modes,
                    sets: &self.sets,
                };
                self.accumulate(&mixed, x, n, f, &mut out, &mut touched)
            }
        }
        Ok(self.finish(out, touched))
    }

    /// Averages, and zeroes the targets no leaf wrote to under MIN and MAX.
    fn finish(&self, mut out: Vec<f32>, touched: Vec<bool>) -> Vec<f32> {
        if self.aggregate == Aggregate::Average {
            let trees = self.roots.len() as f32;
            out.iter_mut().for_each(|v| *v /= trees);
        }
        for (v, seen) in out.iter_mut().zip(touched.iter()) {
            if !seen {
                *v = 0.0;
            }
        }
        out
    }

    fn add_base_values(&self, scores: &mut [f32]) {
        if self.base_values.len() == self.n_targets {
            for row in scores.chunks_mut(self.n_targets) {
                row.iter_mut()
                    .zip(&self.base_values)
                    .for_each(|(v, b)| *v += b);
            }
        }
    }
}

/// `TreeEnsembleRegressor` and opset 5's `TreeEnsemble`: `[N, F]` →
/// `[N, n_targets]` f32.
#[derive(Debug)]
pub struct TreeRegressor {
    ensemble: Ensemble,
    post: PostTransform,
    op: &'static str,
}

pub fn regressor(node: &NodeProto) -> TractResult<TreeRegressor> {
    let n_targets = node.get_attr_opt::<i64>("n_targets")?.unwrap_or(1).max(1) as usize;
    Ok(TreeRegressor {
        ensemble: Ensemble::parse(node, "target", n_targets)?,
        post: PostTransform::from_node(node)?,
        op: "TreeEnsembleRegressor",
    })
}

/// `TreeEnsemble` (ai.onnx.ml opset 5), float32 splits and weights.
pub fn tree_ensemble(ctx: &ParsingContext, node: &NodeProto) -> TractResult<TreeRegressor> {
    let n_targets = node.get_attr::<i64>("n_targets")?;
    ensure!(
        n_targets > 0,
        "n_targets must be positive, found {n_targets}"
    );
    let aggregate = match node.get_attr_opt::<i64>("aggregate_function")?.unwrap_or(1) {
        0 => Aggregate::Average,
        1 => Aggregate::Sum,
        2 => Aggregate::Min,
        3 => Aggregate::Max,
        other => bail!("aggregate_function {other} is not one of 0 (AVERAGE) to 3 (MAX)"),
    };
    let post = match node.get_attr_opt::<i64>("post_transform")?.unwrap_or(0) {
        0 => PostTransform::None,
        1 => PostTransform::Softmax,
        2 => PostTransform::Logistic,
        3 => PostTransform::SoftmaxZero,
        4 => bail!("post_transform 4 (PROBIT) is not supported by batchinfer yet"),
        other => bail!("post_transform {other} is not one of 0 (NONE) to 4 (PROBIT)"),
    };
    let table = opset5::table(ctx, node)?;
    Ok(TreeRegressor {
        ensemble: Ensemble::build(table, n_targets as usize, aggregate, vec![])?,
        post,
        op: "TreeEnsemble",
    })
}

impl Kernel for TreeRegressor {
    fn name(&self) -> &'static str {
        self.op
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.ensemble.n_targets.to_dim())?;
        Ok(())
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact([
            inputs[0].shape[0].clone(),
            self.ensemble.n_targets.to_dim()
        ])))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (n, f, x) = classes::as_f32_matrix(&inputs[0])?;
        let mut scores = self
            .ensemble
            .scores(x.try_as_plain_ram()?.as_slice::<f32>()?, n, f)?;
        self.ensemble.add_base_values(&mut scores);
        self.post.apply_rows(&mut scores, self.ensemble.n_targets)?;
        Ok(tvec!(tensor1(&scores)
            .into_shape(&[n, self.ensemble.n_targets])?
            .into_tvalue()))
    }
}

/// `TreeEnsembleClassifier`: `[N, F]` → labels `[N]`, probabilities `[N, K]`.
#[derive(Debug)]
pub struct TreeClassifier {
    ensemble: Ensemble,
    labels: Labels,
    post: PostTransform,
    /// Two classes, but leaves write one score only.
    binary: bool,
}

pub fn classifier(node: &NodeProto) -> TractResult<TreeClassifier> {
    let labels = Labels::from_node(node)?;
    let ensemble = Ensemble::parse(node, "class", labels.len())?;
    let binary = labels.len() == 2 && ensemble.targets_used == 1;
    Ok(TreeClassifier {
        ensemble,
        labels,
        post: PostTransform::from_node(node)?,
        binary,
    })
}

impl Kernel for TreeClassifier {
    fn name(&self) -> &'static str {
        "TreeEnsembleClassifier"
    }

    fn n_outputs(&self) -> usize {
        2
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        classes::classifier_rules(s, inputs, outputs, &self.labels, self.labels.len())
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(classes::classifier_facts(
            inputs,
            &self.labels,
            self.labels.len(),
        ))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (n, f, x) = classes::as_f32_matrix(&inputs[0])?;
        let scores = self
            .ensemble
            .scores(x.try_as_plain_ram()?.as_slice::<f32>()?, n, f)?;
        if self.binary {
            // One score per row, in the slot of the one class the leaves write to;
            // the first base value applies to it.
            let base = self.ensemble.base_values.first().copied().unwrap_or(0.0);
            let single: Vec<f32> = scores.chunks(2).map(|r| r[0] + r[1] + base).collect();
            let kind = if self.ensemble.all_weights_positive {
                BinaryScore::Probability
            } else {
                BinaryScore::Margin
            };
            let single = Tensor::from_shape(&[n, 1], &single)?;
            return classes::finish(single, &self.labels, self.post, kind);
        }
        let mut scores = scores;
        self.ensemble.add_base_values(&mut scores);
        let width = scores.len().checked_div(n).unwrap_or(0);
        let scores = Tensor::from_shape(&[n, width], &scores)?;
        classes::finish(scores, &self.labels, self.post, BinaryScore::Margin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree ensemble node of a model in `testdata/models`.
    fn ensemble_node(model: &str) -> NodeProto {
        let path = format!("{}/testdata/models/{model}", env!("CARGO_MANIFEST_DIR"));
        let proto = tract_onnx::onnx().proto_model_for_path(&path).unwrap();
        let graph = proto.graph.unwrap();
        let found = graph
            .node
            .into_iter()
            .find(|n| n.op_type.starts_with("TreeEnsemble"));
        found.unwrap_or_else(|| panic!("{model} has no tree ensemble"))
    }

    fn parse(node: &NodeProto) -> Ensemble {
        if node.op_type == "TreeEnsembleClassifier" {
            classifier(node).unwrap().ensemble
        } else {
            regressor(node).unwrap().ensemble
        }
    }

    /// Rows whose values land on, just above and around the ensemble's thresholds
    /// (so ties decide branches), with some NaN; a fixed pseudo-random sequence.
    fn probing_rows(e: &Ensemble, n: usize, f: usize) -> Vec<f32> {
        let thresholds: Vec<f32> = (e.nodes.iter().map(|n| n.threshold))
            .filter(|t| !t.is_nan())
            .collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // With set splits, also categories: small integers, values about the
        // rules' edges (negative, fractions, -0, beyond the bits and the ranges).
        const CATEGORIES: [f32; 24] = [
            -3.0e9,
            -2.0,
            -1.0,
            -0.5,
            -0.0,
            0.5,
            1.9,
            31.0,
            32.0,
            63.0,
            64.0,
            65.0,
            127.5,
            1000.0,
            65_535.0,
            65_536.0,
            16_777_214.0,
            16_777_215.0,
            2.2e9,
            3.0e9,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            1.0,
        ];
        let sets = !e.sets.is_empty();
        (0..n * f)
            .map(|_| {
                let t = thresholds[next() as usize % thresholds.len()];
                match next() % 20 {
                    0 => f32::NAN,
                    1..=7 => t,
                    8..=13 => f32::from_bits(t.to_bits() + 1),
                    14..=16 if sets => (next() % 70) as f32,
                    17..=19 if sets => CATEGORIES[next() as usize % CATEGORIES.len()],
                    _ => t + (next() % 2001) as f32 / 1000.0 - 1.0,
                }
            })
            .collect()
    }

    /// Scores with the AVX2 walk (where the CPU has it) and with the scalar walk.
    fn both_walks(e: &mut Ensemble, rows: usize) -> (Vec<f32>, Vec<f32>) {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            e.walk.is_some(),
            std::arch::is_x86_feature_detected!("avx2"),
            "the AVX2 walk is picked exactly when the CPU has AVX2"
        );
        let f = e.n_features + 2;
        let x = probing_rows(e, rows, f);
        let fast = e.scores(&x, rows, f).unwrap();
        e.walk = None;
        let scalar = e.scores(&x, rows, f).unwrap();
        (fast, scalar)
    }

    #[test]
    fn avx2_walk_reaches_the_same_leaves_as_the_scalar_walk() {
        // LEQ (scikit-learn), LT (XGBoost, LightGBM), missing values sent either
        // way (HistGradientBoosting, XGBoost), one and several targets; 203 rows
        // leave a partial block.
        for model in [
            "rf_binary.onnx",
            "rf_multiclass_strlabels.onnx",
            "et_regressor.onnx",
            "gb_multiclass.onnx",
            "hgb_binary_nan.onnx",
            "hgb_regressor_nan.onnx",
            "xgb_multiclass.onnx",
            "xgb_regressor.onnx",
            "lgbm_binary.onnx",
            "catboost_regressor.onnx",
        ] {
            let mut e = parse(&ensemble_node(model));
            let (fast, scalar) = both_walks(&mut e, 203);
            assert!(
                scalar.iter().any(|v| *v != 0.0),
                "{model}: all scores are zero"
            );
            assert_eq!(fast, scalar, "{model}");
        }
    }

    #[test]
    fn avx2_walk_agrees_on_set_splits() {
        // XGBoost (LT, sets sent right) and LightGBM (LEQ, bitsets sent left)
        // categorical models, through the native translation.
        use crate::model::native;
        for model in [
            "xgb_categorical.json",
            "xgb_categorical_binary.json",
            "xgb_categorical_codes.json",
            "lgbm_categorical.txt",
            "lgbm_categorical_binary.txt",
            "lgbm_categorical_codes.txt",
        ] {
            let path = format!(
                "{}/testdata/models/native/{model}",
                env!("CARGO_MANIFEST_DIR")
            );
            let bytes = std::fs::read(&path).unwrap();
            let format = native::detect(&bytes).unwrap();
            let t = native::translate(format, &bytes, native::Options::default()).unwrap();
            let node = (t.proto.graph.unwrap().node.into_iter())
                .find(|n| n.op_type.starts_with("TreeEnsemble"))
                .unwrap();
            let mut e = parse(&node);
            assert!(e.with_sets.is_some() && !e.sets.is_empty(), "{model}");
            let (fast, scalar) = both_walks(&mut e, 203);
            assert!(scalar.iter().any(|v| *v != 0.0), "{model}: all zero");
            assert_eq!(fast, scalar, "{model}");
        }
    }

    #[test]
    fn avx2_walk_agrees_on_trees_shallower_than_its_tables() {
        use tract_onnx::pb::{attribute_proto::AttributeType, AttributeProto};
        let ints = |name: &str, v: &[i64]| AttributeProto {
            name: name.into(),
            r#type: AttributeType::Ints as i32,
            ints: v.to_vec(),
            ..Default::default()
        };
        let floats = |name: &str, v: &[f32]| AttributeProto {
            name: name.into(),
            r#type: AttributeType::Floats as i32,
            floats: v.to_vec(),
            ..Default::default()
        };
        let modes: Vec<Vec<u8>> = ["LEAF", "BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LEQ", "LEAF"]
            .into_iter()
            .chain(["BRANCH_LEQ", "LEAF", "LEAF"])
            .map(|m| m.as_bytes().to_vec())
            .collect();
        // Tree 0 is one leaf; tree 1 has depth 1; tree 2 has depth 2 on its "false"
        // side only, and sends missing values "true" at its second branch.
        let node = NodeProto {
            op_type: "TreeEnsembleRegressor".into(),
            attribute: vec![
                ints("nodes_treeids", &[0, 1, 1, 1, 2, 2, 2, 2, 2]),
                ints("nodes_nodeids", &[0, 0, 1, 2, 0, 1, 2, 3, 4]),
                ints("nodes_featureids", &[0, 0, 0, 0, 1, 0, 2, 0, 0]),
                floats(
                    "nodes_values",
                    &[0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
                ),
                AttributeProto {
                    name: "nodes_modes".into(),
                    r#type: AttributeType::Strings as i32,
                    strings: modes,
                    ..Default::default()
                },
                ints("nodes_truenodeids", &[0, 1, 0, 0, 1, 0, 3, 0, 0]),
                ints("nodes_falsenodeids", &[0, 2, 0, 0, 2, 0, 4, 0, 0]),
                ints(
                    "nodes_missing_value_tracks_true",
                    &[0, 0, 0, 0, 0, 0, 1, 0, 0],
                ),
                ints("target_treeids", &[0, 1, 1, 2, 2, 2]),
                ints("target_nodeids", &[0, 1, 2, 1, 3, 4]),
                ints("target_ids", &[0; 6]),
                floats("target_weights", &[1.0, 2.0, 3.0, 10.0, 20.0, 30.0]),
            ],
            ..Default::default()
        };
        let mut e = parse(&node);
        let deepest: Vec<u32> = e.depths.iter().map(|d| d.1).collect();
        assert_eq!(deepest, [0, 1, 2]);
        let (fast, scalar) = both_walks(&mut e, 77);
        assert!(scalar.contains(&(1.0 + 3.0 + 30.0)));
        assert_eq!(fast, scalar);
    }

    #[test]
    fn avx2_walk_agrees_under_every_uniform_comparison() {
        let leq = ensemble_node("hgb_binary_nan.onnx");
        for (name, mode) in [
            ("BRANCH_LT", Mode::Lt),
            ("BRANCH_GTE", Mode::Gte),
            ("BRANCH_GT", Mode::Gt),
            ("BRANCH_EQ", Mode::Eq),
        ] {
            let mut node = leq.clone();
            let modes = node.attribute.iter_mut().find(|a| a.name == "nodes_modes");
            for m in &mut modes.unwrap().strings {
                if m.as_slice() != b"LEAF" {
                    *m = name.as_bytes().to_vec();
                }
            }
            let mut e = parse(&node);
            assert_eq!(e.mode, Some(mode));
            let (fast, scalar) = both_walks(&mut e, 130);
            assert_eq!(fast, scalar, "{name}");
        }
    }

    #[test]
    fn avx2_walk_declines_nodes_it_cannot_pack() {
        let branch = |feature: u32, next: u32| Node {
            threshold: 0.5,
            meta: feature,
            next,
        };
        let leaf = |at: u32| Node {
            threshold: f32::NAN,
            meta: 0,
            next: at,
        };
        let fits = [branch(3, 2), leaf(1), leaf(2)];
        let wide = [branch(1 << 30, 2), leaf(1), leaf(2)];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            assert!(avx2::Walker::new(&fits, &[0], &[(1, 1)], Mode::Leq, &[]).is_some());
        }
        assert!(avx2::Walker::new(&wide, &[0], &[(1, 1)], Mode::Leq, &[]).is_none());
        assert!(avx2::Walker::new(&fits, &[0], &[(1, 1)], Mode::Neq, &[]).is_none());
    }
}
