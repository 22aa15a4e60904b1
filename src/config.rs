//! Parsed arguments turned, once, into checked settings. Defaults live here.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::cli::{CsvArgs, MappingArgs, ScoreArgs};
use crate::job::{expand_date, RunDate};
use crate::mapping::MappingRequest;
use crate::rejects::{MaxErrors, OnError};
use crate::sink::OutputTarget;
use crate::source::{expand_inputs, CsvOptions, InputFile};

/// Rows per batch. MEASURED.md: splitting batches below ~1,024 rows across threads
/// wastes CPU, and tract's throughput per model family is flat from 1,024 to 8,192
/// rows; 8,192 rows of 30 float32 features (1 MiB) keep a batch in L2 while giving
/// each of 2 workers many tasks on inputs of 100k rows and up.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// Where the text summary goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SummaryTo {
    Stderr,
    Stdout,
    Nowhere,
}

/// Settings of a scoring run.
#[derive(Debug)]
pub struct ScoreConfig {
    pub model: PathBuf,
    pub inputs: Vec<InputFile>,
    pub csv: CsvOptions,
    pub output: OutputTarget,
    pub on_error: OnError,
    /// With `--on-error skip`: the error file.
    pub errors: Option<OutputTarget>,
    pub mapping: MappingRequest,
    pub batch_size: usize,
    pub threads: usize,
    pub price_per_hour: Option<f64>,
    pub summary_json: Option<PathBuf>,
    pub summary: SummaryTo,
    pub quiet: bool,
    /// Time between progress lines in logs.
    pub progress_every: std::time::Duration,
    /// Stop after the checks, before scoring.
    pub check: bool,
}

fn one_byte(what: &str, s: &str) -> Result<u8> {
    let s = if s == "\\t" { "\t" } else { s };
    match s.as_bytes() {
        [b] => Ok(*b),
        _ => bail!("--{what} must be one byte, got {s:?}"),
    }
}

pub fn csv_options(args: &CsvArgs) -> Result<CsvOptions> {
    let nulls: Vec<String> = args.null_values.split(',').map(str::to_owned).collect();
    CsvOptions::new(
        one_byte("delimiter", &args.delimiter)?,
        one_byte("quote", &args.quote)?,
        &nulls,
    )
}

pub fn mapping_request(args: &MappingArgs) -> Result<MappingRequest> {
    let mut input_map = vec![];
    for item in &args.input_map {
        let (name, cols) = item
            .split_once('=')
            .with_context(|| format!("--input-map {item:?}: expected NAME=col1,col2"))?;
        let cols: Vec<String> = cols
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        if name.is_empty() || cols.is_empty() {
            bail!("--input-map {item:?}: expected NAME=col1,col2");
        }
        input_map.push((name.to_owned(), cols));
    }
    Ok(MappingRequest {
        features: args.features.clone(),
        input_map,
        keep: args.keep.clone(),
        keep_all: args.keep_all,
    })
}

/// Usage errors (exit 2) come out of here; nothing is opened but the inputs' names.
pub fn score_config(args: &ScoreArgs) -> Result<ScoreConfig> {
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    let batch_size = match args.batch_size {
        Some(0) => bail!("--batch-size must be at least 1"),
        Some(n) => n,
        None => DEFAULT_BATCH_SIZE,
    };
    if let Some(p) = args.price_per_hour {
        if !(p.is_finite() && p >= 0.0) {
            bail!("--price-per-hour must be a non-negative number of USD, got {p}");
        }
    }
    let summary = match args.summary.as_str() {
        "stderr" => SummaryTo::Stderr,
        "-" | "stdout" => SummaryTo::Stdout,
        "none" => SummaryTo::Nowhere,
        other => bail!("--summary {other:?}: expected stderr, - (stdout) or none"),
    };
    let date = match &args.date {
        Some(d) => RunDate::parse(d)?,
        None => RunDate::today(),
    };
    let dated = |s: &str| expand_date(s, &date);
    let output = OutputTarget::parse(&dated(&args.output), args.overwrite)?;
    if output.kind == crate::sink::OutputKind::Stdout && summary == SummaryTo::Stdout {
        bail!("--output - and --summary - both want stdout; send the summary to stderr or a file");
    }
    let on_error = match args.on_error.as_str() {
        "skip" => OnError::Skip {
            max: args
                .max_errors
                .as_deref()
                .map(MaxErrors::parse)
                .transpose()?,
        },
        _ => {
            if args.max_errors.is_some() || args.errors.is_some() {
                bail!("--max-errors and --errors go with --on-error skip");
            }
            OnError::Fail
        }
    };
    let errors = match (&on_error, &args.errors) {
        (OnError::Fail, _) => None,
        (OnError::Skip { .. }, Some(path)) => {
            Some(OutputTarget::parse(&dated(path), args.overwrite)?)
        }
        (OnError::Skip { .. }, None) if output.kind == crate::sink::OutputKind::Stdout => {
            bail!("--on-error skip with --output - needs --errors PATH for the rejected rows")
        }
        (OnError::Skip { .. }, None) => {
            let stem = output
                .path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("output");
            Some(OutputTarget::parse(
                &output
                    .path
                    .with_file_name(format!("{stem}.errors.parquet"))
                    .display()
                    .to_string(),
                args.overwrite,
            )?)
        }
    };
    if let Some(e) = &errors {
        if e.kind != crate::sink::OutputKind::Parquet {
            bail!("--errors {} must be a Parquet file", e.path.display());
        }
        if e.path == output.path {
            bail!("--errors and --output name the same file");
        }
    }
    Ok(ScoreConfig {
        model: args.model.clone(),
        on_error,
        errors,
        inputs: expand_inputs(
            &args
                .input
                .input
                .iter()
                .map(|i| dated(i))
                .collect::<Vec<_>>(),
            args.input.csv.input_format,
        )?,
        csv: csv_options(&args.input.csv)?,
        output,
        mapping: mapping_request(&args.mapping)?,
        batch_size,
        threads,
        price_per_hour: args.price_per_hour,
        summary_json: args
            .summary_json
            .as_ref()
            .map(|p| PathBuf::from(dated(&p.display().to_string()))),
        summary,
        quiet: args.quiet,
        progress_every: match args.progress_every {
            None => crate::progress::LOG_EVERY,
            Some(s) if s.is_finite() && s > 0.0 => std::time::Duration::from_secs_f64(s),
            Some(s) => bail!("--progress-every {s}: a positive number of seconds"),
        },
        check: args.check,
    })
}
