//! `LinearClassifier` (ai.onnx.ml): scores = X·Wᵀ + b, then labels and probabilities.
//!
//! tract's own version refuses string labels, takes the argmax before expanding
//! binary scores, and spends most of its time in a 4-wide Softmax; this one is a
//! plain loop over rows that keeps the K scores of a row in registers.

use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::classes::{self, BinaryScore, Labels, PostTransform};
use super::kernel::Kernel;

#[derive(Debug)]
pub struct LinearClassifier {
    /// `[K', F]`, row-major: one row of coefficients per score.
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    scores_per_row: usize,
    labels: Labels,
    post: PostTransform,
}

pub fn linear_classifier(node: &NodeProto) -> TractResult<LinearClassifier> {
    let labels = Labels::from_node(node)?;
    let coefficients: Vec<f32> = node.get_attr_vec("coefficients")?;
    let intercepts: Vec<f32> = node.get_attr_opt_vec("intercepts")?.unwrap_or_default();
    let scores_per_row = if intercepts.is_empty() {
        labels.len()
    } else {
        intercepts.len()
    };
    ensure!(
        scores_per_row > 0 && coefficients.len().is_multiple_of(scores_per_row),
        "{} coefficients do not split into {scores_per_row} rows",
        coefficients.len()
    );
    Ok(LinearClassifier {
        coefficients,
        intercepts,
        scores_per_row,
        labels,
        post: PostTransform::from_node(node)?,
    })
}

impl Kernel for LinearClassifier {
    fn name(&self) -> &'static str {
        "LinearClassifier"
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
        let x = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let k = self.scores_per_row;
        ensure!(
            self.coefficients.len() == k * f,
            "the model has {} coefficients per score, the input has {f} columns",
            self.coefficients.len() / k
        );
        // SAFETY: every one of the n·k values is written below.
        let mut scores = unsafe { Tensor::uninitialized::<f32>(&[n, k])? };
        {
            let mut view = scores.try_as_plain_ram_mut()?;
            let out = view.as_slice_mut::<f32>()?;
            for r in 0..n {
                let row = &x[r * f..(r + 1) * f];
                for (j, slot) in out[r * k..(r + 1) * k].iter_mut().enumerate() {
                    let w = &self.coefficients[j * f..(j + 1) * f];
                    *slot =
                        super::dot::dot(row, w) + self.intercepts.get(j).copied().unwrap_or(0.0);
                }
            }
        }
        // onnxruntime expands one binary score as a probability after LOGISTIC.
        let post = self.post;
        if k == 1 && self.labels.len() == 2 {
            let mut idx = Vec::with_capacity(n);
            let mut probs = Vec::with_capacity(2 * n);
            for &s in scores.try_as_plain_ram()?.as_slice::<f32>()? {
                idx.push((s > 0.0) as usize);
                let p = if post == PostTransform::Logistic {
                    classes::logistic(s)
                } else {
                    s
                };
                probs.extend_from_slice(&[1.0 - p, p]);
            }
            return Ok(tvec!(
                self.labels.gather(&idx)?.into_tvalue(),
                tensor1(&probs).into_shape(&[n, 2])?.into_tvalue()
            ));
        }
        classes::finish(scores, &self.labels, post, BinaryScore::Margin)
    }
}
