//! The one table of conversions between Arrow columns and tract tensors.
//!
//! [`cast_kind`] says, before anything is scored, whether a column of some Arrow type
//! can feed a model input of some element type; [`input_tensor`] does it for a
//! batch; [`output_arrays`] turns output tensors back into Arrow columns.
//! Nulls in float inputs become NaN (what pandas and the exporters' imputers
//! expect); a null where the input type cannot hold one is a [`BadRow`].

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, Float32Array, Float64Array,
    Int32Array, Int64Array, StringArray,
};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type};
use arrow::record_batch::RecordBatch;
use tract_onnx::prelude::*;

use super::{BadRow, ElemType, Feed, InputSpec, OutputColumn, ScoreError};
use crate::profile::rows::RowSums;

/// Whether a column type can feed an input type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CastKind {
    /// Every value is represented exactly.
    Exact,
    /// Allowed, but some values are rounded or may not fit; the reason is shown in
    /// the mapping plan (values that do not fit an integer input are bad rows).
    Narrowing(&'static str),
    /// Refused before scoring.
    Impossible(&'static str),
}

/// The cast table.
pub fn cast_kind(from: &DataType, to: ElemType) -> CastKind {
    use CastKind::*;
    use DataType as D;
    match (to, from) {
        (_, D::Dictionary(_, v)) => cast_kind(v, to),
        (
            ElemType::F32,
            D::Float16 | D::Float32 | D::Int8 | D::Int16 | D::UInt8 | D::UInt16 | D::Boolean,
        ) => Exact,
        (ElemType::F32, D::Float64) => Narrowing("float64 rounded to float32"),
        (ElemType::F32, D::Int32 | D::Int64 | D::UInt32 | D::UInt64) => {
            Narrowing("integers beyond 2^24 rounded")
        }
        (
            ElemType::F32,
            D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..) | D::Decimal256(..),
        ) => Narrowing("decimal rounded to float32"),
        (ElemType::F64, D::Float16 | D::Float32 | D::Float64 | D::Boolean) => Exact,
        (ElemType::F64, D::Int8 | D::Int16 | D::Int32 | D::UInt8 | D::UInt16 | D::UInt32) => Exact,
        (ElemType::F64, D::Int64 | D::UInt64) => Narrowing("integers beyond 2^53 rounded"),
        (
            ElemType::F64,
            D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..) | D::Decimal256(..),
        ) => Narrowing("decimal rounded to float64"),
        (
            ElemType::I64,
            D::Int8
            | D::Int16
            | D::Int32
            | D::Int64
            | D::UInt8
            | D::UInt16
            | D::UInt32
            | D::Boolean,
        ) => Exact,
        (ElemType::I64, D::UInt64) => Narrowing("values above 2^63 are bad rows"),
        (ElemType::I32, D::Int8 | D::Int16 | D::Int32 | D::UInt8 | D::UInt16 | D::Boolean) => Exact,
        (ElemType::I32, D::Int64 | D::UInt32 | D::UInt64) => {
            Narrowing("values beyond int32 are bad rows")
        }
        (ElemType::I64 | ElemType::I32, D::Float16 | D::Float32 | D::Float64) => {
            Impossible("floats would be truncated to integers")
        }
        (ElemType::Str, D::Utf8 | D::LargeUtf8 | D::Utf8View) => Exact,
        (ElemType::Str, _) => Impossible("only string columns feed string inputs"),
        (ElemType::Bool, D::Boolean) => Exact,
        (ElemType::F32 | ElemType::F64, D::Utf8 | D::LargeUtf8 | D::Utf8View) => {
            Narrowing("text parsed as numbers; text that is not a number is a bad row")
        }
        (_, D::Utf8 | D::LargeUtf8 | D::Utf8View) => {
            Impossible("strings do not feed integer or boolean inputs")
        }
        _ => Impossible("no conversion for this column type"),
    }
}

fn bad(row: usize, column: &str, reason: impl Into<String>) -> ScoreError {
    ScoreError::BadRow(BadRow {
        row,
        column: column.to_owned(),
        reason: reason.into(),
    })
}

fn cast_column(col: &ArrayRef, to: &DataType, name: &str) -> Result<ArrayRef, ScoreError> {
    // Unsafe casts turn values that do not fit into nulls, which the caller then
    // reports as bad rows when the source value was not null.
    let opts = CastOptions {
        safe: true,
        ..Default::default()
    };
    cast_with_options(col, to, &opts)
        .map_err(|e| ScoreError::Model(anyhow::anyhow!("cannot cast column `{name}` to {to}: {e}")))
}

/// A float column's values, nulls as NaN: borrowed when there are no nulls.
enum FloatValues<'a, T> {
    Borrowed(&'a [T]),
    Owned(Vec<T>),
}

impl<'a, T: arrow::datatypes::ArrowNativeType> FloatValues<'a, T> {
    fn of<P>(array: &'a arrow::array::PrimitiveArray<P>, nan: T) -> Self
    where
        P: arrow::datatypes::ArrowPrimitiveType<Native = T>,
    {
        if array.null_count() == 0 {
            FloatValues::Borrowed(array.values())
        } else {
            FloatValues::Owned(array.iter().map(|v| v.unwrap_or(nan)).collect())
        }
    }

    fn as_slice(&self) -> &[T] {
        match self {
            FloatValues::Borrowed(s) => s,
            FloatValues::Owned(v) => v,
        }
    }
}

/// Rows per block of the column → row transpose: a block of the output
/// (256 rows × F values) stays in L1 while every column is copied into it.
const TRANSPOSE_ROWS: usize = 256;

/// Interleaves F columns of n values into one row-major `[n, F]` tensor, in
/// blocks of rows, and hands the buffer to the tensor without another copy.
/// `on_block` sees each block of rows once it is written, while it is in L1.
fn row_major<T>(
    columns: &[FloatValues<T>],
    n: usize,
    shape: &[usize],
    mut on_block: impl FnMut(&[T]),
) -> TractResult<Tensor>
where
    T: arrow::datatypes::ArrowNativeType + Datum + Copy,
{
    let f = columns.len();
    let columns: Vec<&[T]> = columns.iter().map(|c| &c.as_slice()[..n]).collect();
    let mut out: Vec<T> = Vec::with_capacity(n * f);
    for start in (0..n).step_by(TRANSPOSE_ROWS) {
        let end = (start + TRANSPOSE_ROWS).min(n);
        let block = out.len();
        out.resize(block + (end - start) * f, T::default());
        let rows = &mut out[block..];
        for (j, col) in columns.iter().enumerate() {
            for (r, v) in col[start..end].iter().enumerate() {
                rows[r * f + j] = *v;
            }
        }
        on_block(rows);
    }
    Ok(tract_ndarray::ArrayD::from_shape_vec(shape, out)?.into_tensor())
}

/// Builds the tensor for one input: `[N, F]` (or `[N]` when the input is rank 1).
pub fn input_tensor(
    batch: &RecordBatch,
    feed: &Feed,
    spec: &InputSpec,
) -> Result<Tensor, ScoreError> {
    input_tensor_observed(batch, feed, spec, None)
}

/// The same, adding a float32 tensor's rows to `sums` as they are written (the
/// profile's moments of the input, `profile::rows`); other tensors leave it.
#[allow(clippy::too_many_lines)] // one match over the cast table (docs/reference.md, "Columns and model inputs"), a row each
pub fn input_tensor_observed(
    batch: &RecordBatch,
    feed: &Feed,
    spec: &InputSpec,
    sums: Option<&mut RowSums>,
) -> Result<Tensor, ScoreError> {
    let n = batch.num_rows();
    let f = feed.columns.len();
    let schema = batch.schema();
    let shape: Vec<usize> = if spec.shape.len() == 1 {
        vec![n]
    } else {
        vec![n, f]
    };
    let names: Vec<&str> = feed
        .columns
        .iter()
        .map(|&c| schema.field(c).name().as_str())
        .collect();
    let cols: Vec<&ArrayRef> = feed.columns.iter().map(|&c| batch.column(c)).collect();
    if let Some(m) = &spec.map {
        return m.tensor(cols[0], names[0], spec.elem);
    }
    let tensor = match spec.elem {
        ElemType::F32 => {
            // Category names become codes (native models' categorical features).
            let mut encoded = vec![];
            let mut columns = vec![];
            for (j, (col, name)) in cols.iter().zip(&names).enumerate() {
                if let Some(v) = spec.vocabulary(j, col.data_type()) {
                    let codes = v.encode(col).map_err(|u| bad(u.row, name, u.reason))?;
                    encoded.push(Some(codes));
                    columns.push(None);
                    continue;
                }
                let c = cast_column(col, &DataType::Float32, name)?;
                reject_unparsed(col, &c, name)?;
                encoded.push(None);
                columns.push(Some(c));
            }
            let values: Vec<FloatValues<f32>> = columns
                .iter()
                .zip(&encoded)
                .map(|(c, e)| match (c, e) {
                    (Some(c), _) => FloatValues::of(c.as_primitive::<Float32Type>(), f32::NAN),
                    (None, Some(codes)) => FloatValues::Borrowed(codes),
                    (None, None) => unreachable!("each column is cast or encoded"),
                })
                .collect();
            match sums {
                Some(s) if s.width() == f => row_major(&values, n, &shape, |b| s.add_block(b)),
                _ => row_major(&values, n, &shape, |_| {}),
            }
        }
        ElemType::F64 => {
            let mut columns = vec![];
            for (col, name) in cols.iter().zip(&names) {
                let c = cast_column(col, &DataType::Float64, name)?;
                reject_unparsed(col, &c, name)?;
                columns.push(c);
            }
            let values: Vec<FloatValues<f64>> = columns
                .iter()
                .map(|c| FloatValues::of(c.as_primitive::<Float64Type>(), f64::NAN))
                .collect();
            row_major(&values, n, &shape, |_| {})
        }
        ElemType::I64 => {
            let mut out = vec![0i64; n * f];
            for (j, (col, name)) in cols.iter().zip(&names).enumerate() {
                let c = cast_column(col, &DataType::Int64, name)?;
                for (i, v) in c.as_primitive::<Int64Type>().iter().enumerate() {
                    out[i * f + j] = v.ok_or_else(|| null_or_overflow(col, i, name, "int64"))?;
                }
            }
            Tensor::from_shape(&shape, &out)
        }
        ElemType::I32 => {
            let mut out = vec![0i32; n * f];
            for (j, (col, name)) in cols.iter().zip(&names).enumerate() {
                let c = cast_column(col, &DataType::Int32, name)?;
                for (i, v) in c.as_primitive::<Int32Type>().iter().enumerate() {
                    out[i * f + j] = v.ok_or_else(|| null_or_overflow(col, i, name, "int32"))?;
                }
            }
            Tensor::from_shape(&shape, &out)
        }
        ElemType::Bool => {
            let mut out = vec![false; n * f];
            for (j, (col, name)) in cols.iter().zip(&names).enumerate() {
                let c = cast_column(col, &DataType::Boolean, name)?;
                for (i, v) in c.as_boolean().iter().enumerate() {
                    out[i * f + j] = v.ok_or_else(|| null_or_overflow(col, i, name, "bool"))?;
                }
            }
            Tensor::from_shape(&shape, &out)
        }
        ElemType::Str => {
            let mut out = vec![String::new(); n * f];
            for (j, (col, name)) in cols.iter().zip(&names).enumerate() {
                let c = cast_column(col, &DataType::Utf8, name)?;
                for (i, v) in c.as_string::<i32>().iter().enumerate() {
                    out[i * f + j] = v
                        .ok_or_else(|| null_or_overflow(col, i, name, "string"))?
                        .to_owned();
                }
            }
            tensor1(&out).into_shape(&shape)
        }
    };
    tensor.map_err(ScoreError::Model)
}

/// A value that became null in the cast to a float input (text that is not a
/// number, a decimal out of range) is a bad row; a null stays NaN.
fn reject_unparsed(col: &ArrayRef, cast: &ArrayRef, name: &str) -> Result<(), ScoreError> {
    if cast.null_count() == col.null_count() {
        return Ok(());
    }
    match (0..col.len()).find(|&i| cast.is_null(i) && !col.is_null(i)) {
        Some(row) => Err(bad(row, name, not_a_number(col, row))),
        None => Ok(()),
    }
}

fn not_a_number(col: &ArrayRef, row: usize) -> String {
    let shown = arrow::util::display::array_value_to_string(col, row).unwrap_or_default();
    format!("value {shown:?} is not a number")
}

fn null_or_overflow(col: &ArrayRef, row: usize, name: &str, to: &str) -> ScoreError {
    if col.is_null(row) {
        bad(
            row,
            name,
            format!("null where the model's {to} input cannot hold one"),
        )
    } else {
        bad(
            row,
            name,
            format!("value does not fit the model's {to} input"),
        )
    }
}

/// Every row of the batch the model cannot take, at most one per row (the first
/// column that fails, in feed order). Float inputs take every row: nulls become NaN.
pub fn bad_rows(
    batch: &RecordBatch,
    feeds: &[Feed],
    specs: &[InputSpec],
) -> Result<Vec<BadRow>, ScoreError> {
    let schema = batch.schema();
    let mut found: std::collections::BTreeMap<usize, BadRow> = Default::default();
    for feed in feeds {
        let spec = &specs[feed.input];
        if let Some(m) = &spec.map {
            let c = feed.columns[0];
            for b in m.bad_rows(batch.column(c), schema.field(c).name(), spec.elem)? {
                found.entry(b.row).or_insert(b);
            }
            continue;
        }
        let float = spec.elem.is_float();
        let target = match spec.elem {
            ElemType::F32 | ElemType::F64 => DataType::Float64,
            ElemType::I64 => DataType::Int64,
            ElemType::I32 => DataType::Int32,
            ElemType::Bool => DataType::Boolean,
            ElemType::Str => DataType::Utf8,
        };
        for (j, &c) in feed.columns.iter().enumerate() {
            let col = batch.column(c);
            let name = schema.field(c).name();
            if let Some(v) = spec.vocabulary(j, col.data_type()) {
                let unseen = v.unseen_rows(col).map_err(|u| {
                    ScoreError::Model(anyhow::anyhow!("column `{name}`: {}", u.reason))
                })?;
                for u in unseen {
                    found.entry(u.row).or_insert(BadRow {
                        row: u.row,
                        column: name.clone(),
                        reason: u.reason,
                    });
                }
                continue;
            }
            let cast = cast_column(col, &target, name)?;
            // Float inputs take nulls (as NaN): only values the cast lost are bad.
            if cast.null_count() == 0 || (float && cast.null_count() == col.null_count()) {
                continue;
            }
            for row in 0..batch.num_rows() {
                if !cast.is_null(row) || found.contains_key(&row) || (float && col.is_null(row)) {
                    continue;
                }
                let reason = if float {
                    not_a_number(col, row)
                } else {
                    match null_or_overflow(col, row, name, &spec.elem.to_string()) {
                        ScoreError::BadRow(b) => b.reason,
                        ScoreError::Model(e) => e.to_string(),
                    }
                };
                found.insert(
                    row,
                    BadRow {
                        row,
                        column: name.clone(),
                        reason,
                    },
                );
            }
        }
    }
    Ok(found.into_values().collect())
}

/// The Arrow type a prediction column of this datum type is written as.
pub fn arrow_type(dt: DatumType) -> Option<DataType> {
    Some(if dt == f32::datum_type() {
        DataType::Float32
    } else if dt == f64::datum_type() {
        DataType::Float64
    } else if dt == i64::datum_type() || dt == TDim::datum_type() {
        // Cast(to=INT64) outputs arrive as TDim in tract 0.23.
        DataType::Int64
    } else if dt == i32::datum_type() {
        DataType::Int32
    } else if dt == bool::datum_type() {
        DataType::Boolean
    } else if dt == String::datum_type() {
        DataType::Utf8
    } else {
        return None;
    })
}

/// Splits output tensors into the prediction columns the writer expects.
pub fn output_arrays(
    outputs: &[TValue],
    columns: &[OutputColumn],
    n: usize,
) -> anyhow::Result<Vec<ArrayRef>> {
    let mut arrays = Vec::with_capacity(columns.len());
    for col in columns {
        let t = &outputs[col.output];
        // [N], [N, K], or [N, 1, …, 1, K] (OneHotEncoder of an [N, 1] input).
        let width = t.shape().iter().skip(1).product::<usize>();
        anyhow::ensure!(
            t.shape().first().copied().unwrap_or(1) == n && t.len() == n * width,
            "output {} has shape {:?} for a batch of {n} rows",
            col.output,
            t.shape()
        );
        let array = match (&col.data_type, col.list_width()) {
            (DataType::FixedSizeList(item, k), Some(list)) => {
                anyhow::ensure!(
                    list == width,
                    "output {} has {width} columns, expected {list}",
                    col.output
                );
                // Row-major [N, K]: the values in order are the lists' items.
                let values = entries(t, item.data_type(), n * width, |i| i)?;
                Arc::new(FixedSizeListArray::try_new(item.clone(), *k, values, None)?) as ArrayRef
            }
            (dt, _) => {
                anyhow::ensure!(
                    col.index < width,
                    "output {} has {width} columns, expected more",
                    col.output
                );
                entries(t, dt, n, |i| i * width + col.index)?
            }
        };
        arrays.push(array);
    }
    Ok(arrays)
}

/// `len` entries of a tensor, the i-th taken at `pick(i)`, as an Arrow array.
fn entries(
    t: &TValue,
    dt: &DataType,
    len: usize,
    pick: impl Fn(usize) -> usize,
) -> anyhow::Result<ArrayRef> {
    Ok(match dt {
        DataType::Float32 => {
            let v = t.try_as_plain_ram()?.as_slice::<f32>()?;
            Arc::new(Float32Array::from_iter_values((0..len).map(|i| v[pick(i)])))
        }
        DataType::Float64 => {
            let v = t.try_as_plain_ram()?.as_slice::<f64>()?;
            Arc::new(Float64Array::from_iter_values((0..len).map(|i| v[pick(i)])))
        }
        DataType::Int64 => {
            let t = t.cast_to::<i64>()?;
            let v = t.try_as_plain_ram()?.as_slice::<i64>()?;
            Arc::new(Int64Array::from_iter_values((0..len).map(|i| v[pick(i)])))
        }
        DataType::Int32 => {
            let v = t.try_as_plain_ram()?.as_slice::<i32>()?;
            Arc::new(Int32Array::from_iter_values((0..len).map(|i| v[pick(i)])))
        }
        DataType::Boolean => {
            let v = t.try_as_plain_ram()?.as_slice::<bool>()?;
            Arc::new(BooleanArray::from_iter((0..len).map(|i| Some(v[pick(i)]))))
        }
        DataType::Utf8 => {
            let v = t.try_as_plain_ram()?.as_slice::<String>()?;
            Arc::new(StringArray::from_iter_values(
                (0..len).map(|i| v[pick(i)].as_str()),
            ))
        }
        other => anyhow::bail!("no conversion for output type {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    fn spec(elem: ElemType) -> InputSpec {
        InputSpec {
            name: "x".into(),
            elem,
            shape: vec![
                super::super::Dim::Symbolic("N".into()),
                super::super::Dim::Fixed(2),
            ],
            feature_names: vec![],
            categories: vec![],
            map: None,
        }
    }

    #[test]
    fn float_nulls_become_nan_and_ints_are_cast() {
        let a: ArrayRef = Arc::new(Float64Array::from(vec![Some(1.5), None]));
        let b: ArrayRef = Arc::new(Int64Array::from(vec![3, 4]));
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Float64, true),
            Field::new("b", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(schema, vec![a, b]).unwrap();
        let t = input_tensor(
            &batch,
            &Feed {
                input: 0,
                columns: vec![0, 1],
            },
            &spec(ElemType::F32),
        )
        .unwrap();
        let v = t
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .to_vec();
        assert_eq!(v[0], 1.5);
        assert_eq!(v[1], 3.0);
        assert!(v[2].is_nan());
        assert_eq!(v[3], 4.0);
    }

    #[test]
    fn null_in_int_input_is_a_bad_row_naming_row_and_column() {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        let schema = Arc::new(Schema::new(vec![Field::new(
            "visits",
            DataType::Int64,
            true,
        )]));
        let batch = RecordBatch::try_new(schema, vec![a.clone()]).unwrap();
        let err = input_tensor(
            &batch,
            &Feed {
                input: 0,
                columns: vec![0],
            },
            &spec(ElemType::I64),
        )
        .unwrap_err();
        match err {
            ScoreError::BadRow(b) => {
                assert_eq!(b.row, 1);
                assert_eq!(b.column, "visits");
                assert!(b.reason.contains("null"), "{}", b.reason);
            }
            other => panic!("expected a bad row, got {other}"),
        }
    }

    #[test]
    fn cast_table_refuses_strings_into_floats_and_floats_into_ints() {
        assert!(matches!(
            cast_kind(&DataType::Utf8, ElemType::I64),
            CastKind::Impossible(_)
        ));
        assert!(matches!(
            cast_kind(&DataType::Utf8, ElemType::F32),
            CastKind::Narrowing(_)
        ));
        assert!(matches!(
            cast_kind(&DataType::Float64, ElemType::I64),
            CastKind::Impossible(_)
        ));
        assert_eq!(
            cast_kind(&DataType::Float32, ElemType::F32),
            CastKind::Exact
        );
        assert!(matches!(
            cast_kind(&DataType::Float64, ElemType::F32),
            CastKind::Narrowing(_)
        ));
    }
}
