//! Object storage: `s3://`, `gs://` and `az://` paths for inputs, outputs, error
//! files, summaries and models, through the arrow-rs project's `object_store`.
//!
//! Contract: every function here blocks until the store has answered (requests
//! are retried with backoff on throttling, server errors and timeouts, as
//! [`Retries`] says); an error names the URL, what was attempted and what to
//! check, and holds no secret.

pub mod errors;
pub mod lease;
pub mod list;
pub mod read;
pub mod store;
pub mod upload;
pub mod url;

use std::sync::OnceLock;
use std::time::Duration;

pub use url::{is_url, Location, ObjectUrl};

/// How requests are retried and timed out: `--store-retries` and
/// `--store-timeout` (environment `BATCHINFER_STORE_RETRIES`, `…_TIMEOUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    /// Retries of a request that failed with a throttling answer (429, 503), a
    /// server error (5xx), a timeout or a dropped connection; 0: none.
    pub max_retries: usize,
    /// How long one request, with its retries, may take at most.
    pub timeout: Duration,
}

/// The object-storage settings of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub retries: Retries,
    /// Parquet objects: row groups are fetched ahead while the bytes in flight
    /// stay under this (`--read-ahead`, in MiB on the command line).
    pub read_ahead: u64,
    /// The lease of the lock object an output in a bucket takes (`--lock-lease`).
    pub lease: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            retries: Retries {
                max_retries: 10,
                timeout: Duration::from_secs(180),
            },
            read_ahead: 64 << 20,
            lease: Duration::from_secs(60),
        }
    }
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Sets this process's object-storage settings, before the first request.
pub fn configure(settings: Settings) {
    let _ = SETTINGS.set(settings);
}

pub fn settings() -> Settings {
    SETTINGS.get().copied().unwrap_or_default()
}

/// `default`, or in test builds (debug assertions) the number in the environment
/// variable `var`: knobs for tests and benchmarks (`BATCHINFER_TEST_AHEAD`,
/// `BATCHINFER_TEST_SINGLE_PUT_BYTES`), absent from release builds.
pub(crate) fn test_knob(var: &str, default: usize) -> usize {
    #[cfg(debug_assertions)]
    if let Some(n) = std::env::var(var).ok().and_then(|v| v.parse().ok()) {
        return n;
    }
    let _ = var;
    default
}

/// See [`Settings::read_ahead`].
pub fn read_ahead() -> u64 {
    settings().read_ahead
}

/// One object, as a listing or a HEAD request described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub url: ObjectUrl,
    pub size: u64,
    /// The store's version tag of this content: reads ask for it, so that an
    /// object replaced while it is read fails instead of mixing two versions.
    pub e_tag: Option<String>,
    pub version: Option<String>,
}
