//! The bad-row policy. With `--on-error fail` the first bad row stops the run;
//! with `--on-error skip` each batch is checked row by row, the rows the model
//! cannot take are set aside with the reason, a batch the model fails on is
//! retried one row at a time so that only the failing rows are rejected, and the
//! rejected rows go to the error file. `--max-errors N|P%` bounds the rejections.

use std::sync::Arc;
use std::time::Instant;

use crate::select::RowNumbers;
use anyhow::{bail, Context, Result};
use arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, StringArray, UInt32Array,
    UInt64Array,
};
use arrow::compute::{concat, filter_record_batch, take};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::model::set::ModelSet;
use crate::model::{BadRow, Model, ScoreError, Session};

/// What a bad row does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OnError {
    Fail,
    Skip { max: Option<MaxErrors> },
}

/// The most rejections a run may have and still commit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxErrors {
    Rows(u64),
    /// Percent of the rows read, checked when the input is exhausted.
    Percent(f64),
}

impl MaxErrors {
    pub fn parse(s: &str) -> Result<MaxErrors> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .with_context(|| format!("--max-errors {s:?}: expected N or P%"))?;
            if !(0.0..=100.0).contains(&p) {
                bail!("--max-errors {s:?}: a percentage is between 0% and 100%");
            }
            return Ok(MaxErrors::Percent(p));
        }
        Ok(MaxErrors::Rows(s.parse().with_context(|| {
            format!("--max-errors {s:?}: expected N or P%")
        })?))
    }

    /// Whether `rejected` rejections out of `rows` read are too many.
    pub fn exceeded(self, rejected: u64, rows: u64) -> bool {
        match self {
            MaxErrors::Rows(n) => rejected > n,
            MaxErrors::Percent(p) => rows > 0 && rejected as f64 * 100.0 / rows as f64 > p,
        }
    }
}

/// Columns of the error file after the kept ones.
pub fn error_schema(kept: &[FieldRef]) -> SchemaRef {
    // Nullable: a row the source could not read has no value for some of them.
    let mut fields: Vec<FieldRef> = kept
        .iter()
        .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
        .collect();
    for (name, dt) in [
        ("_source_file", DataType::Utf8),
        ("_row", DataType::UInt64),
        ("_column", DataType::Utf8),
        ("_reason", DataType::Utf8),
    ] {
        fields.push(Arc::new(Field::new(name, dt, true)));
    }
    Arc::new(Schema::new(fields))
}

/// The scored part of a batch, and what was rejected.
pub struct Outcome {
    /// Rows of the batch that were scored, as indices (None: all of them).
    pub kept_rows: Option<Vec<u32>>,
    /// Every model's prediction columns for the scored rows.
    pub predictions: Vec<ArrayRef>,
    /// Rows set aside; `column` is empty when a model failed on the row.
    pub rejected: Vec<BadRow>,
    /// Seconds each model took.
    pub model_s: Vec<f64>,
}

/// One model's predictions over the rows left after the bad-row scan.
enum Scored {
    /// Every row.
    All(Vec<ArrayRef>),
    /// Scored one row at a time after the batch failed: the rows it took
    /// (indices into the subset) and their predictions.
    Rows(Vec<u32>, Vec<ArrayRef>),
}

/// Scores a batch under `--on-error skip`: a row is rejected when any model
/// cannot take it or fails on it, and then no model's prediction of it is kept.
#[allow(clippy::too_many_lines)] // the row-by-row retry and its bookkeeping of kept rows, rejected rows and model time belong together
pub fn score_skipping(
    models: &ModelSet,
    sessions: &mut [Session],
    batch: &RecordBatch,
) -> Result<Outcome, ScoreError> {
    let mut rejected = models.bad_rows(batch)?;
    let mut is_good = vec![true; batch.num_rows()];
    rejected.iter().for_each(|r| is_good[r.row] = false);
    let good: Vec<u32> = (0..batch.num_rows() as u32)
        .filter(|&i| is_good[i as usize])
        .collect();
    let subset = if rejected.is_empty() {
        batch.clone()
    } else {
        let mask = BooleanArray::from(is_good);
        filter_record_batch(batch, &mask).map_err(|e| ScoreError::Model(e.into()))?
    };
    // Rows of the subset every model has taken so far.
    let mut ok = vec![true; subset.num_rows()];
    let mut scored = vec![];
    let mut model_s = vec![];
    for (m, session) in models.members.iter().zip(sessions.iter_mut()) {
        let started = Instant::now();
        match session.score(&m.model, &subset, &m.feeds) {
            Ok(p) => scored.push(Scored::All(p)),
            Err(ScoreError::Model(_)) => {
                // Find the rows this model fails on, one at a time.
                let mut parts: Vec<Vec<ArrayRef>> = vec![];
                let mut took = vec![];
                for i in 0..subset.num_rows() {
                    if !ok[i] {
                        continue;
                    }
                    match session.score(&m.model, &subset.slice(i, 1), &m.feeds) {
                        Ok(p) => {
                            parts.push(p);
                            took.push(i as u32);
                        }
                        Err(e @ ScoreError::Model(_)) => {
                            ok[i] = false;
                            rejected.push(BadRow {
                                row: good[i] as usize,
                                column: String::new(),
                                reason: models.name_model(m, e).to_string(),
                            });
                        }
                        Err(e @ ScoreError::BadRow(_)) => return Err(e),
                    }
                }
                scored.push(Scored::Rows(took, concat_parts(&parts, &m.model)?));
            }
            Err(e @ ScoreError::BadRow(_)) => return Err(e),
        }
        model_s.push(started.elapsed().as_secs_f64());
    }
    rejected.sort_by_key(|r| r.row);
    let keep: Vec<u32> = (0..subset.num_rows() as u32)
        .filter(|&i| ok[i as usize])
        .collect();
    let mut predictions = vec![];
    for s in scored {
        let (took, columns) = match s {
            Scored::All(columns) if keep.len() == subset.num_rows() => {
                predictions.extend(columns);
                continue;
            }
            Scored::All(columns) => (None, columns),
            Scored::Rows(took, columns) => (Some(took), columns),
        };
        // Positions of the kept rows among the rows this model scored.
        let at = UInt32Array::from_iter_values(keep.iter().map(|&i| {
            match &took {
                None => i,
                Some(took) => {
                    took.binary_search(&i)
                        .expect("kept rows were scored by every model") as u32
                }
            }
        }));
        for c in columns {
            predictions.push(take(&c, &at, None).map_err(|e| ScoreError::Model(e.into()))?);
        }
    }
    let kept_rows =
        (!rejected.is_empty()).then(|| keep.iter().map(|&i| good[i as usize]).collect());
    Ok(Outcome {
        kept_rows,
        predictions,
        rejected,
        model_s,
    })
}

fn concat_parts(parts: &[Vec<ArrayRef>], model: &Model) -> Result<Vec<ArrayRef>, ScoreError> {
    (0..model.outputs.len())
        .map(|c| {
            if parts.is_empty() {
                return Ok(arrow::array::new_empty_array(&model.outputs[c].data_type));
            }
            let cols: Vec<&dyn Array> = parts.iter().map(|p| p[c].as_ref()).collect();
            concat(&cols).map_err(|e| ScoreError::Model(e.into()))
        })
        .collect()
}

/// The error-file rows for a batch's rejections.
pub fn error_batch(
    schema: &SchemaRef,
    batch: &RecordBatch,
    keep: &[usize],
    file: &str,
    rows: &RowNumbers,
    rejected: &[BadRow],
) -> Result<RecordBatch> {
    let idx = UInt32Array::from_iter_values(rejected.iter().map(|r| r.row as u32));
    let mut cols: Vec<ArrayRef> = keep
        .iter()
        .map(|&k| take(batch.column(k), &idx, None))
        .collect::<Result<_, _>>()?;
    cols.push(Arc::new(StringArray::from_iter_values(
        rejected.iter().map(|_| file),
    )));
    cols.push(Arc::new(UInt64Array::from_iter_values(
        rejected.iter().map(|r| rows.at(r.row)),
    )));
    cols.push(Arc::new(StringArray::from_iter(
        rejected
            .iter()
            .map(|r| (!r.column.is_empty()).then_some(r.column.as_str())),
    )));
    cols.push(Arc::new(StringArray::from_iter_values(
        rejected.iter().map(|r| r.reason.as_str()),
    )));
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// Error rows for rows the source set aside (`bad`, at `rows` of the read batch
/// `batch`): kept columns by name where the read batch has them (null where
/// they are derived by the selection, or did not parse), then file, row, column
/// and reason.
pub fn unreadable_batch(
    schema: &SchemaRef,
    batch: &RecordBatch,
    rows: &[usize],
    bad: &[&crate::source::BadValue],
) -> Result<RecordBatch> {
    let idx = UInt32Array::from_iter_values(rows.iter().map(|&r| r as u32));
    let kept = schema.fields().len() - 4;
    let mut cols: Vec<ArrayRef> = vec![];
    for field in &schema.fields()[..kept] {
        cols.push(match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => take(c, &idx, None)?,
            _ => arrow::array::new_null_array(field.data_type(), rows.len()),
        });
    }
    cols.push(Arc::new(StringArray::from_iter_values(
        bad.iter().map(|b| b.file.as_str()),
    )));
    cols.push(Arc::new(UInt64Array::from_iter_values(
        bad.iter().map(|b| b.row),
    )));
    cols.push(Arc::new(StringArray::from_iter_values(
        bad.iter().map(|b| b.column.as_str()),
    )));
    cols.push(Arc::new(StringArray::from_iter_values(
        bad.iter().map(|b| b.reason.as_str()),
    )));
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// NaN values among float prediction columns.
pub fn count_nan(predictions: &[ArrayRef]) -> u64 {
    predictions
        .iter()
        .map(|a| match a.data_type() {
            DataType::Float32 => a
                .as_any()
                .downcast_ref::<Float32Array>()
                .map(|v| v.values().iter().filter(|x| x.is_nan()).count())
                .unwrap_or(0),
            DataType::Float64 => a
                .as_any()
                .downcast_ref::<Float64Array>()
                .map(|v| v.values().iter().filter(|x| x.is_nan()).count())
                .unwrap_or(0),
            _ => 0,
        } as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_errors_parse_and_bound() {
        assert_eq!(MaxErrors::parse("10").unwrap(), MaxErrors::Rows(10));
        assert_eq!(MaxErrors::parse("0.5%").unwrap(), MaxErrors::Percent(0.5));
        assert!(MaxErrors::parse("ten").is_err());
        assert!(MaxErrors::parse("150%").is_err());
        assert!(MaxErrors::Rows(2).exceeded(3, 100));
        assert!(!MaxErrors::Rows(3).exceeded(3, 100));
        assert!(MaxErrors::Percent(1.0).exceeded(2, 100));
        assert!(!MaxErrors::Percent(1.0).exceeded(1, 100));
    }
}
