//! batchinfer: offline batch inference over Parquet and CSV with ONNX models.
//!
//! `run` reads like the table of contents: parse → config → command. Each stage
//! lives in its own module: `source` (inputs), `mapping` (columns → model inputs),
//! `model` (tract and batchinfer's ONNX-ML operators), `pipeline` (reader →
//! workers → ordered writer), `sink` (outputs), `summary` (measurements).

pub mod bench;
pub mod cli;
pub mod config;
pub mod exit;
pub mod inspect;
pub mod interrupt;
pub mod lock;
pub mod mapping;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod rejects;
pub mod score;
pub mod sink;
pub mod source;
pub mod summary;

use cli::{Cli, Command};
use exit::{CliError, ExitCode, WithExit};

/// Runs one command line; the error carries the exit code.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Score(args) => {
            let config = config::score_config(&args).exit(ExitCode::Usage)?;
            score::run(config).map(|_| ())
        }
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
        Command::Inspect(args) => {
            let text = inspect::run(&args)?;
            print!("{text}");
            Ok(())
        }
    }
}
