//! Exit codes, and the error type that carries one to `main`.

use std::fmt;

/// What the process exit status means. Documented in `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Success,
    /// Failure while running: I/O, model execution.
    Failure,
    /// Usage or configuration error.
    Usage,
    /// Validation failed before scoring: schema, mapping, model.
    Validation,
    /// Too many bad rows; nothing was committed.
    TooManyBadRows,
    /// Another run holds the lock on this output.
    Locked,
    /// Stopped by this signal (SIGINT, SIGTERM): 128 + its number, as shells report it.
    Signal(i32),
}

impl ExitCode {
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Failure => 1,
            ExitCode::Usage => 2,
            ExitCode::Validation => 3,
            ExitCode::TooManyBadRows => 4,
            ExitCode::Locked => 5,
            ExitCode::Signal(sig) => (128 + sig).clamp(0, 255) as u8,
        }
    }
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  failure while running (I/O, model execution)
  2  usage or configuration error
  3  validation failed before scoring (schema, mapping, model)
  4  too many bad rows (nothing committed)
  5  another run holds the lock on this output
  130, 143  stopped by SIGINT, SIGTERM (nothing committed)";

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
