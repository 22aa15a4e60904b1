//! Parquet input through arrow-rs: row group by row group, projected columns only.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))
}

/// The file's Arrow schema and row count, from its footer.
pub fn schema(path: &Path) -> Result<(SchemaRef, u64)> {
    let b = builder(path)?;
    let rows = b.metadata().file_metadata().num_rows().max(0) as u64;
    Ok((b.schema().clone(), rows))
}

pub fn read(
    path: &Path,
    projection: &[usize],
    batch_size: usize,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
    let b = builder(path)?;
    let mask = ProjectionMask::roots(b.parquet_schema(), projection.iter().copied());
    let reader = b
        .with_projection(mask)
        .with_batch_size(batch_size)
        .build()?;
    // The pipeline names the file and row when a batch cannot be read.
    Ok(Box::new(reader.map(|r| r.map_err(anyhow::Error::from))))
}
