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
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{ArrayRef, UInt64Array};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchReader};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};

use super::InputFile;
use crate::storage::read::Footer;
use crate::sys::panics;

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

fn open_file(path: &Path) -> Result<GuardedFile> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(GuardedFile(file))
}

#[cfg(test)]
fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<GuardedFile>> {
    ParquetRecordBatchReaderBuilder::try_new(open_file(path)?)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))
}

/// The file's or object's footer.
/// (From `tail`, an object's last bytes, when they were fetched already.)
fn metadata(file: &InputFile, tail: Option<bytes::Bytes>) -> Result<ArrowReaderMetadata> {
    let loaded = match &file.remote {
        Some(remote) => {
            ArrowReaderMetadata::load(&Footer::with_tail(remote, tail)?, ArrowReaderOptions::new())
        }
        None => ArrowReaderMetadata::load(&open_file(&file.path)?, ArrowReaderOptions::new()),
    };
    loaded.with_context(|| format!("{} is not a readable Parquet file", file.display()))
}

/// The file's Arrow schema, the row count of each row group, and for each of the
/// `wanted` columns the file has, the lower and upper bounds of its values in each
/// row group (null where the statistics do not say), all from its footer.
pub fn footer(file: &InputFile, wanted: &[String], tail: Option<bytes::Bytes>) -> Result<Bounded> {
    let meta = metadata(file, tail)?;
    let groups = meta.metadata().row_groups();
    let rows = groups
        .iter()
        .map(|rg| rg.num_rows().max(0) as u64)
        .collect();
    let schema = meta.schema().clone();
    let mut bounds = vec![];
    for name in wanted {
        if schema.field_with_name(name).is_err() {
            continue;
        }
        let converter = StatisticsConverter::try_new(name, &schema, meta.parquet_schema())?;
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

type BatchIter = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// Reads the file, or only the given row groups (ascending). With `split`, the
/// columns are decoded by two threads, each reading about half of the bytes, when
/// there are at least [`SPLIT_MIN_BYTES`] to read. An object is read row group by
/// row group, each one's projected column chunks fetched ahead (see
/// `storage::read::prefetch`).
pub fn read(
    file: &InputFile,
    row_groups: Option<&[usize]>,
    projection: &[usize],
    batch_size: usize,
    split: bool,
) -> Result<BatchIter> {
    let min_bytes = split.then_some(SPLIT_MIN_BYTES);
    match &file.remote {
        Some(remote) => read_object(remote, row_groups, projection, batch_size, min_bytes),
        None => read_split(&file.path, row_groups, projection, batch_size, min_bytes),
    }
}

/// [`read`] of a local file, split when there are at least `min_bytes` to read.
fn read_split(
    path: &Path,
    row_groups: Option<&[usize]>,
    projection: &[usize],
    batch_size: usize,
    min_bytes: Option<u64>,
) -> Result<BatchIter> {
    let meta = ArrowReaderMetadata::load(&open_file(path)?, ArrowReaderOptions::new())
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
    read_with(
        &meta,
        || open_file(path),
        row_groups,
        projection,
        batch_size,
        min_bytes,
    )
}

/// [`read`] of an object: the column chunks of each row group to read are fetched
/// ahead, then decoded from memory as a local file is.
fn read_object(
    remote: &crate::storage::Remote,
    row_groups: Option<&[usize]>,
    projection: &[usize],
    batch_size: usize,
    min_bytes: Option<u64>,
) -> Result<BatchIter> {
    let meta = ArrowReaderMetadata::load(&Footer::open(remote)?, ArrowReaderOptions::new())
        .with_context(|| format!("{} is not a readable Parquet file", remote.url))?;
    let groups: Vec<usize> = match row_groups {
        Some(g) => g.to_vec(),
        None => (0..meta.metadata().num_row_groups()).collect(),
    };
    let ranges = groups
        .iter()
        .map(|&g| chunk_ranges(meta.metadata(), g, projection))
        .collect();
    let fetched = crate::storage::read::prefetch(remote, ranges, crate::storage::read_ahead())?;
    let projection = projection.to_vec();
    let mut batches: BatchIter = Box::new(std::iter::empty());
    let mut groups = groups.into_iter();
    Ok(Box::new(std::iter::from_fn(move || loop {
        if let Some(b) = batches.next() {
            return Some(b);
        }
        let g = groups.next()?;
        let next = fetched
            .recv()
            .map_err(|_| anyhow::anyhow!("the fetching thread stopped"))
            .and_then(|f| f)
            .and_then(|chunk| {
                read_with(
                    &meta,
                    || Ok(chunk.clone()),
                    Some(&[g]),
                    &projection,
                    batch_size,
                    min_bytes,
                )
            });
        match next {
            Ok(b) => batches = b,
            Err(e) => {
                groups = Vec::new().into_iter();
                return Some(Err(e));
            }
        }
    })))
}

/// The byte ranges of row group `g`'s column chunks of the `projection` columns.
fn chunk_ranges(
    meta: &ParquetMetaData,
    g: usize,
    projection: &[usize],
) -> Vec<std::ops::Range<u64>> {
    let schema = meta.file_metadata().schema_descr();
    meta.row_group(g)
        .columns()
        .iter()
        .enumerate()
        .filter(|(leaf, _)| projection.contains(&schema.get_column_root_idx(*leaf)))
        .map(|(_, c)| {
            let (start, len) = c.byte_range();
            start..start + len
        })
        .collect()
}

/// Reads through readers `open` makes, split when there are at least `min_bytes`
/// to read: the two halves share the footer.
fn read_with<T: ChunkReader + 'static>(
    meta: &ArrowReaderMetadata,
    open: impl Fn() -> Result<T>,
    row_groups: Option<&[usize]>,
    projection: &[usize],
    batch_size: usize,
    min_bytes: Option<u64>,
) -> Result<BatchIter> {
    let builder = || {
        Ok::<_, anyhow::Error>(ParquetRecordBatchReaderBuilder::new_with_metadata(
            open()?,
            meta.clone(),
        ))
    };
    let halves = min_bytes.and_then(|min| halves(meta.metadata(), row_groups, projection, min));
    let Some((front, back)) = halves else {
        let reader = reader(builder()?, row_groups, projection, batch_size)?;
        // The pipeline names the file and row when a batch cannot be read.
        return Ok(Box::new(reader.map(|r| r.map_err(anyhow::Error::from))));
    };
    let front = reader(builder()?, row_groups, &front, batch_size)?;
    let back = reader(builder()?, row_groups, &back, batch_size)?;
    let schema = Arc::new(Schema::new_with_metadata(
        front
            .schema()
            .fields()
            .iter()
            .chain(back.schema().fields())
            .cloned()
            .collect::<Vec<_>>(),
        front.schema().metadata().clone(),
    ));
    Ok(Box::new(Zipped {
        front,
        back: decode_behind(back)?,
        schema,
        done: false,
    }))
}

fn reader<T: ChunkReader + 'static>(
    b: ParquetRecordBatchReaderBuilder<T>,
    row_groups: Option<&[usize]>,
    projection: &[usize],
    batch_size: usize,
) -> Result<ParquetRecordBatchReader> {
    let mask = ProjectionMask::roots(b.parquet_schema(), projection.iter().copied());
    let b = match row_groups {
        Some(groups) => b.with_row_groups(groups.to_vec()),
        None => b,
    };
    Ok(b.with_projection(mask)
        .with_batch_size(batch_size)
        .build()?)
}

/// Compressed bytes to read below which a file is decoded by one thread: starting a
/// second thread and reader costs more than it saves there.
const SPLIT_MIN_BYTES: u64 = 4 << 20;

/// The projection cut in two, in order, where the compressed bytes to read
/// (summed over the row groups read) are about half; `None` when one side would be
/// empty or there are fewer than `min_bytes` to read.
fn halves(
    meta: &ParquetMetaData,
    row_groups: Option<&[usize]>,
    projection: &[usize],
    min_bytes: u64,
) -> Option<(Vec<usize>, Vec<usize>)> {
    if projection.len() < 2 {
        return None;
    }
    let schema = meta.file_metadata().schema_descr();
    let mut bytes = vec![0u64; schema.root_schema().get_fields().len()];
    let all: Vec<usize> = (0..meta.num_row_groups()).collect();
    for &g in row_groups.unwrap_or(&all) {
        for (leaf, chunk) in meta.row_group(g).columns().iter().enumerate() {
            bytes[schema.get_column_root_idx(leaf)] += chunk.compressed_size().max(0) as u64;
        }
    }
    let total: u64 = projection.iter().map(|&c| bytes[c]).sum();
    if total < min_bytes {
        return None;
    }
    let mut seen = 0;
    let cut = projection
        .iter()
        .position(|&c| {
            seen += bytes[c];
            2 * seen >= total
        })
        .map_or(1, |i| i + 1)
        .clamp(1, projection.len() - 1);
    Some((projection[..cut].to_vec(), projection[cut..].to_vec()))
}

/// Decoding threads started, for the tests to see that a read was split.
#[cfg(test)]
static DECODING_THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Batches decoded on a thread of their own, a couple ahead. The thread ends after
/// the last batch, after an error, or when the receiver is dropped.
fn decode_behind<I>(mut reader: I) -> Result<Receiver<Result<RecordBatch>>>
where
    I: Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>> + Send + 'static,
{
    let (tx, rx) = sync_channel(2);
    #[cfg(test)]
    DECODING_THREADS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    std::thread::Builder::new()
        .name("batchinfer-decode".into())
        .spawn(move || loop {
            let item = match panics::catch(|| reader.next()) {
                Ok(None) => return,
                Ok(Some(item)) => item.map_err(anyhow::Error::from),
                Err(p) => Err(anyhow::anyhow!("the reader crashed on damaged data ({p})")),
            };
            let failed = item.is_err();
            if tx.send(item).is_err() || failed {
                return;
            }
        })
        .context("starting a decoding thread")?;
    Ok(rx)
}

/// The two halves' batches, put back together column by column.
struct Zipped {
    front: ParquetRecordBatchReader,
    back: Receiver<Result<RecordBatch>>,
    schema: SchemaRef,
    done: bool,
}

impl Iterator for Zipped {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let front = self.front.next();
        let back = self.back.recv().ok();
        let item = match (front, back) {
            (None, None) => return None,
            (Some(Err(e)), _) => Err(e.into()),
            (_, Some(Err(e))) => Err(e),
            (Some(Ok(a)), Some(Ok(b))) if a.num_rows() == b.num_rows() => {
                let columns = a.columns().iter().chain(b.columns()).cloned().collect();
                return Some(
                    RecordBatch::try_new(self.schema.clone(), columns).map_err(Into::into),
                );
            }
            _ => Err(anyhow::anyhow!(
                "its columns hold different numbers of rows: the file is damaged"
            )),
        };
        self.done = true;
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    use std::sync::atomic::Ordering;

    /// 1,000 rows in row groups of 300: an int64 id, a string with nulls, a float
    /// column and a wide string column (most of the bytes).
    fn write_file(path: &Path) -> RecordBatch {
        let n = 1_000;
        let batch = RecordBatch::try_from_iter(vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..n)) as ArrayRef,
            ),
            (
                "tag",
                Arc::new(StringArray::from_iter(
                    (0..n).map(|i| (i % 7 != 0).then(|| format!("t{}", i % 5))),
                )),
            ),
            (
                "x",
                Arc::new(Float64Array::from_iter_values(
                    (0..n).map(|i| i as f64 / 3.0),
                )),
            ),
            (
                "text",
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("{i:0>200}")),
                )),
            ),
        ])
        .unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(300))
            .build();
        let file = File::create(path).unwrap();
        let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        batch
    }

    #[test]
    fn the_projection_is_cut_where_half_of_the_bytes_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_file(&path);
        let b = builder(&path).unwrap();
        let meta = b.metadata();
        // The wide text column alone outweighs the others.
        assert_eq!(
            halves(meta, None, &[0, 1, 2, 3], 0),
            Some((vec![0, 1, 2], vec![3]))
        );
        assert_eq!(
            halves(meta, Some(&[1]), &[0, 3], 0),
            Some((vec![0], vec![3]))
        );
        assert_eq!(halves(meta, None, &[0, 1], 0), Some((vec![0], vec![1])));
        assert_eq!(halves(meta, None, &[3, 2], 0).map(|h| h.0.len()), Some(1));
        assert_eq!(halves(meta, None, &[2], 0), None);
        // A small file is read by one thread.
        let bytes = std::fs::metadata(&path).unwrap().len();
        assert!(halves(meta, None, &[0, 1, 2, 3], bytes / 2).is_some());
        assert_eq!(halves(meta, None, &[0, 1, 2, 3], 2 * bytes), None);
    }

    #[test]
    fn split_decoding_reads_what_one_thread_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let written = write_file(&path);
        // Row groups read, projection, batch size.
        type Case<'a> = (Option<&'a [usize]>, &'a [usize], usize);
        let cases: [Case; 4] = [
            (None, &[0, 1, 2, 3], 128),
            (None, &[0, 2], 1_000),
            (Some(&[1, 3]), &[1, 2, 3], 77),
            (Some(&[0]), &[0, 3], 300),
        ];
        for (groups, projection, batch_size) in cases {
            let read = |split: bool| {
                read_split(&path, groups, projection, batch_size, split.then_some(0)).unwrap()
            };
            let one: Vec<RecordBatch> = read(false).collect::<Result<_>>().unwrap();
            let started = DECODING_THREADS.load(Ordering::SeqCst);
            let two: Vec<RecordBatch> = read(true).collect::<Result<_>>().unwrap();
            // Other tests may start some too, but this read must have started one.
            assert!(DECODING_THREADS.load(Ordering::SeqCst) > started);
            assert_eq!(one, two, "{groups:?} {projection:?} {batch_size}");
            let rows: usize = two.iter().map(|b| b.num_rows()).sum();
            let expected = groups.map_or(1_000, |g| {
                g.iter().map(|&g| (1_000 - 300 * g).min(300)).sum()
            });
            assert_eq!(rows, expected);
            if groups.is_none() {
                let all = arrow::compute::concat_batches(&two[0].schema(), &two).unwrap();
                assert_eq!(all, written.project(projection).unwrap());
            }
        }
    }

    #[test]
    fn a_panic_on_the_decoding_thread_is_an_error_and_ends_it() {
        panics::install_hook();
        let batch = RecordBatch::try_from_iter(vec![(
            "x",
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
        )])
        .unwrap();
        let mut left = 2;
        let batches = std::iter::from_fn(move || {
            left -= 1;
            assert!(left > 0, "offset + len out of bounds");
            Some(Ok(batch.clone()))
        });
        let rx = decode_behind(batches).unwrap();
        assert_eq!(rx.recv().unwrap().unwrap().num_rows(), 2);
        let e = rx.recv().unwrap().unwrap_err().to_string();
        assert!(e.contains("the reader crashed on damaged data"), "{e}");
        assert!(e.contains("offset + len out of bounds"), "{e}");
        assert!(rx.recv().is_err(), "the thread ends after the error");
    }

    #[test]
    fn a_damaged_file_read_split_fails_instead_of_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_file(&path);
        let mut bytes = std::fs::read(&path).unwrap();
        let len = bytes.len();
        for i in (len / 4..len / 2).step_by(7) {
            bytes[i] ^= 0xFF;
        }
        std::fs::write(&path, bytes).unwrap();
        let results: Vec<Result<RecordBatch>> =
            read_split(&path, None, &[0, 1, 2, 3], 100, Some(0))
                .unwrap()
                .collect();
        let last = results.last().expect("at least one item");
        assert!(last.is_err(), "the damage is reported");
        assert!(results[..results.len() - 1].iter().all(|r| r.is_ok()));
    }
}
