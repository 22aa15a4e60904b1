//! End-to-end tests: the real binary on the committed models and data, compared
//! with onnxruntime's predictions (testdata/expected, made by testdata/generate.py).

// A test reads as one scenario from setup to the last assertion.
#![allow(clippy::too_many_lines)]

mod damaged;
pub mod directory;
mod docs;
mod drift;
pub mod golden;
mod hardening;
mod harness;
pub mod interrupt;
mod jobfile;
pub mod jobs;
mod logs;
mod maps;
mod models;
mod native;
mod rejects;
#[cfg(feature = "polars")]
mod selection;
mod snapshots;
mod storage;
