//! CSV input through arrow-csv: a header, inferred or declared types, configurable
//! delimiter, quote and null spellings; pipes and standard input read once.
//!
//! Every byte goes through [`QuoteChecked`] first, so bad quoting is an error
//! naming the file and line instead of rows silently merged into one field.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow::csv::reader::Format;
use arrow::csv::ReaderBuilder;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use regex::Regex;

use super::csv_quotes::QuoteChecked;
use super::csv_skip::{Rejected, Settings, SkippingReader};
use super::{BadValue, Batches, InputFile};

/// Rows read to infer column types, unless `--infer-rows` says otherwise.
pub const DEFAULT_INFER_ROWS: usize = 10_000;

/// A stream (standard input, a pipe) read once: the bytes type inference read,
/// then the rest.
pub type Stream = (Vec<u8>, Box<dyn Read + Send>);

#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// None: `,`, or tab for `.tsv` files.
    delimiter: Option<u8>,
    quote: u8,
    /// Matches the spellings read as null (the empty string included when listed).
    nulls: Regex,
    /// Rows read to infer types; None: all of them.
    infer_rows: Option<usize>,
    /// Declared column types, which inference leaves alone.
    types: Vec<(String, DataType)>,
    /// `--on-error skip`: rows with values that do not parse, or text after a
    /// closing quote, are set aside instead of failing the read.
    skip_bad_rows: bool,
}

impl CsvOptions {
    pub fn new(delimiter: Option<u8>, quote: u8, null_values: &[String]) -> Result<CsvOptions> {
        let alts: Vec<String> = null_values.iter().map(|s| regex::escape(s)).collect();
        let nulls = Regex::new(&format!("^(?:{})$", alts.join("|")))
            .context("--null-values: too many or too long spellings")?;
        Ok(CsvOptions {
            delimiter,
            quote,
            nulls,
            infer_rows: Some(DEFAULT_INFER_ROWS),
            types: vec![],
            skip_bad_rows: false,
        })
    }

    /// Rows to infer types from (0: all).
    pub fn with_infer_rows(mut self, rows: usize) -> CsvOptions {
        self.infer_rows = (rows > 0).then_some(rows);
        self
    }

    /// Sets rows that cannot be read (but can be delimited) aside as bad rows.
    pub fn with_bad_rows_set_aside(mut self, skip: bool) -> CsvOptions {
        self.skip_bad_rows = skip;
        self
    }

    pub fn sets_bad_rows_aside(&self) -> bool {
        self.skip_bad_rows
    }

    /// The quoting check of a file or stream: lenient (rows set aside into
    /// `rejected`) under `--on-error skip`.
    fn checked<R: Read>(
        &self,
        input: R,
        name: &str,
        path: &Path,
        rejected: Option<&Rejected>,
    ) -> QuoteChecked<R> {
        let checked = QuoteChecked::new(input, name, self.delimiter_for(path), self.quote);
        if self.skip_bad_rows {
            checked.lenient(rejected.cloned())
        } else {
            checked
        }
    }

    /// Columns whose type is declared, not inferred.
    pub fn with_types(mut self, types: Vec<(String, DataType)>) -> CsvOptions {
        self.types = types;
        self
    }

    /// The delimiter of a file: the one given, else tab for `.tsv` and `,` otherwise.
    fn delimiter_for(&self, path: &Path) -> u8 {
        self.delimiter.unwrap_or_else(|| {
            let tsv = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
            if tsv {
                b'\t'
            } else {
                b','
            }
        })
    }

    fn format(&self, path: &Path) -> Format {
        Format::default()
            .with_header(true)
            .with_delimiter(self.delimiter_for(path))
            .with_quote(self.quote)
            .with_null_regex(self.nulls.clone())
    }

    /// The options as the flags that set them, for manifests and messages.
    pub fn flags(&self) -> Vec<(String, String)> {
        let mut flags = vec![
            (
                "--delimiter".to_string(),
                match self.delimiter {
                    None => "(auto: , or tab for .tsv)".to_string(),
                    Some(b'\t') => "\\t".to_string(),
                    Some(b) => (b as char).to_string(),
                },
            ),
            ("--quote".to_string(), (self.quote as char).to_string()),
            ("--null-values".to_string(), self.null_spellings()),
            (
                "--infer-rows".to_string(),
                self.infer_rows.unwrap_or(0).to_string(),
            ),
        ];
        if !self.types.is_empty() {
            let types: Vec<String> = self
                .types
                .iter()
                .map(|(c, t)| format!("{c}={}", type_name(t)))
                .collect();
            flags.push(("--column-type".to_string(), types.join(",")));
        }
        flags
    }

    fn null_spellings(&self) -> String {
        let s = self.nulls.as_str();
        s.strip_prefix("^(?:")
            .and_then(|s| s.strip_suffix(")$"))
            .unwrap_or(s)
            .replace('|', ",")
    }

    /// What inference covered, for messages.
    fn inferred_from(&self) -> String {
        match self.infer_rows {
            Some(n) => format!("the first {n} rows"),
            None => "every row".into(),
        }
    }

    /// The schema inference found, with declared types put in.
    fn declare(&self, inferred: Schema, file: &str) -> Result<Schema> {
        let mut fields: Vec<Field> = inferred
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for (name, dt) in &self.types {
            let Some(f) = fields.iter_mut().find(|f| f.name() == name) else {
                bail!("--column-type {name}=…: {file} has no column `{name}`");
            };
            *f = Field::new(name, dt.clone(), true);
        }
        Ok(Schema::new(fields))
    }
}

/// The `--column-type` type names.
pub fn parse_type(s: &str) -> Result<DataType> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "string" | "utf8" | "str" => DataType::Utf8,
        "int64" | "int" | "integer" => DataType::Int64,
        "int32" => DataType::Int32,
        "float64" | "double" | "float" => DataType::Float64,
        "float32" => DataType::Float32,
        "bool" | "boolean" => DataType::Boolean,
        "date" | "date32" => DataType::Date32,
        "timestamp" => DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        other => bail!(
            "unknown column type {other:?}; use string, int64, int32, float64, float32, bool, date or timestamp"
        ),
    })
}

fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 => "string".into(),
        DataType::Int64 => "int64".into(),
        DataType::Int32 => "int32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Boolean => "bool".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        other => other.to_string(),
    }
}

fn open(
    file: &InputFile,
    opts: &CsvOptions,
    rejected: Option<&Rejected>,
) -> Result<QuoteChecked<Box<dyn Read + Send>>> {
    open_with_head(file, opts, rejected, None)
}

/// [`open`], starting from `head` (an object's first bytes, fetched already).
fn open_with_head(
    file: &InputFile,
    opts: &CsvOptions,
    rejected: Option<&Rejected>,
    head: Option<bytes::Bytes>,
) -> Result<QuoteChecked<Box<dyn Read + Send>>> {
    use crate::storage::read::ObjectReader;
    let bytes: Box<dyn Read + Send> = match (&file.remote, head) {
        (Some(remote), Some(head)) => Box::new(ObjectReader::with_head(remote, head)),
        (Some(remote), None) => Box::new(ObjectReader::open(remote)?),
        (None, _) => Box::new(
            File::open(&file.path).with_context(|| format!("cannot open {}", file.display()))?,
        ),
    };
    Ok(opts.checked(bytes, &file.display(), &file.path, rejected))
}

fn infer<R: Read>(
    mut reader: QuoteChecked<R>,
    what: &str,
    path: &Path,
    opts: &CsvOptions,
) -> Result<(SchemaRef, usize)> {
    let inferred = opts.format(path).infer_schema(&mut reader, opts.infer_rows);
    let (schema, records) = match (inferred, reader.failure()) {
        (Err(_), Some(bad)) => return Err(anyhow::Error::new(bad.clone())),
        (inferred, _) => {
            inferred.with_context(|| format!("cannot read the header and types of {what}"))?
        }
    };
    if schema.fields().is_empty() {
        bail!("{what} is empty: it has no header");
    }
    Ok((Arc::new(opts.declare(schema, what)?), records))
}

pub fn infer_schema(file: &InputFile, opts: &CsvOptions) -> Result<SchemaRef> {
    let what = format!("CSV file {}", file.display());
    let (schema, records) = infer(open(file, opts, None)?, &what, &file.path, opts)?;
    if records == 0 {
        bail!("{what} has a header but no rows, so its column types cannot be known; drop it from the inputs");
    }
    Ok(schema)
}

/// Checks that a further CSV file's header names the same columns as the first file.
pub fn check_header(
    file: &InputFile,
    first: &SchemaRef,
    opts: &CsvOptions,
    head: Option<bytes::Bytes>,
) -> Result<SchemaRef> {
    let mut line = String::new();
    BufReader::new(open_with_head(file, opts, None, head)?)
        .read_line(&mut line)
        .with_context(|| format!("reading the header of {}", file.display()))?;
    let (header, _) = opts
        .format(&file.path)
        .with_null_regex(Regex::new("^$").expect("valid regex"))
        .infer_schema(Cursor::new(line.as_bytes()), Some(0))
        .with_context(|| format!("cannot read the header of {}", file.display()))?;
    let names: Vec<&String> = header.fields().iter().map(|f| f.name()).collect();
    let expected: Vec<&String> = first.fields().iter().map(|f| f.name()).collect();
    if names != expected {
        bail!(
            "{} has columns [{}] but the first input has [{}]; every input must have the same columns",
            file.display(),
            names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            expected.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(first.clone())
}

/// Infers the schema of a stream (`name` is `<stdin>` or the pipe's path) from its
/// first rows, keeping those bytes and the stream so that reading starts again
/// from the beginning without opening it twice.
pub fn stream_schema(
    mut stream: Box<dyn Read + Send>,
    name: &str,
    opts: &CsvOptions,
) -> Result<(SchemaRef, Stream)> {
    let mut prefix = Vec::new();
    let mut ended = false;
    {
        let mut buffered = BufReader::new(&mut stream);
        let rows = opts.infer_rows.unwrap_or(usize::MAX);
        // The header and up to `rows` lines (a quoted line end may make a record
        // longer; inference then sees fewer records, which is fine).
        let mut lines = 0usize;
        while lines <= rows {
            if buffered
                .read_until(b'\n', &mut prefix)
                .with_context(|| format!("reading {name}"))?
                == 0
            {
                ended = true;
                break;
            }
            lines += 1;
        }
        // What the buffer read beyond the last line belongs to the rest.
        let extra = buffered.buffer().to_vec();
        prefix.extend_from_slice(&extra);
    }
    let what = if name == "<stdin>" {
        "the CSV on standard input".to_string()
    } else {
        format!("the CSV stream {name}")
    };
    let path = Path::new(name);
    let mut checked = opts.checked(Cursor::new(prefix.as_slice()), name, path, None);
    if !ended {
        checked = checked.prefix_only();
    }
    let (schema, records) = infer(checked, &what, path, opts)?;
    if records == 0 {
        bail!("{what} has a header but no rows");
    }
    Ok((schema, (prefix, stream)))
}

/// The value that did not parse, when that is why a batch failed: its column,
/// and `row` (the file row; None: the one arrow's message names).
fn bad_value(
    e: &ArrowError,
    file: &str,
    schema: &Schema,
    opts: &CsvOptions,
    row: Option<u64>,
) -> Option<BadValue> {
    let text = e.to_string();
    let re = Regex::new(
        r"Error while parsing value '(.*)' as type '(.*)' for column (\d+) at line (\d+)\.",
    )
    .ok()?;
    let c = re.captures(&text)?;
    let (value, data_type) = (c[1].to_string(), c[2].to_string());
    let col: usize = c[3].parse().ok()?;
    // arrow counts records from 1 after the header.
    let line: u64 = c[4].parse().ok()?;
    let column = schema.fields().get(col)?.name().clone();
    let declared = opts.types.iter().any(|(c, _)| *c == column);
    let advice = if declared {
        format!("it was declared {data_type} with --column-type")
    } else {
        format!(
            "its type was inferred as {data_type} from {} (a type inference limit); pass --infer-rows 0 to infer from every row, or declare it: --column-type {column}=float64 (or string)",
            opts.inferred_from()
        )
    };
    Some(BadValue {
        file: file.to_string(),
        row: row.unwrap_or(line.saturating_sub(1)),
        column,
        reason: format!("value {value:?} is not a {data_type}; {advice}"),
    })
}

/// Why a batch could not be read: a value that does not parse as its column's
/// type is a [`BadValue`]; anything else as it came.
fn explain(e: ArrowError, file: &str, schema: &Schema, opts: &CsvOptions) -> anyhow::Error {
    if let Some(bad) = bad_value(&e, file, schema, opts, None) {
        return anyhow::Error::new(bad);
    }
    match e {
        // Keep the reader's own error (bad quoting) reachable for the pipeline.
        ArrowError::IoError(msg, io) => anyhow::Error::new(io).context(msg),
        other => anyhow::Error::new(other),
    }
}

/// What one read of a CSV input takes: its name, schema and format, the columns
/// and the batch size.
struct ReadPlan<'a> {
    file: &'a str,
    schema: &'a SchemaRef,
    format: Format,
    projection: &'a [usize],
    batch_size: usize,
}

/// Reads with bad values set aside (`--on-error skip`) into `rejected`.
fn skipping<R: Read + Send + 'static>(
    reader: R,
    plan: ReadPlan<'_>,
    opts: &CsvOptions,
    rejected: &Rejected,
) -> Result<Batches> {
    let ReadPlan {
        file,
        schema,
        format,
        projection,
        batch_size,
    } = plan;
    let (name, full, options) = (file.to_string(), schema.clone(), opts.clone());
    let settings = Settings {
        schema: schema.clone(),
        format: format.with_header(false),
        projection: projection.to_vec(),
        explain: Box::new(move |e, row| bad_value(&e, &name, &full, &options, Some(row))),
    };
    let reader = SkippingReader::new(reader, settings, batch_size, rejected.clone())?;
    Ok(explaining(reader, file, schema, opts))
}

/// Batches whose errors are explained (see [`explain`]).
fn explaining<E: Into<anyhow::Error>>(
    batches: impl Iterator<Item = Result<RecordBatch, E>> + Send + 'static,
    file: &str,
    schema: &SchemaRef,
    opts: &CsvOptions,
) -> Batches {
    let (file, schema, opts) = (file.to_string(), schema.clone(), opts.clone());
    Box::new(batches.map(move |r| {
        r.map_err(|e| match e.into().downcast::<ArrowError>() {
            Ok(a) => explain(a, &file, &schema, &opts),
            Err(other) => other,
        })
    }))
}

fn batches<R: Read + Send + 'static>(
    reader: R,
    plan: ReadPlan<'_>,
    opts: &CsvOptions,
) -> Result<Batches> {
    let ReadPlan {
        file,
        schema,
        format,
        projection,
        batch_size,
    } = plan;
    let reader = ReaderBuilder::new(schema.clone())
        .with_format(format)
        .with_batch_size(batch_size)
        .with_projection(projection.to_vec())
        .build(reader)?;
    Ok(explaining(reader, file, schema, opts))
}

/// Reads a CSV file; with `rejected`, values that do not parse make their rows
/// bad rows, reported there, instead of failing the read.
pub fn read(
    file: &InputFile,
    schema: &Schema,
    opts: &CsvOptions,
    projection: &[usize],
    batch_size: usize,
    rejected: Option<&Rejected>,
) -> Result<Batches> {
    let schema = Arc::new(schema.clone());
    let name = file.display();
    let input = open(file, opts, rejected)?;
    let format = opts.format(&file.path);
    let plan = ReadPlan {
        file: &name,
        schema: &schema,
        format,
        projection,
        batch_size,
    };
    match rejected {
        Some(r) => skipping(input, plan, opts, r),
        None => batches(input, plan, opts),
    }
}

/// Reads a stream whose first bytes [`stream_schema`] read (`rejected` as for [`read`]).
pub fn read_stream(
    stream: Stream,
    name: &str,
    schema: &Schema,
    opts: &CsvOptions,
    projection: &[usize],
    batch_size: usize,
    rejected: Option<&Rejected>,
) -> Result<Batches> {
    let schema = Arc::new(schema.clone());
    let (prefix, rest) = stream;
    let path = Path::new(name);
    let input = opts.checked(Cursor::new(prefix).chain(rest), name, path, rejected);
    let format = opts.format(path);
    let plan = ReadPlan {
        file: name,
        schema: &schema,
        format,
        projection,
        batch_size,
    };
    match rejected {
        Some(r) => skipping(input, plan, opts, r),
        None => batches(input, plan, opts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    /// A CSV parse as the reference parser made it: rows of fields, or a refusal.
    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        text: String,
        /// Header and rows; None: the reference refuses the input.
        expected: Option<Vec<Vec<String>>>,
    }

    /// Parses `text` as batchinfer does, every column read as a string.
    fn parse(text: &str, dir: &Path) -> Result<Vec<Vec<String>>> {
        let path = dir.join("case.csv");
        std::fs::write(&path, text)?;
        let opts = CsvOptions::new(None, b'"', &[])?;
        let path = InputFile::local(path, crate::source::Format::Csv);
        let header = infer_schema(&path, &opts)?;
        let strings = Schema::new(
            header
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        let all: Vec<usize> = (0..strings.fields().len()).collect();
        let mut rows = vec![header.fields().iter().map(|f| f.name().clone()).collect()];
        for batch in read(&path, &strings, &opts, &all, 7, None)? {
            let batch = batch?;
            for r in 0..batch.num_rows() {
                rows.push(
                    batch
                        .columns()
                        .iter()
                        .map(|c| {
                            let c = c.as_string::<i32>();
                            if c.is_null(r) {
                                String::new()
                            } else {
                                c.value(r).to_string()
                            }
                        })
                        .collect(),
                );
            }
        }
        Ok(rows)
    }

    #[test]
    fn reads_what_pythons_strict_csv_reader_reads_and_refuses_what_it_refuses() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/csv_corpus.json");
        let cases: Vec<Case> =
            serde_json::from_str(&std::fs::read_to_string(&corpus).expect("corpus")).unwrap();
        assert!(cases.len() >= 200, "the corpus holds {} cases", cases.len());
        let (mut refused, mut read) = (0, 0);
        let dir = tempfile::tempdir().unwrap();
        for case in &cases {
            let ours = parse(&case.text, dir.path());
            match (&case.expected, ours) {
                (Some(expected), Ok(ours)) => {
                    assert_eq!(&ours, expected, "case {}: {:?}", case.name, case.text);
                    read += 1;
                }
                (None, Err(_)) => refused += 1,
                (Some(expected), Err(e)) => panic!(
                    "case {}: batchinfer refuses {:?} ({e:#}); the reference reads {expected:?}",
                    case.name, case.text
                ),
                (None, Ok(ours)) => panic!(
                    "case {}: batchinfer reads {:?} as {ours:?}; the reference refuses it",
                    case.name, case.text
                ),
            }
        }
        // Both kinds are well represented, so neither side passes vacuously.
        assert!(
            read >= 50 && refused >= 50,
            "read {read}, refused {refused}"
        );
    }

    #[test]
    fn tsv_files_default_to_tab() {
        let opts = CsvOptions::new(None, b'"', &[]).unwrap();
        assert_eq!(opts.delimiter_for(Path::new("a.tsv")), b'\t');
        assert_eq!(opts.delimiter_for(Path::new("a.TSV")), b'\t');
        assert_eq!(opts.delimiter_for(Path::new("a.csv")), b',');
        let given = CsvOptions::new(Some(b';'), b'"', &[]).unwrap();
        assert_eq!(given.delimiter_for(Path::new("a.tsv")), b';');
    }
}
