//! The profile of a run: what the model was fed and what it predicted, column by
//! column, measured on the workers as each batch is scored and merged by the
//! writer in input order (so a profile is the same whatever the thread count).
//!
//! Contract: [`ProfilePlan::profile`] turns one scored batch into a
//! [`RunProfile`]; [`RunProfile::merge`] adds the profile of later rows; the
//! result of merging the batches of an input does not depend on how it was
//! split into batches, except the last digits of means and standard deviations
//! and, for a string column with more than `categorical::TRACKED` distinct
//! values, which values are counted one by one. [`RunProfile::named`] gives the
//! [`Profile`] the summary JSON holds and a later run compares against
//! (`drift`).

pub mod baseline;
pub mod categorical;
pub mod drift;
pub mod numeric;
pub mod rows;
pub mod sample;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use self::categorical::CategoricalProfile;
use self::numeric::NumericProfile;
use self::rows::{InputSums, RowSums};
use self::sample::Sampled;
use crate::model::set::ModelSet;
use crate::model::ElemType;

/// Whether a column was fed to a model or predicted by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Input,
    Prediction,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::Prediction => "prediction",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Numeric,
    Categorical,
}

/// One profiled column: where it is in a scored batch, and what a baseline says
/// of it that the workers need (its range, its vocabulary).
#[derive(Debug, Clone)]
pub struct PlanColumn {
    pub name: String,
    pub role: Role,
    /// Inputs: the column of the scored batch; predictions: the prediction column.
    index: usize,
    kind: Kind,
    /// The column's Arrow type, as the profile names it.
    data_type: String,
    /// Where its moments are gathered as a tensor is built (`rows`): model,
    /// input and feature of a float32 tensor fed from this float32 column.
    tap: Option<(usize, usize, usize)>,
    range: Option<(f64, f64)>,
    vocabulary: Option<Arc<HashSet<String>>>,
}

/// The columns a run profiles: every column that feeds a model (once, whatever
/// the number of models it feeds), then every prediction column.
#[derive(Debug, Clone, Default)]
pub struct ProfilePlan {
    pub columns: Vec<PlanColumn>,
    /// Per model, per input: the features of its tensor (0 when not float32).
    widths: Vec<Vec<usize>>,
    /// Empty sums of the tapped tensors, with the baseline's ranges; each batch
    /// starts from a copy (`input_sums`).
    sums: InputSums,
}

impl ProfilePlan {
    /// `batch` is the schema of the batches scored (after the selection), `predictions`
    /// the models' output fields, named as in the output.
    pub fn new(models: &ModelSet, batch: &Schema, predictions: &[Field]) -> ProfilePlan {
        let mut columns: Vec<PlanColumn> = vec![];
        let mut widths = vec![];
        for (mi, m) in models.members.iter().enumerate() {
            let inputs = &m.model.signature.inputs;
            let mut width = vec![0; inputs.len()];
            for feed in &m.feeds {
                let spec = &inputs[feed.input];
                // Map and struct columns (map inputs) are not profiled.
                if spec.map.is_some() {
                    continue;
                }
                let elem = spec.elem;
                if elem == ElemType::F32 {
                    width[feed.input] = feed.columns.len();
                }
                for (j, &c) in feed.columns.iter().enumerate() {
                    if columns.iter().any(|p| p.index == c) {
                        continue;
                    }
                    let field = batch.field(c);
                    let tapped = elem == ElemType::F32 && field.data_type() == &DataType::Float32;
                    columns.push(PlanColumn {
                        name: field.name().clone(),
                        role: Role::Input,
                        index: c,
                        kind: if elem == ElemType::Str {
                            Kind::Categorical
                        } else {
                            Kind::Numeric
                        },
                        data_type: field.data_type().to_string(),
                        tap: tapped.then_some((mi, feed.input, j)),
                        range: None,
                        vocabulary: None,
                    });
                }
            }
            widths.push(width);
        }
        for (i, f) in predictions.iter().enumerate() {
            let kind = match f.data_type() {
                DataType::Float16 | DataType::Float32 | DataType::Float64 => Kind::Numeric,
                d if d.is_integer() || matches!(d, DataType::Utf8 | DataType::Boolean) => {
                    Kind::Categorical
                }
                // Lists (--as-list) are not profiled.
                _ => continue,
            };
            columns.push(PlanColumn {
                name: f.name().clone(),
                role: Role::Prediction,
                index: i,
                kind,
                data_type: f.data_type().to_string(),
                tap: None,
                range: None,
                vocabulary: None,
            });
        }
        let mut plan = ProfilePlan {
            columns,
            widths,
            sums: InputSums::default(),
        };
        plan.sums = plan.empty_sums();
        plan
    }

    /// What the workers need of a baseline: numeric ranges, string vocabularies.
    pub fn with_baseline(mut self, baseline: &Profile) -> ProfilePlan {
        for c in &mut self.columns {
            match baseline.column(c.role, &c.name) {
                Some(ColumnProfile::Numeric(n)) => c.range = n.min.zip(n.max),
                Some(ColumnProfile::Categorical(k)) if k.complete => {
                    c.vocabulary = Some(Arc::new(k.values.keys().cloned().collect()));
                }
                _ => {}
            }
        }
        self.sums = self.empty_sums();
        self
    }

    /// Empty sums for the float32 tensors whose moments this plan reads, to
    /// gather as a batch is scored (`ModelSet::score_observed`).
    pub fn input_sums(&self) -> InputSums {
        self.sums.clone()
    }

    /// The sums `input_sums` copies, made when the plan or its ranges change.
    fn empty_sums(&self) -> InputSums {
        let sums = |m: usize, i: usize, f: usize| {
            let mut ranges = vec![None; f];
            let mut tapped = false;
            for c in &self.columns {
                if let Some((cm, ci, j)) = c.tap {
                    if (cm, ci) == (m, i) {
                        ranges[j] = c.range;
                        tapped = true;
                    }
                }
            }
            if tapped {
                RowSums::new(&ranges)
            } else {
                None
            }
        };
        InputSums(
            self.widths
                .iter()
                .enumerate()
                .map(|(m, inputs)| {
                    inputs
                        .iter()
                        .enumerate()
                        .map(|(i, &f)| sums(m, i, f))
                        .collect()
                })
                .collect(),
        )
    }

    /// The profile of one scored batch: `batch` as scored, `predictions` for the
    /// rows `kept` (None: every row), `sampled` the sketched rows of `batch`,
    /// `sums` the moments its float32 tensors gathered (`input_sums`; empty when
    /// it was scored without, and then every column is measured here).
    pub fn profile(
        &self,
        batch: &RecordBatch,
        predictions: &[ArrayRef],
        kept: Option<&[u32]>,
        sampled: &Sampled,
        sums: &InputSums,
    ) -> RunProfile {
        let kept_sample = kept.map(|k| sampled.within(k));
        let columns = self
            .columns
            .iter()
            .map(|c| {
                let (array, sampled) = match c.role {
                    Role::Input => (batch.column(c.index), sampled),
                    Role::Prediction => (
                        &predictions[c.index],
                        kept_sample.as_ref().unwrap_or(sampled),
                    ),
                };
                let known = c
                    .tap
                    .and_then(|(m, i, j)| sums.0.get(m)?.get(i)?.as_ref()?.moments(j));
                match c.kind {
                    Kind::Numeric => ColumnProfile::Numeric(match known {
                        Some(moments) => {
                            NumericProfile::of_moments(array, sampled, c.range, moments)
                        }
                        None => NumericProfile::of(array, sampled, c.range),
                    }),
                    Kind::Categorical => ColumnProfile::Categorical(CategoricalProfile::of(
                        array,
                        c.vocabulary.as_ref(),
                    )),
                }
            })
            .collect();
        RunProfile { columns }
    }

    /// An empty profile of this plan's columns.
    pub fn empty(&self) -> RunProfile {
        RunProfile {
            columns: self
                .columns
                .iter()
                .map(|c| match c.kind {
                    Kind::Numeric => {
                        ColumnProfile::Numeric(NumericProfile::empty(c.range.is_some()))
                    }
                    Kind::Categorical => ColumnProfile::Categorical(CategoricalProfile::empty()),
                })
                .collect(),
        }
    }
}

/// The profile of some rows, one entry per column of the plan.
#[derive(Debug, Clone)]
pub struct RunProfile {
    columns: Vec<ColumnProfile>,
}

impl RunProfile {
    /// Adds the profile of rows that come after these.
    pub fn merge(&mut self, other: &RunProfile, plan: &ProfilePlan) {
        for ((a, b), c) in self
            .columns
            .iter_mut()
            .zip(&other.columns)
            .zip(&plan.columns)
        {
            match (a, b) {
                (ColumnProfile::Numeric(a), ColumnProfile::Numeric(b)) => a.merge(b),
                (ColumnProfile::Categorical(a), ColumnProfile::Categorical(b)) => {
                    a.merge(b, c.vocabulary.as_ref())
                }
                _ => {}
            }
        }
    }

    /// The profile by column name, with its derived figures.
    pub fn named(&self, plan: &ProfilePlan) -> Profile {
        let mut p = Profile {
            sample: SampleRule::default(),
            ..Default::default()
        };
        for (column, c) in self.columns.iter().zip(&plan.columns) {
            let mut column = column.clone();
            column.finish();
            if let ColumnProfile::Numeric(n) = &mut column {
                n.data_type.clone_from(&c.data_type);
            }
            if c.role == Role::Input && p.rows == 0 {
                p.rows = column.rows();
            }
            match c.role {
                Role::Input => p.inputs.insert(c.name.clone(), column),
                Role::Prediction => p.predictions.insert(c.name.clone(), column),
            };
        }
        if p.rows == 0 {
            p.rows = p.predictions.values().map(|c| c.rows()).max().unwrap_or(0);
        }
        p
    }
}

/// One column's profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ColumnProfile {
    Numeric(NumericProfile),
    Categorical(CategoricalProfile),
}

impl ColumnProfile {
    fn finish(&mut self) {
        match self {
            ColumnProfile::Numeric(n) => n.finish(),
            ColumnProfile::Categorical(c) => c.finish(),
        }
    }

    pub fn rows(&self) -> u64 {
        match self {
            ColumnProfile::Numeric(n) => n.rows,
            ColumnProfile::Categorical(c) => c.rows,
        }
    }

    pub fn nulls(&self) -> u64 {
        match self {
            ColumnProfile::Numeric(n) => n.nulls,
            ColumnProfile::Categorical(c) => c.nulls,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ColumnProfile::Numeric(_) => "numeric",
            ColumnProfile::Categorical(_) => "categorical",
        }
    }
}

/// How the quantile sketches sample rows (`sample`), recorded with each profile.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SampleRule {
    pub head_rows: u64,
    pub then_one_in: u64,
}

impl Default for SampleRule {
    fn default() -> Self {
        SampleRule {
            head_rows: sample::HEAD,
            then_one_in: sample::RATE,
        }
    }
}

/// A run's profile as the summary JSON holds it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    /// Rows profiled (the rows scored, bad rows included).
    pub rows: u64,
    pub sample: SampleRule,
    /// Columns fed to the models (after mapping), by name.
    pub inputs: BTreeMap<String, ColumnProfile>,
    /// Prediction columns, named as in the output.
    pub predictions: BTreeMap<String, ColumnProfile>,
}

impl Profile {
    pub fn column(&self, role: Role, name: &str) -> Option<&ColumnProfile> {
        match role {
            Role::Input => self.inputs.get(name),
            Role::Prediction => self.predictions.get(name),
        }
    }

    /// A few lines for the text summary: each prediction column in one line.
    pub fn text_lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "{} rows, {} input and {} prediction columns (all figures in --summary-json)",
            self.rows,
            self.inputs.len(),
            self.predictions.len()
        )];
        for (name, c) in &self.predictions {
            lines.push(format!("{name}: {}", describe(c)));
        }
        lines
    }
}

/// One column in a line: mean, std, range and median, or the top values.
pub fn describe(c: &ColumnProfile) -> String {
    match c {
        ColumnProfile::Numeric(n) => {
            let q = |name: &str| {
                n.quantiles
                    .iter()
                    .find(|(k, _)| k == name)
                    .map_or("-".to_string(), |(_, v)| format!("{v:.4}"))
            };
            let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
            format!(
                "mean {} std {} min {} p50 {} max {}, {} null, {} NaN",
                f(n.mean),
                f(n.std),
                f(n.min),
                q("p50"),
                f(n.max),
                n.nulls,
                n.nan
            )
        }
        ColumnProfile::Categorical(k) => {
            let top: Vec<String> = k
                .top
                .iter()
                .take(4)
                .map(|(v, share)| format!("{v} {:.1}%", share * 100.0))
                .collect();
            let more = if k.distinct as usize > top.len() {
                ", …"
            } else {
                ""
            };
            format!(
                "{} values ({}{more}), {} null",
                k.distinct,
                top.join(", "),
                k.nulls
            )
        }
    }
}
