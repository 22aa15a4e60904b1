//! What ONNX-ML classifiers share: class labels, post transforms, and turning a row
//! of raw scores into a label and the probabilities onnxruntime reports.
//!
//! The binary conventions follow onnxruntime, the reference the exporters test
//! against: a classifier that produces one score for two classes expands it to
//! `[p0, p1]` *after* deciding the label, and the rule depends on whether the model
//! has only positive leaf weights (a probability) or signed ones (a margin).

use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

/// Class labels keep their type: int64 or string.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    Int(Vec<i64>),
    Str(Vec<String>),
}

impl Labels {
    /// Reads `classlabels_int64s` (`classlabels_ints` in LinearClassifier and
    /// SVMClassifier) or `classlabels_strings`.
    pub fn from_node(node: &NodeProto) -> TractResult<Labels> {
        let ints = match node.get_attr_opt_vec::<i64>("classlabels_int64s")? {
            Some(v) => Some(v),
            None => node.get_attr_opt_vec::<i64>("classlabels_ints")?,
        };
        let strs = node.get_attr_opt_vec::<String>("classlabels_strings")?;
        match (ints, strs) {
            (Some(i), None) => Ok(Labels::Int(i)),
            (None, Some(s)) => Ok(Labels::Str(s)),
            (Some(i), Some(s)) if s.is_empty() => Ok(Labels::Int(i)),
            (Some(i), Some(s)) if i.is_empty() => Ok(Labels::Str(s)),
            _ => bail!("expected exactly one of classlabels_int64s and classlabels_strings"),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Labels::Int(v) => v.len(),
            Labels::Str(v) => v.len(),
        }
    }

    pub fn datum_type(&self) -> DatumType {
        match self {
            Labels::Int(_) => i64::datum_type(),
            Labels::Str(_) => String::datum_type(),
        }
    }

    /// Column suffixes for a probability output: the labels as text.
    pub fn names(&self) -> Vec<String> {
        match self {
            Labels::Int(v) => v.iter().map(|l| l.to_string()).collect(),
            Labels::Str(v) => v.clone(),
        }
    }

    /// A `[N]` tensor holding the label at each index.
    pub fn gather(&self, indices: &[usize]) -> TractResult<Tensor> {
        Ok(match self {
            Labels::Int(v) => tensor1(&indices.iter().map(|&i| v[i]).collect::<Vec<_>>()),
            Labels::Str(v) => tensor1(&indices.iter().map(|&i| v[i].clone()).collect::<Vec<_>>()),
        })
    }
}

/// ONNX-ML `post_transform`. PROBIT is refused when the model loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
}

impl PostTransform {
    pub fn from_node(node: &NodeProto) -> TractResult<PostTransform> {
        match node
            .get_attr_opt::<&str>("post_transform")?
            .unwrap_or("NONE")
        {
            "NONE" => Ok(PostTransform::None),
            "LOGISTIC" => Ok(PostTransform::Logistic),
            "SOFTMAX" => Ok(PostTransform::Softmax),
            "SOFTMAX_ZERO" => Ok(PostTransform::SoftmaxZero),
            other => bail!("post_transform {other} is not supported by batchinfer yet"),
        }
    }

    /// Applies the transform to one row of scores in place.
    pub fn apply(self, row: &mut [f32]) {
        match self {
            PostTransform::None => {}
            PostTransform::Logistic => row.iter_mut().for_each(|v| *v = logistic(*v)),
            PostTransform::Softmax => softmax(row, false),
            PostTransform::SoftmaxZero => softmax(row, true),
        }
    }

    /// Applies the transform to every row of `k` scores in place. SOFTMAX runs the
    /// exponentials over the whole buffer with tract's vectorised kernel: per-row
    /// `expf` calls were a tenth of the logistic regression's CPU in a perf profile.
    pub fn apply_rows(self, scores: &mut [f32], k: usize) -> TractResult<()> {
        if self != PostTransform::Softmax || k == 0 {
            scores.chunks_mut(k.max(1)).for_each(|row| self.apply(row));
            return Ok(());
        }
        for row in scores.chunks_mut(k) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            row.iter_mut().for_each(|v| *v -= max);
        }
        exp_in_place(scores)?;
        for row in scores.chunks_mut(k) {
            let sum: f32 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= sum);
        }
        Ok(())
    }
}

/// `exp(x)` for every `x ≤ 0` (a score minus its row's maximum), by tract-linalg's
/// softmax kernel for this CPU (AVX-512 here) with its subtrahend at 0.
fn exp_in_place(x: &mut [f32]) -> TractResult<()> {
    use std::sync::OnceLock;
    use tract_onnx::tract_core::tract_linalg::reduce::MapReduce;
    use tract_onnx::tract_core::tract_linalg::Func;
    static KERNEL: OnceLock<Box<dyn MapReduce<f32, f32>>> = OnceLock::new();
    let kernel = match KERNEL.get() {
        Some(k) => k,
        None => {
            let k = Func::Softmax2.map_reduce_f32()?;
            KERNEL.get_or_init(|| k)
        }
    };
    kernel.run_with_params(x, 0.0)?;
    Ok(())
}

/// The logistic function, computed on |v| as onnxruntime does so that large
/// negative scores keep their precision.
pub fn logistic(v: f32) -> f32 {
    let l = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 {
        1.0 - l
    } else {
        l
    }
}

/// Softmax; with `keep_zeros` (SOFTMAX_ZERO) scores within 1e-7 of zero stay
/// (almost) zero and do not count in the sum, as in onnxruntime.
fn softmax(row: &mut [f32], keep_zeros: bool) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    if keep_zeros {
        let exp_neg_max = (-max).exp();
        for v in row.iter_mut() {
            if v.abs() <= 1e-7 {
                *v *= exp_neg_max;
            } else {
                *v = (*v - max).exp();
                sum += *v;
            }
        }
    } else {
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// Index of the first largest score.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// How a single score stands for two classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryScore {
    /// A probability of the positive class: label by `s > 0.5`, scores `[1 - s, s]`.
    Probability,
    /// A signed margin: label by `s > 0`, scores `[σ(-s), σ(s)]` under LOGISTIC, else `[-s, s]`.
    Margin,
}

impl BinaryScore {
    /// Label index (0 or 1) and the two scores.
    pub fn expand(self, s: f32, post: PostTransform) -> (usize, [f32; 2]) {
        match self {
            BinaryScore::Probability => ((s > 0.5) as usize, [1.0 - s, s]),
            BinaryScore::Margin => {
                let scores = if post == PostTransform::Logistic {
                    [logistic(-s), logistic(s)]
                } else {
                    [-s, s]
                };
                ((s > 0.0) as usize, scores)
            }
        }
    }
}

/// Turns raw scores `[N, W]` into labels `[N]` and probabilities `[N, K]`.
/// With `W == 1` and two labels, `binary` says how the one score is expanded.
pub fn finish(
    mut scores: Tensor,
    labels: &Labels,
    post: PostTransform,
    binary: BinaryScore,
) -> TractResult<TVec<TValue>> {
    let k = labels.len();
    let (n, width) = match scores.shape() {
        [n, w] => (*n, *w),
        other => bail!("expected [N, K] scores, got shape {other:?}"),
    };
    let mut idx = Vec::with_capacity(n);
    let probs: Tensor = if width == 1 && k == 2 {
        let mut out = Vec::with_capacity(2 * n);
        for &s in scores.try_as_plain_ram()?.as_slice::<f32>()? {
            let (label, scores) = binary.expand(s, post);
            idx.push(label);
            out.extend_from_slice(&scores);
        }
        tensor1(&out).into_shape(&[n, 2])?
    } else {
        ensure!(width == k, "{width} scores per row for {k} class labels");
        {
            let mut view = scores.try_as_plain_ram_mut()?;
            let all = view.as_slice_mut::<f32>()?;
            idx.extend(all.chunks(k.max(1)).map(argmax));
            post.apply_rows(all, k)?;
        }
        scores
    };
    Ok(tvec!(
        labels.gather(&idx)?.into_tvalue(),
        probs.into_tvalue()
    ))
}

/// Type rules shared by classifiers: labels `[N]`, scores `[N, width]` (width is
/// the number of classes, except for SVMs without probabilities).
pub fn classifier_rules<'r, 'p: 'r>(
    s: &mut Solver<'r>,
    inputs: &'p [TensorProxy],
    outputs: &'p [TensorProxy],
    labels: &Labels,
    width: usize,
) -> InferenceResult {
    s.equals(&outputs[0].datum_type, labels.datum_type())?;
    s.equals(&outputs[0].rank, 1)?;
    s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
    s.equals(&outputs[1].datum_type, f32::datum_type())?;
    s.equals(&outputs[1].rank, 2)?;
    s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
    s.equals(&outputs[1].shape[1], width.to_dim())?;
    Ok(())
}

pub fn classifier_facts(inputs: &[&TypedFact], labels: &Labels, width: usize) -> TVec<TypedFact> {
    let n = inputs[0].shape[0].clone();
    tvec!(
        labels.datum_type().fact([n.clone()]),
        f32::datum_type().fact([n, width.to_dim()])
    )
}

/// The input as a contiguous `[N, F]` f32 matrix (ints and doubles are cast).
pub fn as_f32_matrix(t: &Tensor) -> TractResult<(usize, usize, std::borrow::Cow<'_, Tensor>)> {
    let t = if t.datum_type() == f32::datum_type() {
        std::borrow::Cow::Borrowed(t)
    } else {
        std::borrow::Cow::Owned(t.cast_to::<f32>()?.into_owned())
    };
    let (n, f) = match t.shape() {
        [n, f] => (*n, *f),
        [f] => (1, *f),
        other => bail!("expected a [N, F] input, got shape {other:?}"),
    };
    Ok((n, f, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_over_all_rows_matches_the_per_row_softmax() {
        // Rows of 3 (not a multiple of the kernel's lanes), with ties, large spreads
        // whose small terms underflow, and negative scores.
        let rows: Vec<[f32; 3]> = vec![
            [0.0, 0.0, 0.0],
            [1.0, 2.0, 3.0],
            [-50.0, 0.0, 50.0],
            [-200.0, -201.0, -199.5],
            [10.0, -95.0, 10.0],
            [0.25, -0.125, 3.5],
        ];
        let mut all: Vec<f32> = rows.iter().flatten().copied().collect();
        PostTransform::Softmax.apply_rows(&mut all, 3).unwrap();
        for (i, row) in rows.iter().enumerate() {
            let mut one = *row;
            PostTransform::Softmax.apply(&mut one);
            for (j, (a, b)) in all[i * 3..i * 3 + 3].iter().zip(&one).enumerate() {
                assert!((a - b).abs() <= 1e-6, "row {i} column {j}: {a} against {b}");
            }
            let sum: f32 = all[i * 3..i * 3 + 3].iter().sum();
            assert!((sum - 1.0).abs() <= 1e-6, "row {i} sums to {sum}");
        }
    }

    #[test]
    fn other_transforms_apply_row_by_row() {
        let mut all = vec![0.0f32, 2.0, -1.0, 0.5];
        PostTransform::Logistic.apply_rows(&mut all, 2).unwrap();
        let expected: Vec<f32> = [0.0f32, 2.0, -1.0, 0.5]
            .iter()
            .map(|&v| logistic(v))
            .collect();
        assert_eq!(all, expected);
    }
}
