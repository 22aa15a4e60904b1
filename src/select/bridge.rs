//! arrow-rs batches to polars frames and back without copying the data, through
//! the Arrow C Data Interface: both crates export and import the same C structs
//! (`FFI_ArrowArray`/`FFI_ArrowSchema` in arrow-rs, `ArrowArray`/`ArrowSchema` in
//! polars-arrow), so an exported array is moved across as is, release callback
//! included. polars 0.55 has no arrow-rs conversion of its own.

use anyhow::{Context, Result};
use arrow::array::{make_array, ArrayRef};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ffi::{from_ffi, to_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use polars::prelude::{Column, CompatLevel, DataFrame, PlSmallStr, Series};
use polars_arrow::ffi as pffi;

// The two crates' C structs must be the same size for the moves below.
const _: () =
    assert!(std::mem::size_of::<FFI_ArrowArray>() == std::mem::size_of::<pffi::ArrowArray>());
const _: () =
    assert!(std::mem::size_of::<FFI_ArrowSchema>() == std::mem::size_of::<pffi::ArrowSchema>());

/// One arrow-rs array as a polars series.
fn to_series(name: &str, array: &ArrayRef) -> Result<Series> {
    let (ffi_array, ffi_schema) = to_ffi(&array.to_data())?;
    // SAFETY: both types are the C Data Interface's #[repr(C)] structs (sizes
    // checked above); ownership of the buffers moves with the struct.
    let (array, schema): (pffi::ArrowArray, pffi::ArrowSchema) = unsafe {
        (
            std::mem::transmute::<FFI_ArrowArray, pffi::ArrowArray>(ffi_array),
            std::mem::transmute::<FFI_ArrowSchema, pffi::ArrowSchema>(ffi_schema),
        )
    };
    // SAFETY: both were just exported by arrow-rs and are valid.
    let field = unsafe { pffi::import_field_from_c(&schema) }?;
    // SAFETY: the array matches the field just imported from the same export.
    let imported = unsafe { pffi::import_array_from_c(array, field.dtype().clone()) }?;
    Ok(Series::from_arrow(PlSmallStr::from_str(name), imported)?)
}

/// A batch as a polars frame.
pub fn to_polars(batch: &RecordBatch) -> Result<DataFrame> {
    let columns = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, a)| to_series(f.name(), a).map(Column::from))
        .collect::<Result<Vec<_>>>()
        .context("passing the batch to polars")?;
    Ok(DataFrame::new(batch.num_rows(), columns)?)
}

/// One polars column as an arrow-rs array.
fn to_array(column: Column) -> Result<ArrayRef> {
    let name = column.name().clone();
    let array = column.rechunk_to_arrow(CompatLevel::newest());
    let field = polars_arrow::datatypes::Field::new(name, array.dtype().clone(), true);
    let schema = pffi::export_field_to_c(&field);
    let array = pffi::export_array_to_c(array);
    // SAFETY: as in `to_series`, the other way round.
    let (array, schema): (FFI_ArrowArray, FFI_ArrowSchema) = unsafe {
        (
            std::mem::transmute::<pffi::ArrowArray, FFI_ArrowArray>(array),
            std::mem::transmute::<pffi::ArrowSchema, FFI_ArrowSchema>(schema),
        )
    };
    // SAFETY: both were just exported by polars and are valid.
    let data = unsafe { from_ffi(array, &schema) }?;
    Ok(make_array(data))
}

/// The type a polars result column is given back as: polars' string and binary
/// views become plain Utf8 and Binary, the types arrow-rs readers and writers
/// (and the model inputs) handle everywhere.
pub fn plain(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        other => other.clone(),
    }
}

/// A polars frame as a batch. With `schema`, columns are cast to its types (the
/// input's types for columns passed through); without, to [`plain`] types.
pub fn to_arrow(frame: DataFrame, schema: Option<&SchemaRef>) -> Result<RecordBatch> {
    let rows = frame.height();
    let mut fields = vec![];
    let mut arrays = vec![];
    for (i, column) in frame.into_columns().into_iter().enumerate() {
        let name = column.name().to_string();
        let array =
            to_array(column).with_context(|| format!("taking column `{name}` back from polars"))?;
        let target = match schema {
            Some(s) => s.field(i).data_type().clone(),
            None => plain(array.data_type()),
        };
        let array = if array.data_type() == &target {
            array
        } else {
            arrow::compute::cast(&array, &target).with_context(|| {
                format!(
                    "casting column `{name}` from {} to {target}",
                    array.data_type()
                )
            })?
        };
        fields.push(Field::new(name, target, true));
        arrays.push(array);
    }
    let schema = match schema {
        Some(s) => s.clone(),
        None => std::sync::Arc::new(Schema::new(fields)),
    };
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(schema, arrays, &options)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Date32Array, Float32Array, Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn batches_cross_over_and_back_without_copies() {
        let floats = Float32Array::from(vec![Some(1.5), None, Some(f32::NAN)]);
        let batch = RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            ("x", Arc::new(floats) as ArrayRef),
            (
                "s",
                Arc::new(StringArray::from(vec![Some("a"), None, Some("ccc")])) as ArrayRef,
            ),
            (
                "d",
                Arc::new(Date32Array::from(vec![19000, 19001, 19002])) as ArrayRef,
            ),
        ])
        .unwrap();
        let frame = to_polars(&batch).unwrap();
        assert_eq!(frame.height(), 3);
        let back = to_arrow(frame, Some(&batch.schema())).unwrap();
        assert_eq!(back, batch);
        // The id column's values were not copied on the way there and back.
        let ptr = |b: &RecordBatch| b.column(0).to_data().buffers()[0].as_ptr();
        assert_eq!(ptr(&back), ptr(&batch));
        assert_eq!(back.column(1).null_count(), 1);
        let plain = to_arrow(to_polars(&batch).unwrap(), None).unwrap();
        assert_eq!(plain.schema().field(2).data_type(), &DataType::Utf8);
    }
}
