//! Outputs. A [`Sink`] accepts record batches in order and then commits or is
//! dropped. File outputs are written under a temporary name in the destination
//! directory and renamed onto the output path only by `commit`: after any failure
//! or kill the output path holds nothing or a complete file. A dropped sink removes
//! its temporary file; one left by SIGKILL is named `.<output>.*.batchinfer-tmp`.

pub(crate) mod atomic;
pub(crate) mod clash;
pub(crate) mod lock;
pub(crate) mod outdir;
pub(crate) mod parts;
pub(crate) mod shard;
pub(crate) mod staged;

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::pipeline::Destination;
use crate::sink::staged::Staged;
use crate::storage::ObjectUrl;

/// Rows per row group written. The writer holds a row group in memory until it
/// is full: at parquet's default of 1M rows that is ~32 MiB for an id and four
/// float predictions, and peak memory then depends on where the run ends
/// relative to row-group boundaries. 128Ki rows keeps it to a few MiB.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Receives the scored batches of one run, in input order.
pub trait Sink: Send {
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;
    /// Adds a key-value pair to the file's metadata (Parquet); others ignore it.
    fn annotate(&mut self, _key: &str, _value: &str) {}
    /// Finishes the output and makes it visible at its path.
    fn commit(self: Box<Self>) -> Result<()>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Parquet,
    Csv,
    Stdout,
    /// Part files, a manifest and a `_SUCCESS` marker (see `parts`).
    Directory,
    /// Nothing is written (`batchinfer profile` scores for the profile only).
    Discard,
}

/// A single output file and, with `--on-error skip`, its error file.
pub struct FileDestination {
    pub sink: Box<dyn Sink>,
    pub errors: Option<Box<dyn Sink>>,
    pub target: OutputTarget,
}

impl Destination for FileDestination {
    fn write(
        &mut self,
        _part: usize,
        output: &RecordBatch,
        rejected: Option<&RecordBatch>,
    ) -> Result<()> {
        self.sink.write(output)?;
        if let (Some(bad), Some(errors)) = (rejected, self.errors.as_mut()) {
            errors.write(bad).context("writing the error file")?;
        }
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<()> {
        if let Some(errors) = self.errors {
            errors.commit().context("committing the error file")?;
        }
        self.sink.commit()
    }

    fn annotate(&mut self, _part: usize, key: &str, value: &str) {
        self.sink.annotate(key, value);
    }

    fn keep_errors(self: Box<Self>) -> String {
        match self.errors.map(|e| e.commit()) {
            Some(Ok(())) => "the error file".into(),
            Some(Err(e)) => format!("no file: the error file could not be written ({e:#})"),
            None => "no file".into(),
        }
    }

    fn left_behind(&self, rows_written: u64) -> String {
        match self.target.kind {
            OutputKind::Stdout if rows_written > 0 => format!(
                "{rows_written} rows (and the header) were already written to standard output, which a reader may have taken for a complete result"
            ),
            OutputKind::Stdout => "nothing was written to standard output".into(),
            _ => format!("nothing was written to {}", self.target.display()),
        }
    }
}

/// Where and how to write.
#[derive(Debug, Clone)]
pub struct OutputTarget {
    /// The local path; for an object, its key.
    pub path: PathBuf,
    pub kind: OutputKind,
    pub overwrite: bool,
    /// An object in a bucket.
    pub remote: Option<ObjectUrl>,
}

impl OutputTarget {
    /// Reads the kind from the path: `-` is CSV on stdout, a path ending in `/` or
    /// an existing directory is a directory output, `.csv` is CSV, anything else
    /// Parquet.
    pub fn parse(path: &str, overwrite: bool) -> Result<OutputTarget> {
        if path == "-" {
            return Ok(OutputTarget {
                path: "-".into(),
                kind: OutputKind::Stdout,
                overwrite,
                remote: None,
            });
        }
        let (p, remote) = match crate::storage::Location::parse(path)? {
            crate::storage::Location::Local(p) => (p, None),
            crate::storage::Location::Object(url) => (PathBuf::from(&url.key), Some(url)),
        };
        let prefix = remote.is_some() && (path.ends_with('/') || p.as_os_str().is_empty());
        if prefix || (remote.is_none() && (path.ends_with('/') || p.is_dir())) {
            return Ok(OutputTarget {
                path: p,
                kind: OutputKind::Directory,
                overwrite,
                remote,
            });
        }
        let kind = match p
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
        {
            Some(e) if e == "csv" => OutputKind::Csv,
            _ => OutputKind::Parquet,
        };
        Ok(OutputTarget {
            path: p,
            kind,
            overwrite,
            remote,
        })
    }

    /// A directory output's directory or prefix.
    pub fn dir(&self) -> outdir::OutDir {
        match &self.remote {
            Some(url) => outdir::OutDir::parse(&url.to_string()).expect("a URL parsed before"),
            None => outdir::OutDir::Local(self.path.clone()),
        }
    }

    /// The path or URL, for messages.
    pub fn display(&self) -> String {
        match &self.remote {
            Some(url) => url.to_string(),
            None => self.path.display().to_string(),
        }
    }

    /// Refuses an existing output unless `--overwrite`: a cheap check made first.
    pub fn check_free(&self) -> Result<()> {
        let file = matches!(self.kind, OutputKind::Parquet | OutputKind::Csv);
        if let Some(url) = &self.remote {
            return crate::storage::upload::check_free(url, self.overwrite);
        }
        if file {
            crate::sink::atomic::refuse_special(&self.path)?;
        }
        if file && self.path.exists() && !self.overwrite {
            bail!(
                "output {} already exists; pass --overwrite to replace it",
                self.path.display()
            );
        }
        Ok(())
    }

    /// Checks, before scoring, that the output may be written (see `check_free`)
    /// and that its directory is writable, by creating the temporary file.
    pub fn open(&self, schema: SchemaRef, metadata: &[(String, String)]) -> Result<Box<dyn Sink>> {
        if self.kind == OutputKind::Stdout {
            return Ok(Box::new(CsvSink::new(BufWriter::new(
                crate::sys::out::Stdout,
            ))));
        }
        if self.kind == OutputKind::Discard {
            return Ok(Box::new(Discard));
        }
        self.check_free()?;
        let staged = Staged::create(self)?;
        Ok(match self.kind {
            OutputKind::Parquet => {
                Box::new(ParquetSink::new(staged, self.clone(), schema, metadata)?)
            }
            OutputKind::Csv => Box::new(FileCsvSink {
                inner: CsvSink::new(BufWriter::new(staged)),
                target: self.clone(),
            }),
            OutputKind::Stdout | OutputKind::Directory | OutputKind::Discard => {
                bail!(
                    "{} is a directory output: it is written part by part",
                    self.path.display()
                )
            }
        })
    }
}

/// "writing PATH", with advice when the file system is full.
fn write_context(action: &str, target: &OutputTarget, e: anyhow::Error) -> anyhow::Error {
    if target.remote.is_some() {
        return e.context(format!("{action} {}", target.display()));
    }
    let path = &target.path;
    let full = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::ENOSPC))
            || c.to_string()
                .contains(&format!("(os error {})", libc::ENOSPC))
    });
    if full {
        let dir = path
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        e.context(format!("{action} {}: the file system holding {dir} is full; free space there or write the output elsewhere", path.display()))
    } else {
        e.context(format!("{action} {}", path.display()))
    }
}

struct ParquetSink {
    writer: ArrowWriter<Staged>,
    target: OutputTarget,
}

impl ParquetSink {
    fn new(
        staged: Staged,
        target: OutputTarget,
        schema: SchemaRef,
        metadata: &[(String, String)],
    ) -> Result<ParquetSink> {
        let mut props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_created_by(format!("batchinfer {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(
                metadata
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                    .collect(),
            ));
        // Dictionary encoding of float predictions costs 2.4-3.4x the write time and
        // saves nothing (measured against polars' writer): off. 64-bit integers and timestamps may be
        // ids (all distinct: hashing every value before falling back to plain was
        // 9% of the CPU of a run with a trivial model) or labels (a few values):
        // their dictionary page is capped small, so distinct values fall back after
        // 4Ki of them and labels keep their dictionary.
        for field in schema.fields() {
            let column = ColumnPath::from(field.name().as_str());
            match field.data_type() {
                DataType::Float32 | DataType::Float64 => {
                    props = props.set_column_dictionary_enabled(column, false);
                }
                DataType::Int64 | DataType::UInt64 | DataType::Timestamp(..) => {
                    props = props.set_column_dictionary_page_size_limit(column, 32 * 1024);
                }
                _ => {}
            }
        }
        let writer = ArrowWriter::try_new(staged, schema, Some(props.build()))?;
        Ok(ParquetSink { writer, target })
    }
}

impl Sink for ParquetSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer
            .write(batch)
            .map_err(|e| write_context("writing", &self.target, e.into()))
    }

    fn annotate(&mut self, key: &str, value: &str) {
        self.writer
            .append_key_value_metadata(KeyValue::new(key.to_string(), value.to_string()));
    }

    fn commit(self: Box<Self>) -> Result<()> {
        let ParquetSink { writer, target } = *self;
        let staged = writer
            .into_inner()
            .map_err(|e| write_context("finishing", &target, e.into()))?;
        staged
            .commit()
            .map_err(|e| write_context("finishing", &target, e))
    }
}

/// The output of a run that only profiles.
struct Discard;

impl Sink for Discard {
    fn write(&mut self, _batch: &RecordBatch) -> Result<()> {
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

impl OutputTarget {
    /// No output: `batchinfer profile`.
    pub fn discard() -> OutputTarget {
        OutputTarget {
            path: "(none: profile only)".into(),
            kind: OutputKind::Discard,
            overwrite: false,
            remote: None,
        }
    }
}

/// CSV with a header to any writer.
struct CsvSink<W: Write> {
    writer: arrow::csv::Writer<W>,
}

impl<W: Write> CsvSink<W> {
    fn new(w: W) -> CsvSink<W> {
        CsvSink {
            writer: arrow::csv::WriterBuilder::new().with_header(true).build(w),
        }
    }
}

impl<W: Write + Send> Sink for CsvSink<W> {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).context("writing CSV")
    }

    fn commit(self: Box<Self>) -> Result<()> {
        let mut w = self.writer.into_inner();
        w.flush().context("flushing CSV output")
    }
}

struct FileCsvSink {
    inner: CsvSink<BufWriter<Staged>>,
    target: OutputTarget,
}

impl Sink for FileCsvSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.inner
            .write(batch)
            .map_err(|e| write_context("writing", &self.target, e))
    }

    fn commit(self: Box<Self>) -> Result<()> {
        let FileCsvSink { inner, target } = *self;
        let staged = inner
            .writer
            .into_inner()
            .into_inner()
            .map_err(|e| write_context("writing", &target, e.into_error().into()))?;
        staged
            .commit()
            .map_err(|e| write_context("finishing", &target, e))
    }
}

/// Output schema: kept fields first, types unchanged, then predictions.
pub fn output_schema(
    kept: &[arrow::datatypes::FieldRef],
    predictions: Vec<arrow::datatypes::Field>,
) -> Result<SchemaRef> {
    let mut fields: Vec<arrow::datatypes::FieldRef> = kept.to_vec();
    for p in predictions {
        if let Some(k) = kept.iter().find(|k| k.name() == p.name()) {
            bail!("kept column `{}` has the name of a prediction column; keep fewer columns or rename it", k.name());
        }
        fields.push(Arc::new(p));
    }
    Ok(Arc::new(arrow::datatypes::Schema::new(fields)))
}

/// Refuses, before scoring, a schema the CSV writer cannot write (list and struct
/// columns), naming the column: a one-row batch of nulls is written to memory, so
/// the check is the writer's own.
pub fn check_csv_writable(schema: &SchemaRef) -> Result<()> {
    for field in schema.fields() {
        let one = arrow::datatypes::Schema::new(vec![field.as_ref().clone().with_nullable(true)]);
        let batch = RecordBatch::try_new(
            Arc::new(one),
            vec![arrow::array::new_null_array(field.data_type(), 1)],
        )?;
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(Vec::new());
        if let Err(e) = writer.write(&batch) {
            let hint = match field.data_type() {
                DataType::FixedSizeList(..) => "; write Parquet, or drop --as-list",
                DataType::List(_)
                | DataType::LargeList(_)
                | DataType::Struct(_)
                | DataType::Map(..) => "; write Parquet, or do not keep this column",
                _ => "; write Parquet",
            };
            bail!(
                "column `{}` ({}) cannot be written as CSV ({e}){hint}",
                field.name(),
                field.data_type()
            );
        }
    }
    Ok(())
}
