//! End-to-end tests: the real binary on the committed models and data, compared
//! with onnxruntime's predictions (testdata/expected, made by testdata/generate.py).

mod damaged;
mod directory;
pub mod golden;
mod harness;
pub mod interrupt;
mod jobfile;
mod logs;
pub mod jobs;
mod models;
mod rejects;
