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

pub mod bench;
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
    let layered = |job: Option<&job::Layer>, cli: &[OsString]| -> Result<Cli, ParseError> {
        let env = job::env_layer(vars).exit(ExitCode::Usage)?;
        Ok(Cli::try_parse_from(job::score_args(job, &env, cli))?)
    };
    match sub.as_str() {
        "score" => layered(None, &args[2..]),
        "run" => {
            let Command::Run(run) = Cli::try_parse_from(&args)?.command else {
                unreachable!("parsed as run")
            };
            let file = job::read_job_file(&run.job).exit(ExitCode::Usage)?;
            layered(Some(&file), &run.overrides)
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
            if args.json {
                let text = serde_json::to_string_pretty(&report).exit(ExitCode::Failure)?;
                println!("{text}");
            } else {
                print!("{}", bench::render(&report));
            }
            Ok(())
        }
        Command::Status(args) => {
            let status = status::status(&args.output)?;
            if args.json {
                let text = serde_json::to_string_pretty(&status).exit(ExitCode::Failure)?;
                println!("{text}");
            } else {
                print!("{}", status::render(&status));
            }
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
            print!("{text}");
            Ok(())
        }
    }
}
