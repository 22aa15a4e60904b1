//! Parquet input through arrow-rs: row group by row group, projected columns only.
//!
//! Files are read through [`GuardedFile`], which fails a read after too many reads
//! at the end of the file. parquet 60.1's thrift decoder can otherwise spin for
//! minutes on a small damaged file (a page header declaring a huge list makes it
//! skip element after element at end of file, one system call each); a real file
//! never reads past its end more than a few times.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result};
use arrow::array::{ArrayRef, UInt64Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::file::reader::{ChunkReader, Length};

/// Reads at the end of the file one reader may make before it fails.
const EOF_BUDGET: u32 = 64;

/// A file whose readers fail after [`EOF_BUDGET`] reads at end of file.
struct GuardedFile(File);

impl Length for GuardedFile {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl ChunkReader for GuardedFile {
    type T = EofBudget<BufReader<File>>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(EofBudget {
            inner: self.0.get_read(start)?,
            left: EOF_BUDGET,
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        self.0.get_bytes(start, length)
    }
}

struct EofBudget<R> {
    inner: R,
    left: u32,
}

impl<R: Read> Read for EofBudget<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if self.left == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file keeps being read past its end: its metadata is damaged",
                ));
            }
            self.left -= 1;
        }
        Ok(n)
    }
}

fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<GuardedFile>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    ParquetRecordBatchReaderBuilder::try_new(GuardedFile(file))
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))
}

/// The file's Arrow schema, the row count of each row group, and for each of the
/// `wanted` columns the file has, the lower and upper bounds of its values in each
/// row group (null where the statistics do not say), all from its footer.
pub fn footer(path: &Path, wanted: &[String]) -> Result<Bounded> {
    let b = builder(path)?;
    let groups = b.metadata().row_groups();
    let rows = groups
        .iter()
        .map(|rg| rg.num_rows().max(0) as u64)
        .collect();
    let schema = b.schema().clone();
    let mut bounds = vec![];
    for name in wanted {
        if schema.field_with_name(name).is_err() {
            continue;
        }
        let converter = StatisticsConverter::try_new(name, &schema, b.parquet_schema())?;
        let min = converter.row_group_mins(groups)?;
        let mut max = converter.row_group_maxes(groups)?;
        if min.data_type().is_floating() {
            // Writers leave NaN out of the bounds, and polars orders NaN above every
            // number: an upper bound holds only where the file says there is no NaN.
            let nans = converter.row_group_nan_counts(groups)?;
            let no_nan = arrow::compute::kernels::cmp::eq(&nans, &UInt64Array::new_scalar(0))?;
            let nulls = arrow::array::new_null_array(max.data_type(), max.len());
            max = arrow::compute::kernels::zip::zip(&no_nan, &max, &nulls)?;
        }
        bounds.push((name.clone(), min, max));
    }
    Ok((schema, rows, bounds))
}

/// A schema, row counts per row group, and per column the bounds per row group.
pub type Bounded = (SchemaRef, Vec<u64>, Vec<(String, ArrayRef, ArrayRef)>);

/// Reads the file, or only the given row groups (ascending).
pub fn read(
    path: &Path,
    row_groups: Option<&[usize]>,
    projection: &[usize],
    batch_size: usize,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
    let mut b = builder(path)?;
    let mask = ProjectionMask::roots(b.parquet_schema(), projection.iter().copied());
    if let Some(groups) = row_groups {
        b = b.with_row_groups(groups.to_vec());
    }
    let reader = b
        .with_projection(mask)
        .with_batch_size(batch_size)
        .build()?;
    // The pipeline names the file and row when a batch cannot be read.
    Ok(Box::new(reader.map(|r| r.map_err(anyhow::Error::from))))
}
