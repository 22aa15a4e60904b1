//! The command line as the user types it (clap derive). Nothing here is used past
//! `config`, which turns it into checked settings. Environment variables read by
//! `score` and `run` take every option from `BATCHINFER_<OPTION>` as well (see
//! `job`, which layers job file, environment and flags); `bench` reads only
//! `BATCHINFER_PRICE_PER_HOUR`, through the `env` attribute below.

pub mod config;
#[cfg(test)]
mod doc_lines;
pub mod job;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit;

/// Help shown after `score` and `run`: where options come from, and the exit codes.
fn score_help() -> String {
    format!(
        "Every option can also be set as BATCHINFER_<OPTION> (BATCHINFER_THREADS=4, BATCHINFER_OVERWRITE=true).\n\
         A command-line flag beats the environment, which beats a job file (batchinfer run).\n\n{}",
        exit::help()
    )
}
use crate::source::Format;

/// Offline batch inference: Parquet or CSV in, ONNX model on every core, Parquet out,
/// with a throughput and cost summary.
#[derive(Debug, Parser)]
#[command(name = "batchinfer", version, after_help = exit::help())]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Score inputs with a model and write the predictions next to the kept columns.
    #[command(after_help = score_help(), allow_negative_numbers = true)]
    Score(Box<ScoreArgs>),
    /// Run the job a TOML file describes (keys: the long options of score); flags after the file override it.
    #[command(after_help = score_help())]
    Run(RunArgs),
    /// Score inputs for their profile only: write what the models were fed and predicted, column by column, as a baseline for --baseline.
    #[command(after_help = exit::help(), allow_negative_numbers = true)]
    Profile(Box<ProfileArgs>),
    /// Show a model's inputs, outputs and operators; with --input, the mapping plan.
    #[command(after_help = exit::help(), allow_negative_numbers = true)]
    Inspect(InspectArgs),
    /// Report which shards of a directory output are complete; exit 0 when all are, 1 otherwise.
    Status(StatusArgs),
    /// Measure rows/s, rows per CPU-second and cost per million rows across batch sizes and thread counts.
    #[command(after_help = exit::help(), allow_negative_numbers = true)]
    Bench(BenchArgs),
    /// Print a shell completion script on stdout (bash: `batchinfer completions bash > ~/.local/share/bash-completion/completions/batchinfer`).
    Completions(CompletionsArgs),
    /// Print the manual page of batchinfer or one of its commands on stdout, or write every page into a directory.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell the script is for.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page is printed (score, run, inspect, status, bench, …). Default: the page of batchinfer itself.
    pub command: Option<String>,

    /// Write every page (batchinfer.1, batchinfer-score.1, …) into this directory instead, e.g. ~/.local/share/man/man1.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job file (TOML). Relative paths in it are relative to its directory.
    pub job: PathBuf,

    /// Options of `score` that override the job file.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "SCORE OPTIONS"
    )]
    pub overrides: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The directory output: a path, or a prefix (s3://bucket/scores/).
    pub output: String,

    /// Print the status as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model file (ONNX, XGBoost JSON/UBJSON or LightGBM text); several as NAME=PATH, scored together on each batch as `score` would.
    #[arg(required = true, num_args = 1.., value_name = "[NAME=]MODEL")]
    pub model: Vec<String>,

    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub mapping: MappingArgs,

    /// Rows read into memory and scored per measurement. Default: 100000.
    #[arg(hide_default_value = true, long, default_value_t = 100_000)]
    pub rows: usize,

    /// Thread counts to try (comma-separated). Default: 1 and the available cores.
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,

    /// Batch sizes to try (comma-separated). Default: 256,1024,8192,65536.
    #[arg(
        hide_default_value = true,
        long,
        value_delimiter = ',',
        default_value = "256,1024,8192,65536"
    )]
    pub batch_size: Vec<usize>,

    /// Measurements per setting; the median is reported. Default: 3.
    #[arg(hide_default_value = true, long, default_value_t = 3)]
    pub repeat: usize,

    /// Machine price in USD per hour, for the cost per million rows.
    #[arg(long, env = "BATCHINFER_PRICE_PER_HOUR", value_name = "USD")]
    pub price_per_hour: Option<f64>,

    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Model file: ONNX, XGBoost's own JSON or UBJSON, or LightGBM's text format (docs/models.md). Repeat as NAME=PATH to score several models in one pass; their columns are then prefixed `NAME.`.
    #[arg(
        help_heading = "Model and mapping",
        long,
        short = 'm',
        required = true,
        value_name = "[NAME=]PATH"
    )]
    pub model: Vec<String>,

    #[command(flatten, next_help_heading = "Input")]
    pub input: InputArgs,

    /// Output file or object (s3://, gs://, az://): `.parquet` (the default format) or `.csv`; `-` writes CSV to stdout; a local path ending in `/` (or an existing directory) is a directory output of part files with a manifest and `_SUCCESS`.
    #[arg(help_heading = "Output", long, short = 'o')]
    pub output: String,

    #[command(flatten, next_help_heading = "Model and mapping")]
    pub mapping: MappingArgs,

    #[command(flatten, next_help_heading = "Selection")]
    pub select: SelectArgs,

    /// Rows per batch; one batch is one task for a worker. Default: 8192.
    #[arg(help_heading = "Performance", long)]
    pub batch_size: Option<usize>,

    /// Scoring threads. Default: the available cores.
    #[arg(help_heading = "Performance", long)]
    pub threads: Option<usize>,

    /// Machine price in USD per hour: the summary then shows the run's cost and the cost per million rows.
    #[arg(help_heading = "Logging and summary", long, value_name = "USD")]
    pub price_per_hour: Option<f64>,

    /// The run date for {date}, {yyyy}, {mm}, {dd} in paths (input, output, errors, summary JSON). Default: today (UTC).
    #[arg(help_heading = "Output", long, value_name = "YYYY-MM-DD")]
    pub date: Option<String>,

    /// Check everything (inputs, model, mapping, output) and stop before scoring; exit 0 when the job would start.
    #[arg(help_heading = "Logging and summary", long)]
    pub check: bool,

    /// Also write the summary as JSON to this file.
    #[arg(help_heading = "Logging and summary", long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,

    /// Where the text summary goes: `stderr` (default), `-` for stdout, or `none`.
    #[arg(
        hide_default_value = true,
        help_heading = "Logging and summary",
        long,
        default_value = "stderr",
        value_name = "WHERE"
    )]
    pub summary: String,

    /// Replace an existing output (a directory output: this shard's parts).
    #[arg(help_heading = "Output", long)]
    pub overwrite: bool,

    /// Directory outputs: finish an interrupted run, scoring only the parts its manifest does not list as done. Refused if the inputs, models or options changed.
    #[arg(help_heading = "Directory outputs and shards", long)]
    pub resume: bool,

    /// Directory outputs: score only shard I of N (0-based). `auto` takes I and N from AWS Batch, Slurm, Google Cloud Batch or Cloud Run jobs variables; `auto/N` takes I from JOB_COMPLETION_INDEX (Kubernetes) or NOMAD_ALLOC_INDEX (Nomad) too.
    #[arg(
        help_heading = "Directory outputs and shards",
        long,
        value_name = "I/N|auto[/N]"
    )]
    pub shard: Option<String>,

    /// Directory outputs: start a new part file before one would pass N rows (parts never split a Parquet row group or a CSV file). Default: one part per input file.
    #[arg(help_heading = "Directory outputs and shards", long, value_name = "N")]
    pub rows_per_file: Option<u64>,

    /// What a bad row does: `fail` stops the run naming file, row and column; `skip` sets it aside in the error file and goes on. Default: fail.
    #[arg(help_heading = "Bad rows", hide_default_value = true, long, default_value = "fail", value_parser = ["fail", "skip"])]
    pub on_error: String,

    /// Error file (Parquet) for rows set aside by --on-error skip: kept columns, _source_file, _row, _column, _reason. Default: <output stem>.errors.parquet beside the output.
    #[arg(help_heading = "Bad rows", long, value_name = "PATH")]
    pub errors: Option<String>,

    /// With --on-error skip: fail (exit 4, nothing committed) when more than N rows, or more than P% of the rows read, are rejected.
    #[arg(help_heading = "Bad rows", long, value_name = "N|P%")]
    pub max_errors: Option<String>,

    /// A profile to hold this run to: a file `batchinfer profile` wrote, or the --summary-json of an earlier run. Each input and prediction column is compared with it (see --max-drift) before the output is committed.
    #[arg(help_heading = "Drift", long, value_name = "PATH")]
    pub baseline: Option<PathBuf>,

    /// Do not profile the run: the summary has no `profile`. Saves what profiling costs (a few percent of the wall time of the cheapest models). Refused with --baseline, which compares the profile.
    #[arg(help_heading = "Drift", long)]
    pub no_profile: bool,

    /// Drift thresholds, comma-separated or repeated: MEASURE=LIMIT for every column, COLUMN:MEASURE=LIMIT for one; LIMIT a number or `off`. Measures: psi (0.25), null-rate (0.05), nan-rate (0.05), range (0.01), unseen (0.01).
    #[arg(
        help_heading = "Drift",
        long,
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub max_drift: Vec<String>,

    /// What a breach of --max-drift does: `fail` commits nothing and exits 6; `warn` commits, and records the breach in the summary, the log and the Parquet metadata. Default: fail.
    #[arg(help_heading = "Drift", long, value_name = "fail|warn")]
    pub on_drift: Option<String>,

    /// Retries of a request that failed with throttling (429, 503), a server error (5xx), a timeout or a dropped connection, with exponential backoff. Default: 10.
    #[arg(help_heading = "Object storage", long, value_name = "N")]
    pub store_retries: Option<usize>,

    /// Give up on a request after this many seconds, retries included. Default: 180.
    #[arg(help_heading = "Object storage", long, value_name = "SECONDS")]
    pub store_timeout: Option<f64>,

    /// Parquet objects: row groups are fetched ahead, several requests at a time, while the bytes in flight stay under this. Default: 64.
    #[arg(help_heading = "Object storage", long, value_name = "MIB")]
    pub read_ahead: Option<u64>,

    /// The lease of the lock object an output in a bucket takes; the run renews it every third of it, and a lock whose lease ran out (its run died) is taken over. Default: 60.
    #[arg(help_heading = "Object storage", long, value_name = "SECONDS")]
    pub lock_lease: Option<u64>,

    /// No progress bar or progress lines.
    #[arg(help_heading = "Logging and summary", long, short = 'q')]
    pub quiet: bool,

    /// Seconds between progress lines when stderr is not a terminal (cron, Airflow logs). Default: 10.
    #[arg(help_heading = "Logging and summary", long, value_name = "SECONDS")]
    pub progress_every: Option<f64>,

    /// The job file of `batchinfer run`, which the run must not write over (set by `run`).
    #[arg(long, hide = true, value_name = "PATH")]
    pub job_file: Option<PathBuf>,

    /// `json`: every stderr line is one JSON object (time, level, event: mapping, progress, summary, error) for log collectors. Default: text.
    #[arg(
        hide_default_value = true,
        help_heading = "Logging and summary",
        long,
        value_enum,
        default_value = "text"
    )]
    pub log_format: crate::sys::log::LogFormat,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Model file (ONNX, XGBoost JSON/UBJSON or LightGBM text); several as NAME=PATH, as the runs held to this baseline name them.
    #[arg(long, short = 'm', required = true, value_name = "[NAME=]PATH")]
    pub model: Vec<String>,

    #[command(flatten)]
    pub input: InputArgs,

    /// The profile file (JSON) to write: the summary of a run that wrote no output, with its `profile`.
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: PathBuf,

    #[command(flatten)]
    pub mapping: MappingArgs,

    #[command(flatten)]
    pub select: SelectArgs,

    /// What a bad row does: `fail` stops naming file, row and column; `skip` leaves it out of the predictions' profile and goes on. Default: fail.
    #[arg(hide_default_value = true, long, default_value = "fail", value_parser = ["fail", "skip"])]
    pub on_error: String,

    /// Rows per batch. Default: 8192.
    #[arg(long)]
    pub batch_size: Option<usize>,

    /// Scoring threads. Default: the available cores.
    #[arg(long)]
    pub threads: Option<usize>,

    /// No progress bar or progress lines.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// `json`: every stderr line is one JSON object. Default: text.
    #[arg(hide_default_value = true, long, value_enum, default_value = "text")]
    pub log_format: crate::sys::log::LogFormat,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Model file (ONNX, XGBoost JSON/UBJSON or LightGBM text); several as NAME=PATH.
    #[arg(required = true, num_args = 1.., value_name = "[NAME=]MODEL")]
    pub model: Vec<String>,

    /// Data to plan the mapping against (files, directories, globs).
    #[arg(long, short = 'i', num_args = 1..)]
    pub input: Vec<String>,

    #[command(flatten)]
    pub csv: CsvArgs,

    #[command(flatten)]
    pub mapping: MappingArgs,

    #[command(flatten)]
    pub select: SelectArgs,

    /// A profile (batchinfer profile, or a run's --summary-json): lists its columns and plans the mapping onto them (without --input); exit 3 when the model's inputs or outputs are not all in it.
    #[arg(long, value_name = "PATH")]
    pub baseline: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InputArgs {
    /// Input: a Parquet or CSV file, a directory, a glob (quoted), or `-` for CSV on stdin. Repeatable.
    #[arg(long, short = 'i', required = true, num_args = 1..)]
    pub input: Vec<String>,

    #[command(flatten, next_help_heading = "CSV input")]
    pub csv: CsvArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CsvArgs {
    /// Input format when the file name does not say (`.parquet`, `.pq`, `.csv`, `.tsv`).
    #[arg(long, value_enum)]
    pub input_format: Option<Format>,

    /// CSV field delimiter (one byte; `\t` for tab). Default: tab for `.tsv` files, `,` otherwise.
    #[arg(long)]
    pub delimiter: Option<String>,

    /// CSV quote character. Default: `"`.
    #[arg(hide_default_value = true, long, default_value = "\"")]
    pub quote: String,

    /// CSV spellings of null, comma-separated; an empty item is the empty field. Default: `,NA` (empty and NA).
    #[arg(
        hide_default_value = true,
        long,
        default_value = ",NA",
        allow_hyphen_values = true
    )]
    pub null_values: String,

    /// CSV rows read to infer column types; 0 reads every row first (a second pass over the file). Default: 10000.
    #[arg(long, value_name = "ROWS")]
    pub infer_rows: Option<usize>,

    /// Declare a CSV column's type instead of inferring it: NAME=TYPE (string, int64, int32, float64, float32, bool, date, timestamp); comma-separated or repeated.
    #[arg(long, value_name = "NAME=TYPE", value_delimiter = ',')]
    pub column_type: Vec<String>,
}

/// Which rows are scored, and derived columns (polars SQL).
#[derive(Debug, Clone, Args, Default)]
pub struct SelectArgs {
    /// Score only the rows where this SQL expression is true, e.g. "event_date >= '2024-01-01' AND country = 'FR'". Partitions and Parquet row groups it rules out are not read.
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,

    /// A derived column NAME=EXPR (SQL), e.g. log_amount=log1p(amount), usable in --filter, --features and --keep. Repeatable; each may use the ones before.
    #[arg(long = "with", value_name = "NAME=EXPR")]
    pub with: Vec<String>,

    /// A row-wise query instead of --filter/--with: SELECT … FROM input [WHERE …]. Aggregations, joins, sorts and LIMIT are refused.
    #[arg(long, value_name = "QUERY", conflicts_with_all = ["filter", "with"])]
    pub sql: Option<String>,

    /// Score about this fraction of the rows (0 < F <= 1), the same rows on every run with the same --seed.
    #[arg(long, value_name = "FRACTION")]
    pub sample: Option<f64>,

    /// Seed of --sample. Default: 0.
    #[arg(hide_default_value = true, long, default_value_t = 0)]
    pub seed: u64,

    /// Stop after N output rows, for a quick look (file outputs only).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct MappingArgs {
    /// Columns feeding a model with one [N, F] input, in order (comma-separated). With several models, `MODEL:a,b,c` is for that model only; without a prefix, for every model not given its own.
    #[arg(long, value_name = "[MODEL:]COLS")]
    pub features: Vec<String>,

    /// Columns feeding a named model input: NAME=col1,col2. Repeatable. With several models, `MODEL:NAME=cols` is for that model only.
    #[arg(long, value_name = "[MODEL:]NAME=COLS")]
    pub input_map: Vec<String>,

    /// Model outputs to write (comma-separated ONNX output names), e.g. the probabilities without the label. Default: all. `MODEL:` for one of several models.
    #[arg(long, value_name = "[MODEL:]OUTPUTS")]
    pub select_outputs: Vec<String>,

    /// Write these [N, K] outputs as one fixed-size-list column each, named after the output, instead of K columns. `MODEL:` for one of several models.
    #[arg(long, value_name = "[MODEL:]OUTPUTS")]
    pub as_list: Vec<String>,

    /// XGBoost and LightGBM files: write the raw margins (`margin`, one column per class or target) instead of probabilities or predictions. Every model of the run must be such a file.
    #[arg(long)]
    pub raw_score: bool,

    /// XGBoost and LightGBM files: which boosting iterations score. `all` (every tree, as Booster.predict does), `best` (up to the best iteration an XGBoost file records from early stopping, as its scikit-learn estimators predict), or N (the first N).
    #[arg(long, value_name = "all|best|N", value_parser = crate::model::native::Iterations::parse)]
    pub iterations: Option<crate::model::native::Iterations>,

    /// Columns copied to the output before the predictions, types unchanged (comma-separated).
    #[arg(long, value_delimiter = ',', help_heading = "Output")]
    pub keep: Vec<String>,

    /// Keep every input column.
    #[arg(long, conflicts_with = "keep", help_heading = "Output")]
    pub keep_all: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_documented_command_line_parses() {
        let commands: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let lines = super::doc_lines::documented(root, &commands);
        assert!(lines.len() >= 20, "found only {} lines", lines.len());
        for super::doc_lines::DocLine { file, line } in lines {
            let args =
                shlex::split(&line).unwrap_or_else(|| panic!("{file}: cannot split {line:?}"));
            if let Err(e) = Cli::try_parse_from(&args) {
                panic!("{file}: `{line}` does not parse with the current CLI: {e}");
            }
            // A job file in the repository: its keys and the flags after it must
            // parse as `score` options too.
            if args[1] == "run" && root.join(&args[2]).is_file() {
                let mut args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
                args[2] = root.join(&args[2]).into_os_string();
                if let Err(e) = crate::parse(args, std::iter::empty()) {
                    let e = match e {
                        crate::ParseError::Clap(e) => e.to_string(),
                        crate::ParseError::Cli(e) => e.to_string(),
                    };
                    panic!("{file}: `{line}` does not parse with the current CLI: {e}");
                }
            }
        }
    }
}
