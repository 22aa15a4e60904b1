//! The models of a run. Every batch is read once and scored by each model in
//! turn on the same worker, so several models share one read, one decode and one
//! rayon pool. With a name (`--model NAME=PATH`, required when there are several)
//! a model's output columns are prefixed `NAME.`; one unnamed model keeps DESIGN's
//! plain column names.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use arrow::array::ArrayRef;
use arrow::datatypes::Field;
use arrow::record_batch::RecordBatch;

use crate::model::{BadRow, Feed, Model, ScoreError, Session};
use crate::profile::rows::InputSums;

/// One model of the run and the columns that feed it.
pub struct Member {
    pub name: Option<String>,
    pub model: Arc<Model>,
    /// Feeds over the batches read.
    pub feeds: Vec<Feed>,
}

impl Member {
    /// How messages name the model: its name, else its file.
    pub fn label(&self) -> String {
        label(self.name.as_deref(), &self.model.path)
    }

    /// A prediction column's name in the output.
    pub fn column_name(&self, column: &str) -> String {
        match &self.name {
            Some(n) => format!("{n}.{column}"),
            None => column.to_string(),
        }
    }
}

/// How messages name a model: `model NAME (PATH)`, or `model PATH`.
pub fn label(name: Option<&str>, path: &std::path::Path) -> String {
    match name {
        Some(n) => format!("model {n} ({})", path.display()),
        None => format!("model {}", path.display()),
    }
}

/// Predictions for one batch: every model's columns, in model order.
pub struct Scores {
    pub columns: Vec<ArrayRef>,
    /// Seconds each model took on this batch.
    pub model_s: Vec<f64>,
}

pub struct ModelSet {
    pub members: Vec<Member>,
}

impl ModelSet {
    /// Per-worker state, one session per model.
    pub fn sessions(&self) -> Result<Vec<Session>> {
        self.members.iter().map(|m| m.model.session()).collect()
    }

    /// The prediction columns of every model, named for the output.
    pub fn output_fields(&self) -> Vec<Field> {
        self.members
            .iter()
            .flat_map(|m| {
                m.model
                    .outputs
                    .iter()
                    .map(|c| c.field().with_name(m.column_name(&c.name)))
            })
            .collect()
    }

    /// Load and optimisation time of all models, in seconds.
    pub fn load_s(&self) -> f64 {
        self.members.iter().map(|m| m.model.compile_s).sum()
    }

    /// The models' files for the summary: the path, or `NAME=PATH, …`.
    pub fn paths(&self) -> String {
        self.joined(", ", |m| m.model.path.display().to_string())
    }

    /// The models' SHA-256 for the summary: the digest, or `NAME=SHA256,…`.
    pub fn sha256s(&self) -> String {
        self.joined(",", |m| m.model.sha256.clone())
    }

    fn joined(&self, sep: &str, f: impl Fn(&Member) -> String) -> String {
        self.members
            .iter()
            .map(|m| match &m.name {
                Some(n) if self.members.len() > 1 => format!("{n}={}", f(m)),
                _ => f(m),
            })
            .collect::<Vec<_>>()
            .join(sep)
    }

    /// Parquet key-value metadata naming each model and its SHA-256.
    pub fn metadata(&self) -> Vec<(String, String)> {
        let mut kv = vec![];
        for m in &self.members {
            let (sha, path) = match &m.name {
                Some(n) => (
                    format!("batchinfer.model.{n}.sha256"),
                    format!("batchinfer.model.{n}.path"),
                ),
                None => ("batchinfer.model_sha256".into(), "batchinfer.model".into()),
            };
            kv.push((sha, m.model.sha256.clone()));
            kv.push((path, m.model.path.display().to_string()));
        }
        if self.members.iter().any(|m| m.name.is_some()) {
            let names: Vec<&str> = self
                .members
                .iter()
                .filter_map(|m| m.name.as_deref())
                .collect();
            kv.push(("batchinfer.models".into(), names.join(",")));
        }
        kv
    }

    /// Scores a whole batch with every model; the first error stops it.
    pub fn score(
        &self,
        sessions: &mut [Session],
        batch: &RecordBatch,
    ) -> Result<Scores, ScoreError> {
        self.score_observed(sessions, batch, &mut InputSums::default())
    }

    /// The same, adding the float32 inputs' tensors to `sums` (per model, per
    /// input; see `Session::score_observed`).
    pub fn score_observed(
        &self,
        sessions: &mut [Session],
        batch: &RecordBatch,
        sums: &mut InputSums,
    ) -> Result<Scores, ScoreError> {
        let mut columns = vec![];
        let mut model_s = vec![];
        for (i, (m, session)) in self.members.iter().zip(sessions.iter_mut()).enumerate() {
            let started = Instant::now();
            let taps = sums.0.get_mut(i).map_or(&mut [][..], Vec::as_mut_slice);
            let predictions = session
                .score_observed(&m.model, batch, &m.feeds, taps)
                .map_err(|e| self.name_model(m, e))?;
            model_s.push(started.elapsed().as_secs_f64());
            columns.extend(predictions);
        }
        Ok(Scores { columns, model_s })
    }

    /// With several models, a model failure says which model failed.
    pub fn name_model(&self, m: &Member, e: ScoreError) -> ScoreError {
        match e {
            ScoreError::Model(e) if self.members.len() > 1 => {
                ScoreError::Model(e.context(m.label()))
            }
            e => e,
        }
    }

    /// The rows of `batch` some model cannot take, one entry per row, in row order.
    pub fn bad_rows(&self, batch: &RecordBatch) -> Result<Vec<BadRow>, ScoreError> {
        let mut rows = vec![];
        for m in &self.members {
            rows.extend(m.model.bad_rows(batch, &m.feeds)?);
        }
        rows.sort_by_key(|r| r.row);
        rows.dedup_by_key(|r| r.row);
        Ok(rows)
    }
}
