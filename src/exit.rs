//! Exit codes, and the error type that carries one to `main`.

use std::fmt;

/// What the process exit status means. Documented in `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Success = 0,
    /// Failure while running: I/O, model execution.
    Failure = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// Validation failed before scoring: schema, mapping, model.
    Validation = 3,
    /// Too many bad rows; nothing was committed.
    TooManyBadRows = 4,
    /// Another run holds the lock on this output.
    Locked = 5,
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  failure while running (I/O, model execution)
  2  usage or configuration error
  3  validation failed before scoring (schema, mapping, model)
  4  too many bad rows (nothing committed)
  5  another run holds the lock on this output";

/// An error on its way to `main`, with the exit code it ends the process with.
#[derive(Debug)]
pub struct CliError {
    pub code: ExitCode,
    pub error: anyhow::Error,
}

impl CliError {
    pub fn new(code: ExitCode, error: impl Into<anyhow::Error>) -> CliError {
        CliError {
            code,
            error: error.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

/// Attaches an exit code to any error.
pub trait WithExit<T> {
    fn exit(self, code: ExitCode) -> Result<T, CliError>;
}

impl<T, E: Into<anyhow::Error>> WithExit<T> for Result<T, E> {
    fn exit(self, code: ExitCode) -> Result<T, CliError> {
        self.map_err(|e| CliError::new(code, e))
    }
}
