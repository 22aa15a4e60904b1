//! What batchinfer writes to stderr for people and log collectors. With
//! `--log-format json` every line is one JSON object with `time`, `level` and
//! `event` (`mapping`, `progress`, `summary`, `already_complete`, `error`), so
//! Fluent Bit, Vector, CloudWatch or Loki can parse it; otherwise plain text.

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Chosen once, when the command's options are known.
pub fn set_format(format: LogFormat) {
    let _ = FORMAT.set(format);
}

pub fn is_json() -> bool {
    FORMAT.get() == Some(&LogFormat::Json)
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// One JSON log line: `time`, `level`, `event`, then `fields` (an object).
pub fn json_line(level: &str, event: &str, fields: impl Serialize) -> String {
    let mut line = Map::new();
    line.insert("time".into(), Value::String(now()));
    line.insert("level".into(), Value::String(level.into()));
    line.insert("event".into(), Value::String(event.into()));
    match serde_json::to_value(fields) {
        Ok(Value::Object(f)) => line.extend(f),
        Ok(other) => {
            line.insert("value".into(), other);
        }
        Err(e) => {
            line.insert("serialisation_error".into(), Value::String(e.to_string()));
        }
    }
    Value::Object(line).to_string()
}

/// An event: a JSON line, or `text` as it is.
pub fn event(level: &str, event: &str, fields: impl Serialize, text: &str) {
    if is_json() {
        eprintln!("{}", json_line(level, event, fields));
    } else {
        eprint!("{text}");
    }
}

/// A warning: something went wrong that does not change the run's outcome.
pub fn warn(message: &str) {
    event(
        "warn",
        "warning",
        json!({ "message": message }),
        &format!("batchinfer: warning: {message}\n"),
    );
}

/// The error that ends the run, with its exit code.
pub fn error(message: &str, exit_code: u8) {
    if is_json() {
        eprintln!(
            "{}",
            json_line(
                "error",
                "error",
                json!({ "message": message, "exit_code": exit_code })
            )
        );
    } else {
        eprintln!("batchinfer: error: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_time_level_event_and_fields() {
        let line = json_line("info", "progress", json!({"rows": 5}));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "info");
        assert_eq!(v["event"], "progress");
        assert_eq!(v["rows"], 5);
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        assert!(!line.contains('\n'));
    }
}
