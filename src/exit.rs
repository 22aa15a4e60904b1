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
    /// The rows drifted from the baseline past a threshold; nothing was committed.
    Drift,
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
            ExitCode::Drift => 6,
            ExitCode::Signal(sig) => (128 + sig).clamp(0, 255) as u8,
        }
    }
}

impl ExitCode {
    /// Every documented code with its meaning, as `--help` and the README list them.
    pub const DOCUMENTED: &'static [(&'static str, &'static str)] = &[
        ("0", "success"),
        ("1", "failure while running (I/O, model execution)"),
        ("2", "usage or configuration error"),
        (
            "3",
            "validation failed before scoring (schema, mapping, model)",
        ),
        ("4", "too many bad rows, or bad input (nothing committed)"),
        ("5", "another run holds the lock on this output"),
        (
            "6",
            "the data drifted from --baseline past a threshold (nothing committed)",
        ),
        ("130, 143", "stopped by SIGINT, SIGTERM (nothing committed)"),
    ];
}

/// The exit codes for `--help`, generated from [`ExitCode::DOCUMENTED`].
pub fn help() -> String {
    let mut text = String::from("Exit codes:");
    for (code, meaning) in ExitCode::DOCUMENTED {
        text.push_str(&format!("\n  {code}  {meaning}"));
    }
    text
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_documented_once() {
        let codes = [
            ExitCode::Success,
            ExitCode::Failure,
            ExitCode::Usage,
            ExitCode::Validation,
            ExitCode::TooManyBadRows,
            ExitCode::Locked,
            ExitCode::Drift,
        ];
        for code in codes {
            let n = code.code().to_string();
            let listed = ExitCode::DOCUMENTED.iter().filter(|(c, _)| *c == n).count();
            assert_eq!(listed, 1, "exit code {n}");
        }
        let signals = format!(
            "{}, {}",
            ExitCode::Signal(2).code(),
            ExitCode::Signal(15).code()
        );
        assert!(ExitCode::DOCUMENTED.iter().any(|(c, _)| *c == signals));
        assert!(help().contains("  130, 143  stopped by SIGINT"));
    }
}
