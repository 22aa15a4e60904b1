//! CSV input through arrow-csv: a header, inferred types, configurable delimiter,
//! quote and null spellings; standard input for shell pipelines.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow::csv::reader::Format;
use arrow::csv::ReaderBuilder;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use regex::Regex;

/// Rows read to infer column types.
const INFER_ROWS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct CsvOptions {
    delimiter: u8,
    quote: u8,
    /// Matches the spellings read as null (the empty string included when listed).
    nulls: Regex,
}

impl CsvOptions {
    pub fn new(delimiter: u8, quote: u8, null_values: &[String]) -> Result<CsvOptions> {
        let alts: Vec<String> = null_values.iter().map(|s| regex::escape(s)).collect();
        let nulls = Regex::new(&format!("^(?:{})$", alts.join("|")))
            .context("--null-values: too many or too long spellings")?;
        Ok(CsvOptions {
            delimiter,
            quote,
            nulls,
        })
    }

    fn format(&self) -> Format {
        Format::default()
            .with_header(true)
            .with_delimiter(self.delimiter)
            .with_quote(self.quote)
            .with_null_regex(self.nulls.clone())
    }
}

fn open(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("cannot open {}", path.display()))
}

pub fn infer_schema(path: &Path, opts: &CsvOptions) -> Result<SchemaRef> {
    let (schema, records) = opts
        .format()
        .infer_schema(open(path)?, Some(INFER_ROWS))
        .with_context(|| {
            format!(
                "cannot read the header and types of CSV file {}",
                path.display()
            )
        })?;
    if schema.fields().is_empty() {
        bail!("CSV file {} is empty: it has no header", path.display());
    }
    if records == 0 {
        bail!("CSV file {} has a header but no rows, so its column types cannot be known; drop it from the inputs", path.display());
    }
    Ok(Arc::new(schema))
}

/// Checks that a further CSV file's header names the same columns as the first file.
pub fn check_header(path: &Path, first: &SchemaRef, opts: &CsvOptions) -> Result<SchemaRef> {
    let mut line = String::new();
    BufReader::new(open(path)?)
        .read_line(&mut line)
        .with_context(|| format!("reading the header of {}", path.display()))?;
    let (header, _) = opts
        .format()
        .with_null_regex(Regex::new("^$").expect("valid regex"))
        .infer_schema(Cursor::new(line.as_bytes()), Some(0))
        .with_context(|| format!("cannot read the header of {}", path.display()))?;
    let names: Vec<&String> = header.fields().iter().map(|f| f.name()).collect();
    let expected: Vec<&String> = first.fields().iter().map(|f| f.name()).collect();
    if names != expected {
        bail!(
            "{} has columns [{}] but the first input has [{}]; every input must have the same columns",
            path.display(),
            names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            expected.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(first.clone())
}

/// Infers the schema of standard input from its first rows, returning those bytes
/// so that reading starts again from the beginning.
pub fn stdin_schema(opts: &CsvOptions) -> Result<(SchemaRef, Vec<u8>)> {
    let mut prefix = Vec::new();
    let mut stdin = std::io::stdin().lock();
    for _ in 0..=INFER_ROWS {
        if stdin
            .read_until(b'\n', &mut prefix)
            .context("reading standard input")?
            == 0
        {
            break;
        }
    }
    let (schema, records) = opts
        .format()
        .infer_schema(Cursor::new(&prefix), Some(INFER_ROWS))
        .context("cannot read the header and types of the CSV on standard input")?;
    if schema.fields().is_empty() {
        bail!("standard input is empty: expected CSV with a header");
    }
    if records == 0 {
        bail!("standard input has a CSV header but no rows");
    }
    Ok((Arc::new(schema), prefix))
}

fn builder(
    schema: &SchemaRef,
    opts: &CsvOptions,
    projection: &[usize],
    batch_size: usize,
) -> ReaderBuilder {
    ReaderBuilder::new(schema.clone())
        .with_format(opts.format())
        .with_batch_size(batch_size)
        .with_projection(projection.to_vec())
}

fn batches<R: Read + Send + 'static>(
    reader: R,
    schema: &SchemaRef,
    opts: &CsvOptions,
    projection: &[usize],
    batch_size: usize,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
    let reader = builder(schema, opts, projection, batch_size).build(reader)?;
    Ok(Box::new(reader.map(|r| r.map_err(anyhow::Error::from))))
}

pub fn read(
    path: &Path,
    schema: &Schema,
    opts: &CsvOptions,
    projection: &[usize],
    batch_size: usize,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
    let schema = Arc::new(schema.clone());
    batches(open(path)?, &schema, opts, projection, batch_size)
}

pub fn read_stdin(
    prefix: Vec<u8>,
    schema: &Schema,
    opts: &CsvOptions,
    projection: &[usize],
    batch_size: usize,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
    let schema = Arc::new(schema.clone());
    let input = Cursor::new(prefix).chain(std::io::stdin());
    batches(input, &schema, opts, projection, batch_size)
}
