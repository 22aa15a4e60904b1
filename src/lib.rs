//! batchinfer: offline batch inference over Parquet and CSV with ONNX models.
//!
//! `run` reads like the table of contents: parse → config → command. Each stage
//! lives in its own module: `source` (inputs), `mapping` (columns → model inputs),
//! `model` (tract and batchinfer's ONNX-ML operators), `pipeline` (reader →
//! workers → ordered writer), `sink` (outputs), `summary` (measurements).

pub mod cli;
pub mod config;
pub mod exit;
pub mod inspect;
pub mod mapping;
pub mod model;
pub mod pipeline;
pub mod progress;
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
        Command::Inspect(args) => {
            let text = inspect::run(&args)?;
            print!("{text}");
            Ok(())
        }
    }
}
