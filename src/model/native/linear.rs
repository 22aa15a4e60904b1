//! A linear model read from a training library's file (XGBoost's `gblinear`
//! booster), and its translation into standard ONNX operators: a missing value
//! adds nothing (as in XGBoost), the margins are `x · W + b`, and the head is
//! the same as a forest's (`forest::Head`), written with standard operators.

use tract_onnx::pb;

use super::forest::Head;
use super::proto::{initializer, model, node, value_info, Attr};

#[derive(Debug, Clone)]
pub struct Linear {
    pub n_features: usize,
    /// `[n_features, n_outputs]`, row-major.
    pub weights: Vec<f32>,
    /// The starting margin of each output (bias and base score).
    pub bias: Vec<f32>,
    pub head: Head,
}

impl Linear {
    pub fn n_outputs(&self) -> usize {
        self.bias.len()
    }

    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.n_features > 0, "the model reads no features");
        anyhow::ensure!(
            self.weights.len() == self.n_features * self.n_outputs(),
            "the model has {} weights for {} features and {} outputs",
            self.weights.len(),
            self.n_features,
            self.n_outputs()
        );
        anyhow::ensure!(
            !matches!(self.head, Head::OneVsAll),
            "a one-vs-all linear model is not supported"
        );
        Ok(())
    }

    /// The ONNX model: input `input` `[N, n_features]` float32, outputs as the
    /// head says (the same names and shapes as a forest's). Call after
    /// [`Linear::check`].
    pub fn to_onnx(&self, producer: &str) -> pb::ModelProto {
        let (f, k) = (self.n_features, self.n_outputs());
        let mut nodes = vec![
            node("IsNaN", "", &["input"], &["missing"], vec![]),
            node(
                "Where",
                "",
                &["missing", "zero", "input"],
                &["present"],
                vec![],
            ),
            node("MatMul", "", &["present", "weights"], &["product"], vec![]),
            node("Add", "", &["product", "bias"], &["margin"], vec![]),
        ];
        let mut initializers = vec![
            initializer("zero", &[], vec![0.0]),
            initializer("weights", &[f, k], self.weights.clone()),
            initializer("bias", &[k], self.bias.clone()),
        ];
        let axis = || vec![Attr::Int(1).named("axis".into())];
        let label = || {
            let keep = Attr::Int(0).named("keepdims".into());
            let axis = Attr::Int(1).named("axis".into());
            node(
                "ArgMax",
                "",
                &["probabilities"],
                &["label"],
                vec![axis, keep],
            )
        };
        let classifier = |classes: usize| {
            vec![
                value_info("label", 7, &[]),
                value_info("probabilities", 1, &[classes]),
            ]
        };
        let outputs = match self.head {
            Head::Regression(link) => {
                let op = link.operator().unwrap_or("Identity");
                nodes.push(node(op, "", &["margin"], &["prediction"], vec![]));
                vec![value_info("prediction", 1, &[k])]
            }
            Head::Margin => vec![value_info("margin", 1, &[k])],
            Head::Hinge => {
                nodes.push(node("Sign", "", &["margin"], &["sign"], vec![]));
                nodes.push(node("Relu", "", &["sign"], &["prediction"], vec![]));
                vec![value_info("prediction", 1, &[k])]
            }
            // [1 - p, p], the label the more probable.
            Head::Binary => {
                initializers.push(initializer("one", &[], vec![1.0]));
                nodes.push(node("Sigmoid", "", &["margin"], &["p"], vec![]));
                nodes.push(node("Sub", "", &["one", "p"], &["q"], vec![]));
                nodes.push(node("Concat", "", &["q", "p"], &["probabilities"], axis()));
                nodes.push(label());
                classifier(2)
            }
            Head::Multiclass => {
                nodes.push(node("Softmax", "", &["margin"], &["probabilities"], axis()));
                nodes.push(label());
                classifier(k)
            }
            Head::OneVsAll => unreachable!("refused by check"),
        };
        let graph = pb::GraphProto {
            name: producer.into(),
            node: nodes,
            initializer: initializers,
            input: vec![value_info("input", 1, &[f])],
            output: outputs,
            ..Default::default()
        };
        model(producer, graph)
    }
}
