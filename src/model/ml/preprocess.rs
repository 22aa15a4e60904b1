//! The small ai.onnx.ml operators exporters put around a model: `ZipMap`, `Scaler`,
//! `Imputer`, `OneHotEncoder`, `ArrayFeatureExtractor`, `Binarizer`,
//! `FeatureVectorizer`.

use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::classes::Labels;
use super::kernel::Kernel;

/// `ZipMap` turns probabilities into a sequence of maps. batchinfer keeps the
/// `[N, K]` tensor and names the K columns after the labels (see `model::outputs`).
#[derive(Debug)]
pub struct ZipMap;

impl Kernel for ZipMap {
    fn name(&self) -> &'static str {
        "ZipMap"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].without_value()))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        Ok(inputs)
    }
}

/// The class labels a ZipMap node names its columns with.
pub fn zipmap_labels(node: &NodeProto) -> TractResult<Labels> {
    Labels::from_node(node)
}

/// An op that casts its input to f32 and rewrites it in place, keeping its shape:
/// `Scaler`, `Binarizer`, `Normalizer`. [`SameShape`] makes it a [`Kernel`].
pub trait InPlaceF32: std::fmt::Debug + Send + Sync + 'static {
    /// The ONNX op type.
    const NAME: &'static str;
    /// Rewrites the values, rows of `width` values each (the last axis).
    fn apply(&self, values: &mut [f32], width: usize) -> TractResult<()>;
}

/// The [`Kernel`] of an [`InPlaceF32`] op.
#[derive(Debug)]
pub struct SameShape<T>(T);

impl<T: InPlaceF32> Kernel for SameShape<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.iter())))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let mut x = f32_input(&inputs[0])?;
        let w = width(&x);
        let mut view = x.try_as_plain_ram_mut()?;
        self.0.apply(view.as_slice_mut::<f32>()?, w)?;
        Ok(tvec!(x.into_tvalue()))
    }
}

fn f32_input(t: &Tensor) -> TractResult<Tensor> {
    Ok(t.cast_to::<f32>()?.into_owned())
}

/// `Scaler`: `(x - offset) * scale`, per column or for all.
#[derive(Debug)]
pub struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

pub fn scaler(node: &NodeProto) -> TractResult<SameShape<Scaler>> {
    Ok(SameShape(Scaler {
        offset: node
            .get_attr_opt_vec("offset")?
            .unwrap_or_else(|| vec![0.0]),
        scale: node.get_attr_opt_vec("scale")?.unwrap_or_else(|| vec![1.0]),
    }))
}

/// The value for column `j` of a per-column attribute (or the one value for all).
fn per_column(v: &[f32], j: usize) -> f32 {
    if v.len() == 1 {
        v[0]
    } else {
        v[j]
    }
}

fn width(t: &Tensor) -> usize {
    t.shape().last().copied().unwrap_or(1).max(1)
}

impl InPlaceF32 for Scaler {
    const NAME: &'static str = "Scaler";

    fn apply(&self, values: &mut [f32], w: usize) -> TractResult<()> {
        for len in [self.offset.len(), self.scale.len()] {
            ensure!(
                len == 1 || len == w,
                "Scaler has {len} values for {w} columns"
            );
        }
        for (i, v) in values.iter_mut().enumerate() {
            let j = i % w;
            *v = (*v - per_column(&self.offset, j)) * per_column(&self.scale, j);
        }
        Ok(())
    }
}

/// `Imputer`: replaces a marker value (NaN by default) by a per-column value.
#[derive(Debug)]
pub enum Imputer {
    Float { values: Vec<f32>, replaced: f32 },
    Int { values: Vec<i64>, replaced: i64 },
}

pub fn imputer(node: &NodeProto) -> TractResult<Imputer> {
    if let Some(values) = node
        .get_attr_opt_vec::<f32>("imputed_value_floats")?
        .filter(|v| !v.is_empty())
    {
        let replaced = node
            .get_attr_opt::<f32>("replaced_value_float")?
            .unwrap_or(f32::NAN);
        return Ok(Imputer::Float { values, replaced });
    }
    let values = node
        .get_attr_opt_vec::<i64>("imputed_value_int64s")?
        .filter(|v| !v.is_empty())
        .context("Imputer has neither imputed_value_floats nor imputed_value_int64s")?;
    let replaced = node
        .get_attr_opt::<i64>("replaced_value_int64")?
        .unwrap_or(0);
    Ok(Imputer::Int { values, replaced })
}

impl Kernel for Imputer {
    fn name(&self) -> &'static str {
        "Imputer"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        let dt = match self {
            Imputer::Float { .. } => f32::datum_type(),
            Imputer::Int { .. } => i64::datum_type(),
        };
        s.equals(&outputs[0].datum_type, dt)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(match self {
            Imputer::Float { .. } => f32::fact(inputs[0].shape.iter()),
            Imputer::Int { .. } => i64::fact(inputs[0].shape.iter()),
        }))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        match self {
            Imputer::Float { values, replaced } => {
                let mut x = f32_input(&inputs[0])?;
                let w = width(&x);
                ensure!(
                    values.len() == 1 || values.len() == w,
                    "Imputer has {} values for {w} columns",
                    values.len()
                );
                let mut view = x.try_as_plain_ram_mut()?;
                for (i, v) in view.as_slice_mut::<f32>()?.iter_mut().enumerate() {
                    let hit = if replaced.is_nan() {
                        v.is_nan()
                    } else {
                        *v == *replaced
                    };
                    if hit {
                        *v = per_column(values, i % w);
                    }
                }
                Ok(tvec!(x.into_tvalue()))
            }
            Imputer::Int { values, replaced } => {
                let mut x = inputs[0].cast_to::<i64>()?.into_owned();
                let w = width(&x);
                let mut view = x.try_as_plain_ram_mut()?;
                for (i, v) in view.as_slice_mut::<i64>()?.iter_mut().enumerate() {
                    if *v == *replaced {
                        *v = if values.len() == 1 {
                            values[0]
                        } else {
                            values[i % w]
                        };
                    }
                }
                Ok(tvec!(x.into_tvalue()))
            }
        }
    }
}

/// `OneHotEncoder`: input shape `S` → f32 `S + [K]`. Unknown categories give a row
/// of zeros when `zeros=1` (the exporters' `handle_unknown="ignore"`), else an error.
#[derive(Debug)]
pub struct OneHotEncoder {
    categories: Labels,
    zeros: bool,
}

pub fn one_hot_encoder(node: &NodeProto) -> TractResult<OneHotEncoder> {
    let ints = node
        .get_attr_opt_vec::<i64>("cats_int64s")?
        .filter(|v| !v.is_empty());
    let strs = node
        .get_attr_opt_vec::<String>("cats_strings")?
        .filter(|v| !v.is_empty());
    let categories = match (ints, strs) {
        (Some(i), None) => Labels::Int(i),
        (None, Some(s)) => Labels::Str(s),
        _ => bail!("OneHotEncoder needs exactly one of cats_int64s and cats_strings"),
    };
    let zeros = node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) != 0;
    Ok(OneHotEncoder { categories, zeros })
}

impl Kernel for OneHotEncoder {
    fn name(&self) -> &'static str {
        "OneHotEncoder"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, inputs[0].rank.bex() + 1)?;
        let k = self.categories.len();
        s.given(&inputs[0].rank, move |s, rank| {
            let rank = rank as usize;
            for axis in 0..rank {
                s.equals(&outputs[0].shape[axis], &inputs[0].shape[axis])?;
            }
            s.equals(&outputs[0].shape[rank], k.to_dim())
        })
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape: TVec<TDim> = inputs[0].shape.iter().cloned().collect();
        shape.push(self.categories.len().to_dim());
        Ok(tvec!(f32::fact(shape)))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let k = self.categories.len();
        let mut out = vec![0f32; x.len() * k];
        let mut set =
            |i: usize, found: Option<usize>, what: &dyn std::fmt::Display| -> TractResult<()> {
                match found {
                    Some(c) => out[i * k + c] = 1.0,
                    None if self.zeros => {}
                    None => bail!("OneHotEncoder: unknown category {what}"),
                }
                Ok(())
            };
        match &self.categories {
            Labels::Str(cats) => {
                let x = x.cast_to::<String>()?;
                for (i, v) in x
                    .try_as_plain_ram()?
                    .as_slice::<String>()?
                    .iter()
                    .enumerate()
                {
                    set(i, cats.iter().position(|c| c == v), v)?;
                }
            }
            Labels::Int(cats) => {
                let x = x.cast_to::<i64>()?;
                for (i, v) in x.try_as_plain_ram()?.as_slice::<i64>()?.iter().enumerate() {
                    set(i, cats.iter().position(|c| c == v), v)?;
                }
            }
        }
        let mut shape: Vec<usize> = x.shape().to_vec();
        shape.push(k);
        Ok(tvec!(tensor1(&out).into_shape(&shape)?.into_tvalue()))
    }
}

/// `ArrayFeatureExtractor(X, indices)`: selects entries of X's last axis.
/// A 1-D X gives `[1, M]`, as onnxruntime does.
#[derive(Debug)]
pub struct ArrayFeatureExtractor;

impl Kernel for ArrayFeatureExtractor {
    fn name(&self) -> &'static str {
        "ArrayFeatureExtractor"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.given(&inputs[0].rank, move |s, rank| {
            s.equals(&outputs[0].rank, rank.max(2))
        })
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let m: TDim = inputs[1].shape.iter().product();
        let mut shape: TVec<TDim> = inputs[0].shape.iter().cloned().collect();
        if shape.len() == 1 {
            shape.insert(0, 1.to_dim());
        }
        *shape
            .last_mut()
            .context("ArrayFeatureExtractor on a scalar")? = m;
        Ok(tvec!(inputs[0].datum_type.fact(shape)))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, indices) = (&inputs[0], inputs[1].cast_to::<i64>()?);
        let indices = indices.try_as_plain_ram()?.as_slice::<i64>()?.to_vec();
        let last = x.rank().max(1) - 1;
        let k = x.shape().get(last).copied().unwrap_or(1);
        for &i in &indices {
            ensure!(
                i >= 0 && (i as usize) < k,
                "ArrayFeatureExtractor: index {i} out of 0..{k}"
            );
        }
        let x2 = if x.rank() == 1 {
            x.clone().into_tensor().into_shape(&[1, k])?
        } else {
            x.clone().into_tensor()
        };
        let idx: Vec<usize> = indices.iter().map(|&i| i as usize).collect();
        let out = select_last_axis(&x2, &idx)?;
        Ok(tvec!(out.into_tvalue()))
    }
}

/// The entries `idx` of each row of `x`'s last axis (checked to be in range).
/// ndarray's `select` appended one sub-view per index: for the label lookup of an
/// MLP classifier (4 labels, one index per row) it was 5% of the model's CPU.
fn select_last_axis(x: &Tensor, idx: &[usize]) -> TractResult<Tensor> {
    fn sel<T: Datum + Clone>(x: &Tensor, idx: &[usize]) -> TractResult<Tensor> {
        let k = *x
            .shape()
            .last()
            .context("ArrayFeatureExtractor on a scalar")?;
        let plain = x.try_as_plain_ram()?;
        let values = plain.as_slice::<T>()?;
        let rows = values.len().checked_div(k).unwrap_or(0);
        let mut out = Vec::with_capacity(rows * idx.len());
        for row in values.chunks_exact(k.max(1)) {
            out.extend(idx.iter().map(|&i| row[i].clone()));
        }
        let mut shape = x.shape().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = idx.len();
        }
        tensor1(&out).into_shape(&shape)
    }
    let dt = x.datum_type();
    if dt == f32::datum_type() {
        sel::<f32>(x, idx)
    } else if dt == f64::datum_type() {
        sel::<f64>(x, idx)
    } else if dt == i64::datum_type() {
        sel::<i64>(x, idx)
    } else if dt == i32::datum_type() {
        sel::<i32>(x, idx)
    } else if dt == String::datum_type() {
        sel::<String>(x, idx)
    } else {
        bail!("ArrayFeatureExtractor on {dt:?} is not supported")
    }
}

/// `Binarizer`: 1 where x > threshold, else 0.
#[derive(Debug)]
pub struct Binarizer {
    threshold: f32,
}

pub fn binarizer(node: &NodeProto) -> TractResult<SameShape<Binarizer>> {
    Ok(SameShape(Binarizer {
        threshold: node.get_attr_opt::<f32>("threshold")?.unwrap_or(0.0),
    }))
}

impl InPlaceF32 for Binarizer {
    const NAME: &'static str = "Binarizer";

    fn apply(&self, values: &mut [f32], _: usize) -> TractResult<()> {
        for v in values.iter_mut() {
            *v = if *v > self.threshold { 1.0 } else { 0.0 };
        }
        Ok(())
    }
}

/// The divisor of a `Normalizer` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Norm {
    /// The row's largest value (signed, as onnxruntime).
    Max,
    /// The sum of absolute values.
    L1,
    /// The square root of the sum of squares.
    L2,
}

/// `Normalizer`: each row (the last axis) divided by its norm, in one pass; a row
/// whose norm is 0 is left as it is, as onnxruntime leaves it. tract's own
/// Normalizer is a chain of five generic ops, one tensor each, and takes `MAX` as
/// the largest absolute value, which differs from onnxruntime on all-negative rows.
#[derive(Debug)]
pub struct Normalizer {
    norm: Norm,
}

pub fn normalizer(node: &NodeProto) -> TractResult<SameShape<Normalizer>> {
    let norm: String = node
        .get_attr_opt("norm")?
        .unwrap_or_else(|| "MAX".to_string());
    let norm = match norm.to_ascii_uppercase().as_str() {
        "MAX" => Norm::Max,
        "L1" => Norm::L1,
        "L2" => Norm::L2,
        other => bail!("Normalizer: unknown norm {other:?} (MAX, L1 or L2)"),
    };
    Ok(SameShape(Normalizer { norm }))
}

impl InPlaceF32 for Normalizer {
    const NAME: &'static str = "Normalizer";

    fn apply(&self, values: &mut [f32], width: usize) -> TractResult<()> {
        for row in values.chunks_mut(width) {
            let norm = match self.norm {
                Norm::Max => row.iter().copied().fold(f32::MIN, f32::max),
                Norm::L1 => row.iter().map(|v| v.abs()).sum(),
                Norm::L2 => row.iter().map(|v| v * v).sum::<f32>().sqrt(),
            };
            if norm != 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kernel: impl Kernel, rows: &[[f32; 2]]) -> Vec<f32> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let x = Tensor::from_shape(&[rows.len(), 2], &flat).unwrap();
        let out = kernel.eval(tvec![x.into_tvalue()]).unwrap();
        out[0]
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    }

    fn extract(x: Tensor, indices: &[i64]) -> TractResult<Tensor> {
        let idx = Tensor::from_shape(&[indices.len(), 1], indices)?;
        let mut out = ArrayFeatureExtractor.eval(tvec![x.into_tvalue(), idx.into_tvalue()])?;
        Ok(out.remove(0).into_tensor())
    }

    #[test]
    fn array_feature_extractor_picks_entries_of_the_last_axis() {
        // A label lookup: 1-D labels, one index per row, gives [1, N] as in onnxruntime.
        let labels = tensor1(&[10i64, 20, 30, 40]);
        let out = extract(labels, &[3, 0, 0, 2]).unwrap();
        assert_eq!(
            out,
            Tensor::from_shape(&[1, 4], &[40i64, 10, 10, 30]).unwrap()
        );
        // Columns of a matrix, in the order asked, repeats allowed.
        let x = Tensor::from_shape(&[2, 3], &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let out = extract(x, &[2, 0, 2]).unwrap();
        assert_eq!(
            out,
            Tensor::from_shape(&[2, 3], &[3.0f32, 1.0, 3.0, 6.0, 4.0, 6.0]).unwrap()
        );
        // String labels.
        let names = tensor1(&["a".to_string(), "b".to_string()]);
        let out = extract(names, &[1, 1, 0]).unwrap();
        assert_eq!(
            out,
            tensor1(&["b".to_string(), "b".to_string(), "a".to_string()])
                .into_shape(&[1, 3])
                .unwrap()
        );
        // Out of range is an error naming the index, not a panic.
        let err = extract(tensor1(&[1i64, 2]), &[2]).unwrap_err();
        assert!(format!("{err}").contains("index 2 out of 0..2"), "{err}");
    }

    #[test]
    fn binarizer_is_one_strictly_above_the_threshold() {
        let b = SameShape(Binarizer { threshold: 0.5 });
        assert_eq!(run(b, &[[0.2, 0.7], [0.5, -1.0]]), [0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn scaler_applies_per_column_offsets_and_scales() {
        let s = SameShape(Scaler {
            offset: vec![1.0, 2.0],
            scale: vec![2.0, 0.5],
        });
        assert_eq!(run(s, &[[1.0, 2.0], [3.0, 6.0]]), [0.0, 0.0, 4.0, 2.0]);
    }
}

/// `FeatureVectorizer`: its inputs side by side, each cast to float32 and given
/// `inputdimensions[i]` columns (the first columns of a wider input, zeros after
/// those of a narrower one, as onnxruntime does).
#[derive(Debug)]
pub struct FeatureVectorizer {
    widths: Vec<usize>,
}

pub fn feature_vectorizer(node: &NodeProto) -> TractResult<FeatureVectorizer> {
    let widths: Vec<i64> = node.get_attr_vec("inputdimensions")?;
    ensure!(
        widths.len() == node.input.len(),
        "FeatureVectorizer has {} inputs and {} inputdimensions",
        node.input.len(),
        widths.len()
    );
    let widths = widths
        .into_iter()
        .map(|w| usize::try_from(w).context("FeatureVectorizer: a negative input dimension"))
        .collect::<TractResult<_>>()?;
    Ok(FeatureVectorizer { widths })
}

impl Kernel for FeatureVectorizer {
    fn name(&self) -> &'static str {
        "FeatureVectorizer"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, self.widths.len())?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(
            &outputs[0].shape[1],
            self.widths.iter().sum::<usize>().to_dim(),
        )
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape.iter().next().cloned().unwrap_or(1.to_dim());
        Ok(tvec!(f32::fact([
            n,
            self.widths.iter().sum::<usize>().to_dim()
        ])))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let n = inputs[0].shape().first().copied().unwrap_or(1);
        let total: usize = self.widths.iter().sum();
        let mut out = vec![0f32; n * total];
        let mut at = 0;
        for (x, &width) in inputs.iter().zip(&self.widths) {
            ensure!(
                x.shape().first().copied().unwrap_or(1) == n,
                "FeatureVectorizer's inputs have different row counts"
            );
            let x = x.cast_to::<f32>()?;
            let values = x.try_as_plain_ram()?;
            let values = values.as_slice::<f32>()?;
            let have = values.len().checked_div(n).unwrap_or(0);
            for r in 0..n {
                let take = have.min(width);
                out[r * total + at..r * total + at + take]
                    .copy_from_slice(&values[r * have..r * have + take]);
            }
            at += width;
        }
        Ok(tvec!(Tensor::from_shape(&[n, total], &out)?.into_tvalue()))
    }
}
