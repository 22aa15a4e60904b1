//! Inputs: finding the files behind `--input`, checking they form one dataset with
//! one schema, and reading them as record batches of the needed columns only.
//!
//! Each file is read front to back, one batch at a time (Parquet row group by row
//! group), so memory is bounded by the batch size, not by the input size.

mod csv;
mod parquet;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::panics;

pub use self::csv::CsvOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Parquet,
    Csv,
}

/// One input file (`-` is standard input, read as CSV).
#[derive(Debug, Clone)]
pub struct InputFile {
    pub path: PathBuf,
    pub format: Format,
    /// Size in bytes (0 for standard input).
    pub size: u64,
}

impl InputFile {
    pub fn is_stdin(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    pub fn display(&self) -> String {
        if self.is_stdin() {
            "<stdin>".into()
        } else {
            self.path.display().to_string()
        }
    }
}

fn format_of(path: &Path, forced: Option<Format>) -> Option<Format> {
    if forced.is_some() {
        return forced;
    }
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "parquet" | "pq" => Some(Format::Parquet),
        "csv" | "tsv" | "txt" => Some(Format::Csv),
        _ => None,
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands `--input` values (files, directories, globs, `-`) into files, in order:
/// each value in the order given, a directory's or a glob's files sorted by path.
pub fn expand_inputs(specs: &[String], forced: Option<Format>) -> Result<Vec<InputFile>> {
    let mut files = vec![];
    for spec in specs {
        if spec == "-" {
            files.push(InputFile {
                path: "-".into(),
                format: Format::Csv,
                size: 0,
            });
            continue;
        }
        let mut found = vec![];
        if is_glob(spec) {
            for entry in
                glob::glob(spec).with_context(|| format!("invalid glob pattern {spec:?}"))?
            {
                let path = entry.with_context(|| format!("reading a match of {spec:?}"))?;
                if path.is_file() {
                    found.push(path);
                }
            }
            if found.is_empty() {
                bail!("no file matches {spec:?}; check the pattern and quote it so the shell does not expand it");
            }
        } else {
            let path = PathBuf::from(spec);
            let meta =
                std::fs::metadata(&path).with_context(|| format!("cannot open input {spec}"))?;
            if meta.is_dir() {
                for entry in std::fs::read_dir(&path)
                    .with_context(|| format!("cannot list directory {spec}"))?
                {
                    let p = entry?.path();
                    let hidden = p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(['.', '_']));
                    if p.is_file() && !hidden && format_of(&p, forced).is_some() {
                        found.push(p);
                    }
                }
                if found.is_empty() {
                    bail!("directory {spec} holds no .parquet or .csv file");
                }
            } else {
                found.push(path);
            }
        }
        found.sort();
        for path in found {
            let format = format_of(&path, forced).with_context(|| {
                format!("cannot tell the format of {}; name it .parquet or .csv, or pass --input-format", path.display())
            })?;
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            files.push(InputFile { path, format, size });
        }
    }
    if files.is_empty() {
        bail!("no input given; pass --input PATH (a file, a directory, a glob, or - for CSV on stdin)");
    }
    if files.iter().filter(|f| f.is_stdin()).count() > 0 && files.len() > 1 {
        bail!("standard input (-) cannot be combined with other inputs");
    }
    Ok(files)
}

/// A batch read from one file, with where it came from.
#[derive(Debug)]
pub struct SourceBatch {
    /// Index into `Dataset::files`.
    pub file: usize,
    /// Index of the batch's first row within its file (0-based, header excluded).
    pub first_row: u64,
    pub batch: RecordBatch,
}

/// Files read as one dataset with one schema.
pub struct Dataset {
    pub files: Vec<InputFile>,
    /// The schema of every file (all columns).
    pub schema: SchemaRef,
    /// Rows in the dataset, when the files say (Parquet).
    pub total_rows: Option<u64>,
    /// Per file, the row count of each row group (Parquet; None for CSV).
    pub row_groups: Vec<Option<Vec<u64>>>,
    csv: CsvOptions,
    stdin_prefix: Option<Vec<u8>>,
}

impl Dataset {
    /// Reads every file's schema and checks that they agree.
    pub fn open(files: Vec<InputFile>, csv: CsvOptions) -> Result<Dataset> {
        let mut schema: Option<(SchemaRef, String)> = None;
        let mut total_rows = Some(0u64);
        let mut row_groups = vec![];
        let mut stdin_prefix = None;
        for file in &files {
            let read_schema = || -> Result<(SchemaRef, Option<Vec<u64>>)> {
                Ok(match file.format {
                    Format::Parquet => {
                        let (s, rows) = parquet::schema(&file.path)?;
                        (s, Some(rows))
                    }
                    Format::Csv if file.is_stdin() => {
                        let (s, prefix) = csv::stdin_schema(&csv)?;
                        stdin_prefix = Some(prefix);
                        (s, None)
                    }
                    Format::Csv => match &schema {
                        // Later CSV files are parsed with the first file's types; their
                        // header must name the same columns.
                        Some((first, _)) => (csv::check_header(&file.path, first, &csv)?, None),
                        None => (csv::infer_schema(&file.path, &csv)?, None),
                    },
                })
            };
            // A library panic on a damaged file is an error naming the file.
            let (file_schema, rows) = panics::catch(read_schema).map_err(|p| {
                anyhow::anyhow!(
                    "{} is damaged: reading its header crashed the {:?} reader ({p})",
                    file.display(),
                    file.format
                )
            })??;
            total_rows = total_rows
                .zip(rows.as_ref())
                .map(|(a, b)| a + b.iter().sum::<u64>());
            row_groups.push(rows);
            match &schema {
                None => schema = Some((file_schema, file.display())),
                Some((first, first_name)) => {
                    check_same_schema(first, first_name, &file_schema, &file.display())?
                }
            }
        }
        let (schema, _) = schema.context("no input files")?;
        Ok(Dataset {
            files,
            schema,
            total_rows,
            row_groups,
            csv,
            stdin_prefix,
        })
    }

    /// Reads file `ix`: batches of at most `batch_size` rows holding the columns
    /// `projection` (indices into `schema`, ascending).
    pub fn read_file(
        &mut self,
        ix: usize,
        projection: &[usize],
        batch_size: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
        self.read_row_groups(ix, None, projection, batch_size)
    }

    /// Reads file `ix`, or only the given row groups of a Parquet file.
    pub fn read_row_groups(
        &mut self,
        ix: usize,
        row_groups: Option<&[usize]>,
        projection: &[usize],
        batch_size: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
        let file = self.files[ix].clone();
        let stdin_prefix = &mut self.stdin_prefix;
        let (schema, csv_options) = (&self.schema, &self.csv);
        let open = || match file.format {
            Format::Parquet => parquet::read(&file.path, row_groups, projection, batch_size),
            Format::Csv if file.is_stdin() => {
                let prefix = stdin_prefix.take().unwrap_or_default();
                csv::read_stdin(prefix, schema, csv_options, projection, batch_size)
            }
            Format::Csv => csv::read(&file.path, schema, csv_options, projection, batch_size),
        };
        let batches = panics::catch(open).map_err(|p| {
            anyhow::anyhow!("opening {} crashed the reader ({p})", file.display())
        })??;
        Ok(Box::new(Guarded {
            inner: Some(batches),
        }))
    }
}

/// Batches from a reader, with a library panic on damaged data turned into an
/// error (after which the reader yields nothing more).
struct Guarded {
    inner: Option<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>>,
}

impl Iterator for Guarded {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let inner = self.inner.as_mut()?;
        match panics::catch(|| inner.next()) {
            Ok(item) => item,
            Err(p) => {
                self.inner = None;
                Some(Err(anyhow::anyhow!(
                    "the reader crashed on damaged data ({p})"
                )))
            }
        }
    }
}

fn check_same_schema(
    first: &Schema,
    first_name: &str,
    other: &Schema,
    other_name: &str,
) -> Result<()> {
    let names = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
    };
    if names(first) != names(other) {
        bail!(
            "{other_name} has columns [{}] but {first_name} has [{}]; every input must have the same columns",
            names(other).join(", "),
            names(first).join(", ")
        );
    }
    for (a, b) in first.fields().iter().zip(other.fields()) {
        if a.data_type() != b.data_type() {
            bail!(
                "column `{}` is {} in {other_name} but {} in {first_name}; every input must have the same types",
                a.name(),
                b.data_type(),
                a.data_type()
            );
        }
    }
    Ok(())
}
