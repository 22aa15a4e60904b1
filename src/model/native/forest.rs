//! A tree ensemble read from a training library's own file, and its translation
//! into the ONNX-ML graph batchinfer already runs: one `TreeEnsembleRegressor` or
//! `TreeEnsembleClassifier` (evaluated by `model::ml::trees`, the evaluator of
//! ONNX tree models) and, where the objective needs it, one standard operator for
//! the link function. Native and ONNX tree models therefore share one tree
//! representation, one evaluator and one output layout.

use tract_onnx::pb;

use super::proto::{model, node, value_info, Attr, Attrs};

/// A split or a leaf of one tree; children are indices into the tree's nodes.
#[derive(Debug, Clone)]
pub enum Node {
    /// Goes to `left` when `x < threshold` (`x <= threshold` in a forest whose
    /// `inclusive` is set), or when `x` is missing and `missing_left`; else to
    /// `right`. With `zero_missing` (LightGBM's zeros as missing, inclusive
    /// forests only), a value within 1e-35 of 0 is missing too.
    Less {
        feature: usize,
        threshold: f32,
        left: usize,
        right: usize,
        missing_left: bool,
        zero_missing: bool,
    },
    /// A categorical split: goes to `member` when the category of `x` is in `set`
    /// (its integer part, as the forest's `category_rule` says), to `member` also
    /// when `x` is missing and `missing_member`; else to `other`.
    In {
        feature: usize,
        set: Vec<u32>,
        member: usize,
        other: usize,
        missing_member: bool,
    },
    /// Adds `values[k]` to output `first + k`; with `linear` (one value), adds
    /// what the linear model gives instead.
    Leaf {
        first: usize,
        values: Vec<f32>,
        linear: Option<LinearLeaf>,
    },
}

/// A leaf's linear model (LightGBM's linear trees): its value is
/// `constant + Σ coefficient · x[feature]`, or the leaf's own value when one of
/// those features is missing.
#[derive(Debug, Clone)]
pub struct LinearLeaf {
    pub constant: f32,
    pub terms: Vec<(usize, f32)>,
}

impl Node {
    /// A node's attributes: feature, threshold, mode, "true" and "false" children
    /// (as numbered in `ids`), whether a missing value goes "true".
    fn branch(
        &self,
        ids: &[usize],
        split: &'static str,
    ) -> (usize, f32, &'static str, usize, usize, bool) {
        match *self {
            Node::Less {
                feature,
                threshold,
                left,
                right,
                missing_left,
                zero_missing,
            } => {
                let mode = match (zero_missing, missing_left) {
                    (false, _) => split,
                    (true, true) => "BATCHINFER_LEQ_OR_ZERO",
                    (true, false) => "BATCHINFER_LEQ_NOT_ZERO",
                };
                (
                    feature,
                    threshold,
                    mode,
                    ids[left],
                    ids[right],
                    missing_left,
                )
            }
            Node::In {
                feature,
                member,
                other,
                missing_member,
                ..
            } => (
                feature,
                0.0,
                "BRANCH_MEMBER",
                ids[member],
                ids[other],
                missing_member,
            ),
            Node::Leaf { .. } => (0, 0.0, "LEAF", 0, 0, false),
        }
    }

    /// The children of a split, in the order the translation lists them.
    fn children(&self) -> Option<(usize, usize)> {
        match *self {
            Node::Less { left, right, .. } => Some((left, right)),
            Node::In { member, other, .. } => Some((member, other)),
            Node::Leaf { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The nodes in depth-first order from the root (`order`) and each node's
    /// position in it (`ids`): nodes no path reaches (deleted by pruning) are left
    /// out, with id `usize::MAX`.
    fn preorder(&self) -> (Vec<usize>, Vec<usize>) {
        let mut ids = vec![usize::MAX; self.nodes.len()];
        let mut order = vec![];
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            ids[i] = order.len();
            order.push(i);
            if let Some((a, b)) = self.nodes[i].children() {
                stack.push(b);
                stack.push(a);
            }
        }
        (ids, order)
    }
}

/// What the margins become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// A `prediction` column per output: the margin through `Link`.
    Regression(Link),
    /// A classifier over classes 0 and 1: one margin, logistic, `label` and
    /// `probabilities` (two columns).
    Binary,
    /// A classifier over classes 0..K: K margins, softmax, `label` and
    /// `probabilities`.
    Multiclass,
    /// A classifier over classes 0..K, one logistic per class (one-vs-all: the
    /// probabilities need not add up to 1), `label` the most probable.
    OneVsAll,
    /// `prediction` is 1 when the margin is positive, else 0 (XGBoost's hinge).
    Hinge,
    /// The margins themselves, as `margin` (`--raw-score`).
    Margin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Identity,
    Sigmoid,
    Exp,
    /// ln(1 + e^x).
    Softplus,
}

impl Link {
    /// The standard ONNX operator that applies the link, if any.
    pub(super) fn operator(self) -> Option<&'static str> {
        match self {
            Link::Identity => None,
            Link::Sigmoid => Some("Sigmoid"),
            Link::Exp => Some("Exp"),
            Link::Softplus => Some("Softplus"),
        }
    }
}

/// A whole ensemble: every tree adds to the margins, which start at `base`.
#[derive(Debug, Clone)]
pub struct Forest {
    pub n_features: usize,
    pub trees: Vec<Tree>,
    /// One starting margin per output (class or target).
    pub base: Vec<f32>,
    pub head: Head,
    /// Splits compare with `<=` (LightGBM) rather than `<` (XGBoost).
    pub inclusive: bool,
    /// What the head multiplies the margins by first (LightGBM's `sigmoid`
    /// parameter); raw margins (`Head::Margin`) are not scaled.
    pub scale: f32,
    /// How a categorical split takes the category of a value: `xgboost` or
    /// `lightgbm` (the evaluator's membership rules of the same names).
    pub category_rule: &'static str,
}

impl Forest {
    pub fn n_outputs(&self) -> usize {
        self.base.len()
    }

    /// Checks what the translation relies on: children and features in range,
    /// leaves writing to existing outputs, every node reachable at most once.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.trees.is_empty(), "the model has no trees");
        anyhow::ensure!(self.n_features > 0, "the model reads no features");
        for (t, tree) in self.trees.iter().enumerate() {
            let mut seen = vec![false; tree.nodes.len()];
            let mut stack = vec![0usize];
            anyhow::ensure!(!tree.nodes.is_empty(), "tree {t} has no nodes");
            while let Some(i) = stack.pop() {
                anyhow::ensure!(
                    i < tree.nodes.len() && !seen[i],
                    "tree {t}: node {i} is out of range or reached twice"
                );
                seen[i] = true;
                match &tree.nodes[i] {
                    Node::Less { feature, .. } | Node::In { feature, .. } => {
                        anyhow::ensure!(
                            *feature < self.n_features,
                            "tree {t}: node {i} splits on feature {feature}, the model has {}",
                            self.n_features
                        );
                        let (a, b) = tree.nodes[i].children().expect("a split");
                        stack.push(a);
                        stack.push(b);
                    }
                    Node::Leaf {
                        first,
                        values,
                        linear,
                    } => {
                        anyhow::ensure!(
                            first + values.len() <= self.n_outputs(),
                            "tree {t}: leaf {i} writes output {}, the model has {}",
                            first + values.len(),
                            self.n_outputs()
                        );
                        let reads = linear.iter().flat_map(|l| &l.terms).map(|(f, _)| *f);
                        if let Some(f) = reads.max().filter(|&f| f >= self.n_features) {
                            anyhow::bail!(
                                "tree {t}: leaf {i} reads feature {f}, the model has {}",
                                self.n_features
                            );
                        }
                        anyhow::ensure!(
                            linear.is_none() || values.len() == 1,
                            "tree {t}: linear leaf {i} holds {} values",
                            values.len()
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// The ONNX model: input `input` of shape `[N, n_features]` (float32), outputs
    /// as `head` says. Call after [`Forest::check`].
    pub fn to_onnx(&self, producer: &str) -> pb::ModelProto {
        let graph = pb::GraphProto {
            name: producer.into(),
            input: vec![value_info("input", 1, &[self.n_features])],
            ..self.head_graph(self.tree_attributes())
        };
        model(producer, graph)
    }

    /// The ensemble's attributes: nodes, leaves (named for a classifier or a
    /// regressor) and base values.
    fn tree_attributes(&self) -> Vec<pb::AttributeProto> {
        let scale = if self.head == Head::Margin {
            1.0
        } else {
            self.scale
        };
        let split = if self.inclusive {
            "BRANCH_LEQ"
        } else {
            "BRANCH_LT"
        };
        let mut nodes = Attrs::default();
        let mut leaves = Attrs::default();
        // The members of every categorical split in the order they are listed,
        // each set closed by a NaN (opset 5's `membership_values`).
        let mut members: Vec<f32> = vec![];
        let mut linear_leaves = Attrs::default();
        for (t, tree) in self.trees.iter().enumerate() {
            let (ids, order) = tree.preorder();
            for &i in &order {
                nodes.ints("nodes_treeids", t as i64);
                nodes.ints("nodes_nodeids", ids[i] as i64);
                // The sets and leaf weights go in lists of their own.
                match &tree.nodes[i] {
                    Node::In { set, .. } => {
                        members.extend(set.iter().map(|&c| c as f32));
                        members.push(f32::NAN);
                    }
                    Node::Leaf {
                        first,
                        values,
                        linear,
                    } => {
                        for (k, v) in values.iter().enumerate() {
                            leaves.ints("treeids", t as i64);
                            leaves.ints("nodeids", ids[i] as i64);
                            leaves.ints("ids", (first + k) as i64);
                            leaves.floats("weights", *v * scale);
                        }
                        if let Some(l) = linear {
                            // The evaluator's linear leaves (`ml::trees::linear`).
                            linear_leaves.ints("batchinfer_linear_treeids", t as i64);
                            linear_leaves.ints("batchinfer_linear_nodeids", ids[i] as i64);
                            linear_leaves.floats("batchinfer_linear_constants", l.constant * scale);
                            linear_leaves.ints("batchinfer_linear_counts", l.terms.len() as i64);
                            for &(f, c) in &l.terms {
                                linear_leaves.ints("batchinfer_linear_features", f as i64);
                                linear_leaves.floats("batchinfer_linear_coefficients", c * scale);
                            }
                        }
                    }
                    Node::Less { .. } => {}
                }
                let (feature, value, mode, true_id, false_id, missing) =
                    tree.nodes[i].branch(&ids, split);
                nodes.ints("nodes_featureids", feature as i64);
                nodes.floats("nodes_values", value);
                nodes.strings("nodes_modes", mode);
                nodes.ints("nodes_truenodeids", true_id as i64);
                nodes.ints("nodes_falsenodeids", false_id as i64);
                nodes.ints("nodes_missing_value_tracks_true", missing as i64);
            }
        }
        let classifier = matches!(self.head, Head::Binary | Head::Multiclass | Head::OneVsAll);
        let prefix = if classifier { "class_" } else { "target_" };
        let mut attrs = nodes.0;
        for (name, a) in leaves.0 {
            attrs.push((format!("{prefix}{name}"), a));
        }
        attrs.extend(linear_leaves.0);
        let mut attributes: Vec<pb::AttributeProto> =
            attrs.into_iter().map(|(n, a)| a.named(n)).collect();
        let base = self.base.iter().map(|b| b * scale).collect();
        attributes.push(Attr::Floats(base).named("base_values".into()));
        if !members.is_empty() {
            // BRANCH_MEMBER in a TreeEnsembleRegressor/Classifier is batchinfer's
            // own extension (the evaluator reads it; see `ml::trees`), so that the
            // classifier heads stay as they are for categorical models.
            attributes.push(Attr::Floats(members).named("membership_values".into()));
            attributes.push(
                Attr::String(self.category_rule.into()).named("batchinfer_membership_rule".into()),
            );
        }
        attributes
    }

    /// The graph's nodes and outputs: the ensemble with `attributes`, then what
    /// the head makes of its margins.
    fn head_graph(&self, mut attributes: Vec<pb::AttributeProto>) -> pb::GraphProto {
        let n = self.n_outputs();
        // The margins, from a regressor without a post transform, into `name`.
        let regressor = |mut attributes: Vec<pb::AttributeProto>, name: &str| {
            attributes.push(Attr::Int(n as i64).named("n_targets".into()));
            attributes.push(Attr::String("NONE".into()).named("post_transform".into()));
            node(
                "TreeEnsembleRegressor",
                "ai.onnx.ml",
                &["input"],
                &[name],
                attributes,
            )
        };
        let (graph_nodes, outputs) = match self.head {
            Head::Binary | Head::Multiclass | Head::OneVsAll => {
                let classes = if self.head == Head::Binary { 2 } else { n };
                attributes.push(
                    Attr::Ints((0..classes as i64).collect()).named("classlabels_int64s".into()),
                );
                let post = if self.head == Head::Multiclass {
                    "SOFTMAX"
                } else {
                    "LOGISTIC"
                };
                attributes.push(Attr::String(post.into()).named("post_transform".into()));
                let classifier = node(
                    "TreeEnsembleClassifier",
                    "ai.onnx.ml",
                    &["input"],
                    &["label", "probabilities"],
                    attributes,
                );
                let outputs = vec![
                    value_info("label", 7, &[]),
                    value_info("probabilities", 1, &[classes]),
                ];
                (vec![classifier], outputs)
            }
            Head::Regression(link) => {
                let nodes = match link.operator() {
                    None => vec![regressor(attributes, "prediction")],
                    Some(op) => vec![
                        regressor(attributes, "margin"),
                        node(op, "", &["margin"], &["prediction"], vec![]),
                    ],
                };
                (nodes, vec![value_info("prediction", 1, &[n])])
            }
            Head::Margin => (
                vec![regressor(attributes, "margin")],
                vec![value_info("margin", 1, &[n])],
            ),
            // 1 when the margin is positive, else 0: Relu(Sign(margin)).
            Head::Hinge => {
                let nodes = vec![
                    regressor(attributes, "margin"),
                    node("Sign", "", &["margin"], &["sign"], vec![]),
                    node("Relu", "", &["sign"], &["prediction"], vec![]),
                ];
                (nodes, vec![value_info("prediction", 1, &[n])])
            }
        };
        pb::GraphProto {
            node: graph_nodes,
            output: outputs,
            ..Default::default()
        }
    }
}
