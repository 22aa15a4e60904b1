//! batchinfer: offline batch inference over Parquet and CSV with ONNX models.
//!
//! `run` reads like the table of contents: parse → config → command. Each stage
//! lives in its own module: `source` (inputs, hive partitions, pruning), `select`
//! (`--filter`, `--with`, `--sql` through polars; `--sample`, `--limit`),
//! `mapping` (columns → model inputs),
//! `model` (tract and batchinfer's ONNX-ML operators), `model_set` (several
//! models per batch), `pipeline` (reader → workers → ordered writer), `sink`
//! (outputs), `output_plan`, `parts` and `shard` (directory outputs, resuming,
//! shards), `summary` (measurements), `log` (text or JSON on stderr).

pub mod atomic;
pub mod bench;
pub mod clash;
pub mod cli;
pub mod config;
pub mod exit;
pub mod inspect;
pub mod interrupt;
pub mod job;
pub mod lock;
pub mod log;
pub mod malloc;
pub mod mapping;
pub mod model;
pub mod model_set;
pub mod out;
pub mod output_plan;
pub mod panics;
pub mod parts;
pub mod pipeline;
pub mod prepare;
pub mod progress;
pub mod rejects;
pub mod score;
pub mod select;
pub mod shard;
pub mod sink;
pub mod source;
pub mod status;
pub mod summary;

use std::ffi::OsString;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command};
use exit::{CliError, ExitCode, WithExit};

/// Parses a command line, with `score` and `run` taking options from the
/// environment and the job file too (see `job`). Help and usage errors come back
/// as clap errors, which print themselves and exit 0 or 2.
pub fn parse(
    args: Vec<OsString>,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Cli, ParseError> {
    let sub = args
        .get(1)
        .and_then(|a| a.to_str())
        .unwrap_or_default()
        .to_string();
    let layered = |job: Option<(&job::Layer, &std::path::Path)>,
                   cli: &[OsString]|
     -> Result<Cli, ParseError> {
        let env = job::env_layer(vars).exit(ExitCode::Usage)?;
        let mut args = job::score_args(job.map(|(layer, _)| layer), &env, cli);
        if let Some((_, path)) = job {
            args.insert(2, format!("--{}", job::JOB_FILE_FLAG).into());
            args.insert(3, path.as_os_str().to_owned());
        }
        Ok(Cli::try_parse_from(args)?)
    };
    match sub.as_str() {
        "score" => layered(None, &args[2..]),
        "run" => {
            let Command::Run(run) = Cli::try_parse_from(&args)?.command else {
                unreachable!("parsed as run")
            };
            let file = job::read_job_file(&run.job).exit(ExitCode::Usage)?;
            layered(Some((&file, &run.job)), &run.overrides)
        }
        _ => Ok(Cli::try_parse_from(&args)?),
    }
}

/// Why a command line could not be parsed.
#[derive(Debug)]
pub enum ParseError {
    /// Help, version or a usage error: clap prints it.
    Clap(clap::Error),
    Cli(CliError),
}

impl From<clap::Error> for ParseError {
    fn from(e: clap::Error) -> Self {
        ParseError::Clap(e)
    }
}

impl From<CliError> for ParseError {
    fn from(e: CliError) -> Self {
        ParseError::Cli(e)
    }
}

/// Runs one command line; the error carries the exit code.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Score(args) => {
            log::set_format(args.log_format);
            let config = config::score_config(&args).exit(ExitCode::Usage)?;
            score::run(config).map(|_| ())
        }
        Command::Run(_) => Err(CliError::new(
            ExitCode::Usage,
            anyhow::anyhow!("batchinfer run is resolved by batchinfer::parse"),
        )),
        Command::Bench(mut args) => {
            if args.threads.is_empty() {
                let cores = std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1);
                args.threads = if cores > 1 { vec![1, cores] } else { vec![1] };
            }
            if args.threads.contains(&0) || args.batch_size.contains(&0) {
                return Err(CliError::new(
                    ExitCode::Usage,
                    anyhow::anyhow!("--threads and --batch-size take positive numbers"),
                ));
            }
            let report = bench::run(&args)?;
            let text = if args.json {
                serde_json::to_string_pretty(&report).exit(ExitCode::Failure)? + "\n"
            } else {
                bench::render(&report)
            };
            print_out(&text)
        }
        Command::Status(args) => {
            let status = status::status(&args.output)?;
            let text = if args.json {
                serde_json::to_string_pretty(&status).exit(ExitCode::Failure)? + "\n"
            } else {
                status::render(&status)
            };
            print_out(&text)?;
            if status.complete {
                Ok(())
            } else {
                Err(CliError::new(
                    ExitCode::Failure,
                    anyhow::anyhow!(
                        "{} is not complete: {} of {} shard(s) done",
                        status.output,
                        status.found.iter().filter(|f| f.complete).count(),
                        status.shards
                    ),
                ))
            }
        }
        Command::Inspect(args) => {
            let text = inspect::run(&args)?;
            print_out(&text)
        }
    }
}

/// Prints what a command was asked for on stdout (a closed pipe is fine, see `out`).
fn print_out(text: &str) -> Result<(), CliError> {
    out::print(text)
        .context("writing to standard output")
        .exit(ExitCode::Failure)
}
