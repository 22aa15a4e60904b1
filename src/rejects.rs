//! The bad-row policy. With `--on-error fail` the first bad row stops the run;
//! with `--on-error skip` each batch is checked row by row, the rows the model
//! cannot take are set aside with the reason, a batch the model fails on is
//! retried one row at a time so that only the failing rows are rejected, and the
//! rejected rows go to the error file. `--max-errors N|P%` bounds the rejections.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, StringArray, UInt32Array,
    UInt64Array,
};
use arrow::compute::{concat, filter_record_batch, take};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::model::{BadRow, Feed, Model, ScoreError, Session};

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
    let mut fields: Vec<FieldRef> = kept.to_vec();
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
    pub predictions: Vec<ArrayRef>,
    /// Rows set aside; `column` is empty when the model failed on the row.
    pub rejected: Vec<BadRow>,
}

/// Scores a batch under `--on-error skip`.
pub fn score_skipping(
    session: &mut Session,
    model: &Model,
    batch: &RecordBatch,
    feeds: &[Feed],
) -> Result<Outcome, ScoreError> {
    let mut rejected = model.bad_rows(batch, feeds)?;
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
    match session.score(model, &subset, feeds) {
        Ok(predictions) => {
            let kept_rows = (!rejected.is_empty()).then_some(good);
            Ok(Outcome {
                kept_rows,
                predictions,
                rejected,
            })
        }
        Err(ScoreError::Model(_)) => {
            // Find the rows the model fails on, one at a time.
            let mut parts: Vec<Vec<ArrayRef>> = vec![];
            let mut scored = vec![];
            for (i, &orig) in good.iter().enumerate() {
                match session.score(model, &subset.slice(i, 1), feeds) {
                    Ok(p) => {
                        parts.push(p);
                        scored.push(orig);
                    }
                    Err(e) => rejected.push(BadRow {
                        row: orig as usize,
                        column: String::new(),
                        reason: e.to_string(),
                    }),
                }
            }
            rejected.sort_by_key(|r| r.row);
            let predictions = concat_parts(&parts, model)?;
            Ok(Outcome {
                kept_rows: Some(scored),
                predictions,
                rejected,
            })
        }
        Err(e @ ScoreError::BadRow(_)) => Err(e),
    }
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
    first_row: u64,
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
        rejected.iter().map(|r| first_row + r.row as u64),
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
