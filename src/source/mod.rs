//! Inputs: finding the files behind `--input`, checking they form one dataset with
//! one schema, and reading them as record batches of the needed columns only.
//!
//! Each file is read front to back, one batch at a time (Parquet row group by row
//! group), so memory is bounded by the batch size, not by the input size.
//!
//! Directories are read recursively; `key=value` directories are partition
//! columns (`hive`). A [`Pruner`] (a row filter) may rule out whole files by their
//! partition values before they are opened, and Parquet row groups by their
//! statistics before they are read.

mod csv;
mod csv_quotes;
mod csv_skip;
pub(crate) mod hive;
mod parquet;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow::array::ArrayRef;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::sys::panics;

pub use self::csv::{parse_type, CsvOptions, DEFAULT_INFER_ROWS};
pub use self::csv_quotes::bad_quoting;
pub use self::hive::Partitions;

/// A value in an input that cannot be read as its column's type: a bad row.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}, row {row} (0-based, header excluded), column `{column}`: {reason}")]
pub struct BadValue {
    pub file: String,
    pub row: u64,
    pub column: String,
    pub reason: String,
}

/// Batches of one read, in file order.
pub type Batches = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// What the pipeline reads from, without knowing the format: the input's files,
/// each read whole or by some of its row groups.
///
/// Contract: `read` yields batches of at most `batch_size` rows, in the file's
/// order, holding exactly the `projection` columns (indices into the source's
/// schema, ascending) with partition columns filled in. Memory stays bounded by
/// the batch size: nothing reads a file whole. An error names the file; a
/// library panic on damaged data comes back as an error. How many threads decode
/// a file is the source's own setting, not the caller's.
pub trait Source: Send {
    /// How many files there are.
    fn files(&self) -> usize;
    /// File `file`'s name, for messages and error rows.
    fn file_name(&self, file: usize) -> String;
    /// Reads file `file`, or only the given row groups of it.
    fn read(
        &mut self,
        file: usize,
        row_groups: Option<&[usize]>,
        projection: &[usize],
        batch_size: usize,
    ) -> Result<Batches>;
    /// Rows set aside since the last call (bad values, when the source sets them
    /// aside): each is in the batch last yielded, read as far as it could be.
    fn take_rejected(&mut self) -> Vec<BadValue> {
        vec![]
    }
}

impl Source for Dataset {
    fn files(&self) -> usize {
        self.files.len()
    }

    fn file_name(&self, file: usize) -> String {
        self.files[file].display()
    }

    fn read(
        &mut self,
        file: usize,
        row_groups: Option<&[usize]>,
        projection: &[usize],
        batch_size: usize,
    ) -> Result<Batches> {
        self.read_row_groups(file, row_groups, projection, batch_size)
    }

    fn take_rejected(&mut self) -> Vec<BadValue> {
        match &self.rejected {
            Some(r) => std::mem::take(&mut *r.lock().unwrap_or_else(|p| p.into_inner())),
            None => vec![],
        }
    }
}

/// Decides from statistics which files and row groups may hold selected rows.
pub trait Pruner {
    /// Columns whose statistics can rule data out.
    fn columns(&self) -> Vec<String>;
    /// For units (files or row groups) described by `stats`, one row each, whether
    /// each may hold a selected row. For a column `c` of [`Pruner::columns`],
    /// `stats` may hold the lower and upper bounds of its values in each unit as
    /// columns named [`min_name`]`(c)` and [`max_name`]`(c)`; a null bound is unknown.
    fn may_match(&self, stats: &RecordBatch) -> Result<Vec<bool>>;
}

/// The name of column `c`'s lower bound in a statistics batch.
pub fn min_name(c: &str) -> String {
    format!("{c} (min)")
}

/// The name of column `c`'s upper bound in a statistics batch.
pub fn max_name(c: &str) -> String {
    format!("{c} (max)")
}

/// What pruning left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Files not opened: their partition values exclude every row.
    pub files: u64,
    /// Parquet row groups not read: their statistics exclude every row.
    pub row_groups: u64,
    /// Rows in those row groups.
    pub rows: u64,
}

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
    /// `key=value` directories between the input root and the file (raw values).
    pub partitions: Vec<(String, String)>,
    /// Standard input, a pipe or a device: read once, front to back.
    pub stream: bool,
    /// An object in a bucket (`path` is then its key).
    pub remote: Option<crate::storage::Remote>,
}

impl InputFile {
    /// A local file with no partition values.
    pub fn local(path: PathBuf, format: Format) -> InputFile {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        InputFile {
            path,
            format,
            size,
            partitions: vec![],
            stream: false,
            remote: None,
        }
    }

    pub fn is_stdin(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    /// Whether the input can be read only once (standard input, a pipe, a device).
    pub fn is_stream(&self) -> bool {
        self.stream
    }

    pub fn display(&self) -> String {
        if let Some(r) = &self.remote {
            r.url.to_string()
        } else if self.is_stdin() {
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

/// The directory a glob's matches are under: its components before the first
/// one holding a wildcard.
fn glob_root(spec: &str) -> PathBuf {
    Path::new(spec)
        .components()
        .take_while(|c| !is_glob(&c.as_os_str().to_string_lossy()))
        .collect()
}

/// Whether a directory entry is left out: names starting with `.` or `_` are
/// hidden, temporary or bookkeeping files (`_SUCCESS`, `_errors/`, `.tmp…`).
fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with(['.', '_']))
}

/// Input file names as a short phrase for messages: the first, and how many more.
pub fn describe_files(names: &[String]) -> String {
    match names {
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} and {} more file(s)", rest.len()),
        [] => "the input".into(),
    }
}

/// A stream input: standard input or a path that is not a regular file.
fn stream_input(path: PathBuf, forced: Option<Format>) -> Result<InputFile> {
    let name = if path.as_os_str() == "-" {
        "standard input (-)".to_string()
    } else {
        path.display().to_string()
    };
    let format = format_of(&path, forced).unwrap_or(Format::Csv);
    if format == Format::Parquet {
        bail!(
            "{name} is a pipe or a stream, and Parquet cannot be read from one (its footer, which says where everything is, comes last); write it to a file first and pass that file"
        );
    }
    Ok(InputFile {
        path,
        format,
        size: 0,
        partitions: vec![],
        stream: true,
        remote: None,
    })
}

/// The objects an `s3://`, `gs://` or `az://` input names.
fn remote_inputs(
    url: &crate::storage::ObjectUrl,
    forced: Option<Format>,
) -> Result<Vec<InputFile>> {
    let (root, objects) =
        crate::storage::list::expand(url, |key| format_of(Path::new(key), forced).is_some())?;
    objects
        .into_iter()
        .map(|object| {
            let path = PathBuf::from(&object.url.key);
            let format = format_of(&path, forced).with_context(|| {
                format!("cannot tell the format of {}; name it .parquet or .csv, or pass --input-format", object.url)
            })?;
            Ok(InputFile {
                partitions: hive::pairs(Path::new(&root), &path),
                format,
                size: object.size,
                stream: false,
                remote: Some(object),
                path,
            })
        })
        .collect()
}

/// Expands `--input` values (files, directories, globs, `-`) into files, in order:
/// each value in the order given, a directory's or a glob's files sorted by path.
/// A value that names an existing path is that path, even when it holds glob
/// characters (`day[1].parquet`); only a value that names nothing is a glob. A
/// path that is not a regular file or directory (a pipe, `/dev/stdin`, `<(cmd)`)
/// is a stream, read once as `-` is.
pub fn expand_inputs(specs: &[String], forced: Option<Format>) -> Result<Vec<InputFile>> {
    let mut files = vec![];
    for spec in specs {
        if spec == "-" {
            files.push(stream_input("-".into(), forced)?);
            continue;
        }
        match crate::storage::Location::parse(spec)? {
            crate::storage::Location::Object(url) => files.extend(remote_inputs(&url, forced)?),
            crate::storage::Location::Local(path) => {
                files.extend(local_inputs(&path.to_string_lossy(), forced)?)
            }
        }
    }
    if files.is_empty() {
        bail!("no input given; pass --input PATH (a file, a directory, a glob, or - for CSV on stdin)");
    }
    if files.iter().any(|f| f.is_stream()) && files.len() > 1 {
        let stream = files.iter().find(|f| f.is_stream()).expect("one is");
        bail!(
            "{} is read as a stream (standard input or a pipe), which cannot be combined with other inputs",
            stream.display()
        );
    }
    Ok(files)
}

/// The files one local `--input` value names (see [`expand_inputs`]).
fn local_inputs(spec: &str, forced: Option<Format>) -> Result<Vec<InputFile>> {
    let mut files = vec![];
    let mut found = vec![];
    let root;
    let literal = std::fs::metadata(spec);
    if literal.is_err() && is_glob(spec) {
        root = glob_root(spec);
        for entry in glob::glob(spec).with_context(|| format!("invalid glob pattern {spec:?}"))? {
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
        let meta = literal.with_context(|| format!("cannot open input {spec}"))?;
        if meta.is_dir() {
            // Recursively, for partitioned datasets (year=2024/month=01/…).
            let walk = walkdir::WalkDir::new(&path)
                .follow_links(true)
                .into_iter()
                .filter_entry(|e| e.depth() == 0 || !is_hidden(e.file_name()));
            for entry in walk {
                let entry = entry.with_context(|| format!("cannot list directory {spec}"))?;
                let p = entry.path();
                if entry.file_type().is_file() && format_of(p, forced).is_some() {
                    found.push(p.to_path_buf());
                }
            }
            if found.is_empty() {
                bail!("directory {spec} holds no .parquet or .csv file");
            }
            root = path;
        } else if !meta.is_file() {
            return Ok(vec![stream_input(path, forced)?]);
        } else {
            root = path.parent().map(Path::to_path_buf).unwrap_or_default();
            found.push(path);
        }
    }
    found.sort();
    for path in found {
        let format = format_of(&path, forced).with_context(|| {
            format!(
                "cannot tell the format of {}; name it .parquet or .csv, or pass --input-format",
                path.display()
            )
        })?;
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let partitions = hive::pairs(&root, &path);
        files.push(InputFile {
            path,
            format,
            size,
            partitions,
            stream: false,
            remote: None,
        });
    }
    Ok(files)
}

/// Files read as one dataset with one schema.
pub struct Dataset {
    pub files: Vec<InputFile>,
    /// The columns of every file, then the partition columns.
    pub schema: SchemaRef,
    /// How many of `schema`'s columns come from the files.
    file_columns: usize,
    pub partitions: Partitions,
    /// Rows left to read after pruning, when the files say (Parquet).
    pub total_rows: Option<u64>,
    /// Per file, the row count of each row group (Parquet; None for CSV).
    pub row_groups: Vec<Option<Vec<u64>>>,
    /// Per file, the row groups a pruner ruled out (empty: none).
    skipped: Vec<Vec<bool>>,
    /// A pruner ruled out every file: the first was opened for its schema only.
    schema_only: bool,
    /// What a pruner left out.
    pub pruned: Pruned,
    csv: CsvOptions,
    /// A stream input, after type inference read its first bytes.
    stream: Option<csv::Stream>,
    /// Threads that may decode one Parquet file (a second one decodes half of
    /// its columns).
    decode_threads: usize,
    /// With `--on-error skip`: CSV rows whose values do not parse, set aside.
    rejected: Option<csv_skip::Rejected>,
}

/// A row group to read: its index, the index in its file of its first row, its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowGroup {
    pub index: usize,
    pub first_row: u64,
    pub rows: u64,
}

/// What to read of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSelection {
    /// A CSV file: all of it.
    Whole,
    /// A Parquet file: these row groups (all of them when nothing was pruned).
    RowGroups(Vec<RowGroup>),
}

/// A file's schema, its row groups' row counts (Parquet), and the bounds of the
/// requested columns per row group.
type Footer = (
    SchemaRef,
    Option<Vec<u64>>,
    Vec<(String, ArrayRef, ArrayRef)>,
);

impl Dataset {
    /// Reads every file's schema and checks that they agree.
    pub fn open(files: Vec<InputFile>, csv: CsvOptions) -> Result<Dataset> {
        Dataset::open_pruned(files, csv, None)
    }

    /// Like [`Dataset::open`], leaving out what `pruner` rules out: files by their
    /// partition values (they are not opened) and Parquet row groups by their
    /// statistics. A pruner that fails rules nothing out.
    pub fn open_pruned(
        files: Vec<InputFile>,
        csv: CsvOptions,
        pruner: Option<&dyn Pruner>,
    ) -> Result<Dataset> {
        let wanted: Vec<String> = pruner.map(|p| p.columns()).unwrap_or_default();
        let (files, partitions, files_pruned, schema_only) = prune_files(files, pruner, &wanted)?;
        let mut pruned = Pruned {
            files: files_pruned,
            ..Pruned::default()
        };
        let mut schema: Option<(SchemaRef, String)> = None;
        let mut row_groups = vec![];
        let mut skipped = vec![];
        let mut stream = None;
        let mut ahead = headers_ahead(&files);
        for (ix, file) in files.iter().enumerate() {
            let first = schema.as_ref().map(|(s, _)| s.clone());
            let fetched = ahead.take(ix);
            let read_footer =
                || read_header(file, first.as_ref(), &wanted, &csv, &mut stream, fetched);
            // A library panic on a damaged file is an error naming the file.
            let (file_schema, rows, bounds) = panics::catch(read_footer).map_err(|p| {
                anyhow::anyhow!(
                    "{} is damaged: reading its header crashed the {:?} reader ({p})",
                    file.display(),
                    file.format
                )
            })??;
            let mut skip = vec![];
            if let (Some(p), Some(groups), false) = (pruner, &rows, schema_only) {
                let stats = bounds_batch(
                    &partitions,
                    &wanted,
                    std::iter::repeat_n(ix, groups.len()),
                    bounds,
                )?;
                if let Ok(keep) = p.may_match(&stats) {
                    skip = keep.iter().map(|k| !k).collect();
                }
                for (g, _) in skip.iter().enumerate().filter(|(_, s)| **s) {
                    pruned.row_groups += 1;
                    pruned.rows += groups[g];
                }
            }
            row_groups.push(rows);
            skipped.push(skip);
            match &schema {
                None => schema = Some((file_schema, file.display())),
                Some((first, first_name)) => {
                    check_same_schema(first, first_name, &file_schema, &file.display())?
                }
            }
        }
        let (file_schema, _) = schema.context("no input files")?;
        let file_columns = file_schema.fields().len();
        let schema = with_partitions(&file_schema, &partitions, &files[0].display())?;
        let mut dataset = Dataset {
            files,
            schema,
            file_columns,
            partitions,
            total_rows: None,
            row_groups,
            skipped,
            schema_only,
            pruned,
            csv,
            stream,
            decode_threads: 1,
            rejected: None,
        };
        if dataset.csv.sets_bad_rows_aside() {
            dataset.rejected = Some(Default::default());
        }
        dataset.total_rows = dataset.rows_to_read();
        Ok(dataset)
    }

    /// Lets a second thread decode half of each Parquet file's columns when
    /// `threads` > 1: with cheap models the reader is the busiest thread.
    pub fn with_decode_threads(mut self, threads: usize) -> Dataset {
        self.decode_threads = threads.max(1);
        self
    }

    /// Rows left to read after pruning, when the files say (every file Parquet).
    fn rows_to_read(&self) -> Option<u64> {
        (0..self.files.len())
            .map(|f| match self.selection(f) {
                None => Some(0),
                Some(FileSelection::Whole) => None,
                Some(FileSelection::RowGroups(groups)) => Some(groups.iter().map(|g| g.rows).sum()),
            })
            .sum()
    }

    /// What to read of file `ix`; None: nothing (a pruner ruled it out).
    pub fn selection(&self, ix: usize) -> Option<FileSelection> {
        if self.schema_only {
            return None;
        }
        let Some(groups) = &self.row_groups[ix] else {
            return Some(FileSelection::Whole);
        };
        let mut first_row = 0;
        let mut selected = vec![];
        for (index, &rows) in groups.iter().enumerate() {
            if self.skipped[ix].get(index) != Some(&true) {
                selected.push(RowGroup {
                    index,
                    first_row,
                    rows,
                });
            }
            first_row += rows;
        }
        (!selected.is_empty()).then_some(FileSelection::RowGroups(selected))
    }

    /// How many files have rows left to read.
    pub fn files_to_read(&self) -> usize {
        (0..self.files.len())
            .filter(|&f| self.selection(f).is_some())
            .count()
    }

    /// Reads file `ix`: batches of at most `batch_size` rows holding the columns
    /// `projection` (indices into `schema`, ascending).
    pub fn read_file(
        &mut self,
        ix: usize,
        projection: &[usize],
        batch_size: usize,
    ) -> Result<Batches> {
        self.read_row_groups(ix, None, projection, batch_size)
    }

    /// Reads file `ix`, or only the given row groups of a Parquet file. Partition
    /// columns in `projection` are added to each batch.
    fn read_row_groups(
        &mut self,
        ix: usize,
        row_groups: Option<&[usize]>,
        projection: &[usize],
        batch_size: usize,
    ) -> Result<Batches> {
        let split = self.decode_threads > 1;
        let file = self.files[ix].clone();
        let (from_file, from_path): (Vec<usize>, Vec<usize>) =
            projection.iter().partition(|&&i| i < self.file_columns);
        let stream = &mut self.stream;
        let file_schema = Arc::new(Schema::new(
            self.schema.fields()[..self.file_columns].to_vec(),
        ));
        let csv_options = &self.csv;
        let rejected = self.rejected.as_ref();
        let open = || match file.format {
            Format::Parquet => parquet::read(&file, row_groups, &from_file, batch_size, split),
            Format::Csv if file.is_stream() => {
                let read = stream.take().with_context(|| {
                    format!("{} is a stream and was read already", file.display())
                })?;
                csv::read_stream(
                    read,
                    &file.display(),
                    &file_schema,
                    csv_options,
                    &from_file,
                    batch_size,
                    rejected,
                )
            }
            Format::Csv => csv::read(
                &file,
                &file_schema,
                csv_options,
                &from_file,
                batch_size,
                rejected,
            ),
        };
        let batches = panics::catch(open).map_err(|p| {
            anyhow::anyhow!("opening {} crashed the reader ({p})", file.display())
        })??;
        let batches: Box<dyn Iterator<Item = Result<RecordBatch>> + Send> = if from_path.is_empty()
        {
            batches
        } else {
            let schema = Arc::new(self.schema.project(projection)?);
            let partitions = self.partitions.clone();
            let first = self.file_columns;
            Box::new(batches.map(move |batch| {
                let batch = batch?;
                let mut columns = batch.columns().to_vec();
                for &i in &from_path {
                    columns.push(partitions.column(ix, i - first, batch.num_rows())?);
                }
                Ok(RecordBatch::try_new(schema.clone(), columns)?)
            }))
        };
        Ok(Box::new(Guarded {
            inner: Some(batches),
        }))
    }
}

/// Objects' footers and headers, fetched several at a time ahead of the loop
/// that reads them (the first CSV file is read further, for its types).
fn headers_ahead(files: &[InputFile]) -> crate::storage::read::Ahead {
    use crate::storage::read::{Ahead, End};
    Ahead::new(
        files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let end = match f.format {
                    Format::Parquet => End::Tail,
                    Format::Csv if i > 0 => End::Head,
                    Format::Csv => return None,
                };
                f.remote.clone().map(|r| (r, end))
            })
            .collect(),
    )
}

/// The files' schema with the partition columns after it; a column that is also
/// a partition directory is refused.
fn with_partitions(
    file_schema: &SchemaRef,
    partitions: &Partitions,
    first: &str,
) -> Result<SchemaRef> {
    if let Some(f) = partitions
        .fields
        .iter()
        .find(|f| file_schema.field_with_name(f.name()).is_ok())
    {
        bail!(
            "`{0}` is both a column of {first} and a partition directory ({0}=…); rename one of them",
            f.name(),
        );
    }
    let mut fields: Vec<_> = file_schema.fields().iter().cloned().collect();
    fields.extend(partitions.fields.iter().cloned());
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        file_schema.metadata().clone(),
    )))
}

/// The files a pruner does not rule out by their partition values, with those
/// values; how many were ruled out; whether all were (the first is then kept, to
/// be opened for its schema only).
fn prune_files(
    files: Vec<InputFile>,
    pruner: Option<&dyn Pruner>,
    wanted: &[String],
) -> Result<(Vec<InputFile>, Partitions, u64, bool)> {
    let all = Partitions::infer(&files)?;
    let keep = match pruner {
        Some(p) if !all.is_empty() => {
            let stats = bounds_batch(&all, wanted, 0..files.len(), vec![])?;
            p.may_match(&stats)
                .unwrap_or_else(|_| vec![true; files.len()])
        }
        _ => vec![true; files.len()],
    };
    let ruled_out = keep.iter().filter(|k| !**k).count() as u64;
    let schema_only = !files.is_empty() && !keep.contains(&true);
    let mut partitions = Partitions {
        fields: all.fields.clone(),
        values: vec![],
    };
    let files = files
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep[*i] || (schema_only && *i == 0))
        .map(|(i, f)| {
            partitions.values.push(all.values[i].clone());
            f
        })
        .collect();
    Ok((files, partitions, ruled_out, schema_only))
}

/// One file's schema, row groups and column bounds (Parquet), or its header
/// (CSV: later files are parsed with the first file's types, and their header
/// must name the same columns). A stream keeps what inference read in `stream`.
fn read_header(
    file: &InputFile,
    first: Option<&SchemaRef>,
    wanted: &[String],
    csv: &CsvOptions,
    stream: &mut Option<csv::Stream>,
    fetched: Option<bytes::Bytes>,
) -> Result<Footer> {
    Ok(match file.format {
        Format::Parquet => {
            let (s, rows, bounds) = parquet::footer(file, wanted, fetched)?;
            (s, Some(rows), bounds)
        }
        Format::Csv if file.is_stream() => {
            let opened: Box<dyn std::io::Read + Send> = if file.is_stdin() {
                Box::new(std::io::stdin())
            } else {
                Box::new(
                    std::fs::File::open(&file.path)
                        .with_context(|| format!("cannot open {}", file.display()))?,
                )
            };
            let (s, read) = csv::stream_schema(opened, &file.display(), csv)?;
            *stream = Some(read);
            (s, None, vec![])
        }
        Format::Csv => match first {
            Some(first) => (csv::check_header(file, first, csv, fetched)?, None, vec![]),
            None => (csv::infer_schema(file, csv)?, None, vec![]),
        },
    })
}

/// A statistics batch for [`Pruner::may_match`]: one row per unit, `units` giving
/// each unit's file (for its partition values, which are both its bounds), plus
/// the given bounds of file columns.
fn bounds_batch(
    partitions: &Partitions,
    wanted: &[String],
    units: impl Iterator<Item = usize>,
    file_bounds: Vec<(String, ArrayRef, ArrayRef)>,
) -> Result<RecordBatch> {
    let units: Vec<usize> = units.collect();
    let mut fields = vec![];
    let mut columns: Vec<ArrayRef> = vec![];
    for (k, field) in partitions.fields.iter().enumerate() {
        if !wanted.contains(field.name()) {
            continue;
        }
        let values: Vec<&dyn arrow::array::Array> = units
            .iter()
            .map(|&f| partitions.values[f][k].as_ref())
            .collect();
        let column = arrow::compute::concat(&values)?;
        for name in [min_name(field.name()), max_name(field.name())] {
            fields.push(Field::new(name, field.data_type().clone(), true));
            columns.push(column.clone());
        }
    }
    for (name, min, max) in file_bounds {
        fields.push(Field::new(min_name(&name), min.data_type().clone(), true));
        columns.push(min);
        fields.push(Field::new(max_name(&name), max.data_type().clone(), true));
        columns.push(max);
    }
    let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(units.len()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &options,
    )?)
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
