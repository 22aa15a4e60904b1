//! `TreeEnsembleClassifier` and `TreeEnsembleRegressor` (ai.onnx.ml), evaluated by
//! batchinfer's own evaluator.
//!
//! tract 0.23.9 has no regressor, mis-labels binary classifiers and evaluates trees
//! at a few hundred rows per second. Here every tree is a run of a flat node array;
//! rows are scored in blocks, tree by tree, so a tree stays in cache while a block of
//! rows walks it. Accumulation is in f32, tree order, as onnxruntime does for float
//! models.

use std::collections::HashMap;

use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::classes::{self, BinaryScore, Labels, PostTransform};
use super::kernel::Kernel;

/// Rows walked through one tree before moving to the next.
const ROW_BLOCK: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
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
            "LEAF" => Mode::Leaf,
            other => bail!("unknown node mode {other}"),
        })
    }
}

/// One node. For a leaf, `next_true..next_false` is its range in `Ensemble::weights`.
#[derive(Debug, Clone, Copy)]
struct Node {
    threshold: f32,
    feature: u32,
    next_true: u32,
    next_false: u32,
    mode: Mode,
    missing_true: bool,
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
    nodes: Vec<Node>,
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

impl Ensemble {
    /// Parses the node and leaf attributes; `prefix` is `class` or `target`.
    fn parse(node: &NodeProto, prefix: &str, n_targets: usize) -> TractResult<Ensemble> {
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
        let node_ids: Vec<i64> = attr_vec(node, "nodes_nodeids", n)?;
        let features: Vec<i64> = attr_vec(node, "nodes_featureids", n)?;
        let values: Vec<f32> = attr_vec(node, "nodes_values", n)?;
        let modes: Vec<String> = attr_vec(node, "nodes_modes", n)?;
        let true_ids: Vec<i64> = attr_vec(node, "nodes_truenodeids", n)?;
        let false_ids: Vec<i64> = attr_vec(node, "nodes_falsenodeids", n)?;
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
        for j in 0..m {
            let target = leaf_target[j];
            ensure!(
                target >= 0 && (target as usize) < n_targets,
                "leaf of tree {} writes to {prefix} {target}, but there are {n_targets}",
                leaf_tree[j]
            );
            let at = *index.get(&(leaf_tree[j], leaf_node[j])).with_context(|| {
                format!(
                    "leaf weight for unknown node {} of tree {}",
                    leaf_node[j], leaf_tree[j]
                )
            })?;
            by_leaf
                .entry(at)
                .or_default()
                .push((target as u32, leaf_weight[j]));
            all_weights_positive &= leaf_weight[j] >= 0.0;
            used.insert(target);
        }

        let mut nodes = Vec::with_capacity(n);
        let mut weights = Vec::with_capacity(m);
        let mut is_child = vec![false; n];
        let mut max_feature = 0usize;
        for i in 0..n {
            let mode = Mode::parse(&modes[i])?;
            let node = if mode == Mode::Leaf {
                let start = weights.len() as u32;
                weights.extend(by_leaf.get(&(i as u32)).into_iter().flatten());
                Node {
                    threshold: 0.0,
                    feature: 0,
                    next_true: start,
                    next_false: weights.len() as u32,
                    mode,
                    missing_true: false,
                }
            } else {
                let child = |id: i64| -> TractResult<u32> {
                    let c = *index.get(&(tree_ids[i], id)).with_context(|| {
                        format!(
                            "node {} of tree {} points to missing node {id}",
                            node_ids[i], tree_ids[i]
                        )
                    })?;
                    Ok(c)
                };
                let (t, f) = (child(true_ids[i])?, child(false_ids[i])?);
                is_child[t as usize] = true;
                is_child[f as usize] = true;
                ensure!(
                    features[i] >= 0,
                    "negative feature id in tree {}",
                    tree_ids[i]
                );
                max_feature = max_feature.max(features[i] as usize + 1);
                Node {
                    threshold: values[i],
                    feature: features[i] as u32,
                    next_true: t,
                    next_false: f,
                    mode,
                    missing_true: missing[i] != 0,
                }
            };
            nodes.push(node);
        }
        // A root is the one node of a tree that no node points to.
        let mut roots_by_tree = std::collections::BTreeMap::new();
        for i in 0..n {
            if !is_child[i] {
                ensure!(
                    roots_by_tree.insert(tree_ids[i], i as u32).is_none(),
                    "tree {} has more than one root",
                    tree_ids[i]
                );
            }
        }
        let roots: Vec<u32> = roots_by_tree.into_values().collect();
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
        Ok(Ensemble {
            roots,
            nodes,
            weights,
            n_targets,
            n_features: max_feature,
            aggregate,
            base_values,
            all_weights_positive,
            targets_used: used.len(),
        })
    }

    #[inline]
    fn leaf(&self, root: u32, row: &[f32]) -> &Node {
        let mut node = &self.nodes[root as usize];
        loop {
            let x = row[node.feature as usize];
            let t = node.threshold;
            let go_true = match node.mode {
                Mode::Leq => x <= t,
                Mode::Lt => x < t,
                Mode::Gte => x >= t,
                Mode::Gt => x > t,
                Mode::Eq => x == t,
                Mode::Neq => x != t,
                Mode::Leaf => return node,
            } || (node.missing_true && x.is_nan());
            node = &self.nodes[if go_true {
                node.next_true
            } else {
                node.next_false
            } as usize];
        }
    }

    /// Aggregated scores `[N, n_targets]` (base values not yet added).
    fn scores(&self, x: &[f32], n: usize, f: usize) -> TractResult<Vec<f32>> {
        ensure!(
            f >= self.n_features,
            "the trees read feature {} but the input has {f} columns",
            self.n_features - 1
        );
        let t = self.n_targets;
        let init = match self.aggregate {
            Aggregate::Sum | Aggregate::Average => 0.0,
            Aggregate::Min => f32::INFINITY,
            Aggregate::Max => f32::NEG_INFINITY,
        };
        let mut out = vec![init; n * t];
        let mut touched = vec![
            false;
            if matches!(self.aggregate, Aggregate::Min | Aggregate::Max) {
                n * t
            } else {
                0
            }
        ];
        for start in (0..n).step_by(ROW_BLOCK) {
            let end = (start + ROW_BLOCK).min(n);
            for &root in &self.roots {
                for r in start..end {
                    let leaf = self.leaf(root, &x[r * f..(r + 1) * f]);
                    let acc = &mut out[r * t..(r + 1) * t];
                    for &(target, w) in
                        &self.weights[leaf.next_true as usize..leaf.next_false as usize]
                    {
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
        }
        if self.aggregate == Aggregate::Average {
            let trees = self.roots.len() as f32;
            out.iter_mut().for_each(|v| *v /= trees);
        }
        for (v, seen) in out.iter_mut().zip(touched.iter()) {
            if !seen {
                *v = 0.0;
            }
        }
        Ok(out)
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

/// `TreeEnsembleRegressor`: `[N, F]` → `[N, n_targets]` f32.
#[derive(Debug)]
pub struct TreeRegressor {
    ensemble: Ensemble,
    post: PostTransform,
}

pub fn regressor(node: &NodeProto) -> TractResult<TreeRegressor> {
    let n_targets = node.get_attr_opt::<i64>("n_targets")?.unwrap_or(1).max(1) as usize;
    Ok(TreeRegressor {
        ensemble: Ensemble::parse(node, "target", n_targets)?,
        post: PostTransform::from_node(node)?,
    })
}

impl Kernel for TreeRegressor {
    fn name(&self) -> &'static str {
        "TreeEnsembleRegressor"
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
        for row in scores.chunks_mut(self.ensemble.n_targets) {
            self.post.apply(row);
        }
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
        classes::classifier_rules(s, inputs, outputs, &self.labels)
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(classes::classifier_facts(inputs, &self.labels))
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
            let mut single: Vec<f32> = scores.chunks(2).map(|r| r[0] + r[1] + base).collect();
            let kind = if self.ensemble.all_weights_positive {
                BinaryScore::Probability
            } else {
                BinaryScore::Margin
            };
            return classes::finish(&mut single, n, &self.labels, self.post, kind);
        }
        let mut scores = scores;
        self.ensemble.add_base_values(&mut scores);
        classes::finish(&mut scores, n, &self.labels, self.post, BinaryScore::Margin)
    }
}
