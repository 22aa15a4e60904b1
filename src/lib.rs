//! batchinfer: offline batch inference over Parquet and CSV with ONNX models.
//!
//! The folders follow the data path (docs/design.md draws it):
//! `cli` (flags, job file, environment → a checked config) → `source` (inputs:
//! listing, formats, partitions, pruning) → `select` (`--filter`, `--with`,
//! `--sql`, `--sample`, `--limit`) → `mapping` (columns → model inputs) → `model`
//! (tract and batchinfer's ONNX-ML operators; no tract type leaves it) →
//! `pipeline` (reader → workers → ordered writer; knows no file format) → `sink`
//! (file and directory outputs, parts, manifests, locks, the one atomic write) →
//! `summary` (measured values, pure renderers). `commands` holds each
//! subcommand as a table of contents over those stages; `sys` the process
//! plumbing (allocator, signals, panics, stdout, logs).
//!
//! `run` reads like the table of contents: parse → config → command.

mod cli;
mod commands;
mod exit;
pub mod mapping;
pub mod model;
mod pipeline;
pub mod profile;
pub mod select;
pub mod sink;
pub mod source;
pub mod storage;
mod summary;
pub mod sys;

use std::ffi::OsString;

use anyhow::Context;
use clap::Parser;
use cli::{job, Cli, Command};
use commands::{bench, inspect, manual, score, status};
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
            sys::log::set_format(args.log_format);
            let config = cli::config::score_config(&args).exit(ExitCode::Usage)?;
            score::run(config).map(|_| ())
        }
        Command::Profile(args) => {
            sys::log::set_format(args.log_format);
            let config = cli::config::profile_config(&args).exit(ExitCode::Usage)?;
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
        Command::Completions(args) => {
            let mut script = vec![];
            manual::completions(args.shell, &mut script);
            print_out(&String::from_utf8_lossy(&script))
        }
        Command::Man(args) => match args.dir {
            Some(dir) => {
                let written = manual::write_pages(&dir).exit(ExitCode::Usage)?;
                let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
                eprintln!("batchinfer: wrote {}", names.join(", "));
                Ok(())
            }
            None => {
                let page = manual::page(args.command.as_deref()).exit(ExitCode::Usage)?;
                print_out(&String::from_utf8_lossy(&page))
            }
        },
    }
}

/// Prints what a command was asked for on stdout (a closed pipe is fine, see `out`).
fn print_out(text: &str) -> Result<(), CliError> {
    sys::out::print(text)
        .context("writing to standard output")
        .exit(ExitCode::Failure)
}
