//! `--with`, `--filter` and `--sql` applied by polars SQL to each batch, on the
//! scoring workers, after the arrow-rs reader (docs/design.md, "Choices, and
//! why", says why not polars' own scan).
//!
//! Each option is a stage over the table `input`: `--with NAME=EXPR` is
//! `SELECT *, EXPR AS NAME FROM input`, `--filter EXPR` is
//! `SELECT * FROM input WHERE EXPR`, and `--sql` is the user's query. A hidden
//! column of row indices rides through every stage, so rows set aside or failing
//! later are still named by their row in the input file.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use polars::prelude::IntoLazy;
use polars::sql::SQLContext;
use sqlparser::ast::Expr;

use super::bridge;
use super::sql;
use super::TransformSpec;
use crate::source::{max_name, min_name, Pruner};

/// The hidden column holding each row's index in its batch.
pub const ROW_COLUMN: &str = "__batchinfer_row";

struct Stage {
    /// What the user wrote, for messages.
    option: String,
    sql: String,
    /// `--with` and `--filter`: the expression, whose columns must exist when it runs.
    expr: Option<Expr>,
    /// `--with`: the column it adds.
    adds: Option<String>,
}

/// A checked transform, ready to run on batches.
pub struct Transform {
    stages: Vec<Stage>,
    /// Names the SQL mentions: the input columns it reads, and aliases.
    referenced: Vec<String>,
    /// Whether every input column passes through (no `--sql` with its own list).
    star: bool,
    /// The row filter, for pruning.
    filter: Option<Expr>,
    /// Whether rows may be dropped.
    pub filters_rows: bool,
}

impl Transform {
    /// Parses and checks the options (usage errors: nothing is opened yet).
    pub fn new(spec: &TransformSpec) -> Result<Transform> {
        let mut stages = vec![];
        let mut referenced = vec![];
        let mut filter = None;
        let mut star = true;
        for (name, text) in &spec.with {
            let option = format!("--with {name}={text}");
            let e = sql::parse_expr("--with", text)?;
            referenced.extend(sql::referenced(&e));
            stages.push(Stage {
                sql: format!("SELECT *, {e} AS {} FROM {}", sql::quoted(name), sql::TABLE),
                option,
                expr: Some(e),
                adds: Some(name.clone()),
            });
        }
        if let Some(text) = &spec.filter {
            let e = sql::parse_expr("--filter", text)?;
            referenced.extend(sql::referenced(&e));
            stages.push(Stage {
                sql: format!("SELECT * FROM {} WHERE {e}", sql::TABLE),
                option: format!("--filter {text:?}"),
                expr: Some(e.clone()),
                adds: None,
            });
            filter = Some(e);
        }
        if let Some(text) = &spec.sql {
            let checked = sql::parse_query(text)?;
            referenced.extend(sql::referenced(&checked.query));
            star = checked.star;
            filter = sql::where_clause(&checked).cloned();
            stages.push(Stage {
                sql: sql::with_projected(&checked, ROW_COLUMN),
                option: format!("--sql {text}"),
                expr: None,
                adds: None,
            });
        }
        Ok(Transform {
            stages,
            referenced,
            star,
            filters_rows: filter.is_some(),
            filter,
        })
    }

    /// Checks names against the input: derived names must be new, and every name
    /// `--filter` and `--with` use must exist by the time they run.
    pub fn check_names(&self, input: &Schema) -> Result<()> {
        if input.field_with_name(ROW_COLUMN).is_ok() {
            bail!("the input has a column named {ROW_COLUMN}, which batchinfer uses itself; rename it");
        }
        let mut known: Vec<String> = input.fields().iter().map(|f| f.name().clone()).collect();
        for stage in &self.stages {
            let Some(e) = &stage.expr else { continue };
            if let Some(name) = stage.adds.as_ref().filter(|n| known.contains(n)) {
                bail!(
                    "{}: a column `{name}` exists already; give the derived column a new name",
                    stage.option
                );
            }
            if let Some(unknown) = sql::unknown_column(e, &known) {
                bail!(
                    "{}: no column {unknown}; the columns are: {}",
                    stage.option,
                    known.join(", ")
                );
            }
            known.extend(stage.adds.clone());
        }
        Ok(())
    }

    /// The input columns needed to produce the output columns `needed`.
    pub fn source_columns(&self, needed: &[String], input: &Schema) -> Vec<String> {
        input
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|c| self.referenced.contains(c) || (self.star && needed.contains(c)))
            .collect()
    }

    /// The schema of the batches `apply` returns for input batches of `input`.
    pub fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        let empty = RecordBatch::new_empty(input.clone());
        let out = self.run(&empty, None)?;
        let fields: Vec<Field> = out
            .schema()
            .fields()
            .iter()
            .filter(|f| f.name() != ROW_COLUMN)
            .map(|f| {
                // Columns passed through keep their input type.
                let t = match input.field_with_name(f.name()) {
                    Ok(orig) => orig.data_type().clone(),
                    Err(_) => bridge::plain(f.data_type()),
                };
                Field::new(f.name(), t, true)
            })
            .collect();
        let mut names = std::collections::HashSet::new();
        if let Some(dup) = fields.iter().find(|f| !names.insert(f.name().clone())) {
            bail!(
                "{}: the result has two columns named `{}`; give one an alias",
                self.describe(),
                dup.name()
            );
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    fn describe(&self) -> String {
        self.stages
            .iter()
            .map(|s| s.option.clone())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the stages on `batch` with a row column added holding `rows` (or
    /// nothing, for an empty batch). Returns polars' result in plain types.
    fn run(&self, batch: &RecordBatch, rows: Option<ArrayRef>) -> Result<RecordBatch> {
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut columns = batch.columns().to_vec();
        let rows = rows.unwrap_or_else(|| Arc::new(UInt32Array::from(Vec::<u32>::new())));
        fields.push(Field::new(ROW_COLUMN, rows.data_type().clone(), false));
        columns.push(rows);
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let with_rows =
            RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)?;
        let mut frame = bridge::to_polars(&with_rows)?.lazy();
        let mut ctx = SQLContext::new();
        for stage in &self.stages {
            ctx.register(sql::TABLE, frame);
            frame = ctx
                .execute(&stage.sql)
                .map_err(|e| anyhow!("{}: {e}", stage.option))?;
        }
        // A batch is small and scanned once: planning is all the optimiser would add.
        let out = frame
            .without_optimizations()
            .collect()
            .map_err(|e| anyhow!("{}: {e}", self.describe()))?;
        bridge::to_arrow(out, None)
    }

    /// Applies the stages to a batch: the resulting batch (of `schema`, from
    /// [`Transform::output_schema`]) and, for each of its rows, its index in `batch`.
    ///
    /// Only the columns the SQL mentions go through polars. The others (passed
    /// through by `*`) are taken from the batch for the rows polars kept, so that a
    /// filter on one column does not copy thirty through polars and back.
    pub fn apply(
        &self,
        batch: &RecordBatch,
        schema: &SchemaRef,
    ) -> Result<(RecordBatch, Vec<u32>)> {
        let n = batch.num_rows();
        let input = batch.schema();
        let used: Vec<usize> = (0..input.fields().len())
            .filter(|&i| self.referenced.contains(input.field(i).name()))
            .collect();
        let index: ArrayRef = Arc::new(UInt32Array::from_iter_values(0..n as u32));
        let out = self.run(&batch.project(&used)?, Some(index))?;
        let picked = out
            .column_by_name(ROW_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
            .ok_or_else(|| anyhow!("{}: the row numbers were lost", self.describe()))?
            .clone();
        let every_row = picked.len() == n;
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                let column = match out.column_by_name(f.name()) {
                    Some(c) => c.clone(),
                    None => {
                        let c = batch.column_by_name(f.name()).ok_or_else(|| {
                            anyhow!(
                                "{}: no column `{}` in the result",
                                self.describe(),
                                f.name()
                            )
                        })?;
                        if every_row {
                            c.clone()
                        } else {
                            arrow::compute::take(c, &picked, None)?
                        }
                    }
                };
                if column.data_type() == f.data_type() {
                    Ok(column)
                } else {
                    arrow::compute::cast(&column, f.data_type()).with_context(|| {
                        format!(
                            "{}: column `{}` is {} in this batch",
                            self.describe(),
                            f.name(),
                            column.data_type()
                        )
                    })
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(picked.len()));
        let batch = RecordBatch::try_new_with_options(schema.clone(), columns, &options)?;
        Ok((batch, picked.values().to_vec()))
    }
}

impl Pruner for Transform {
    fn columns(&self) -> Vec<String> {
        self.filter
            .as_ref()
            .map(sql::referenced)
            .unwrap_or_default()
    }

    fn may_match(&self, stats: &RecordBatch) -> Result<Vec<bool>> {
        let n = stats.num_rows();
        let schema = stats.schema();
        let bounded = |c: &str| schema.field_with_name(&min_name(c)).is_ok();
        let check = self
            .filter
            .as_ref()
            .and_then(|f| sql::bounds_check(f, &bounded, &min_name, &max_name));
        let Some(check) = check else {
            return Ok(vec![true; n]);
        };
        let frame = bridge::to_polars(stats)?.lazy();
        let mut ctx = SQLContext::new();
        ctx.register(sql::TABLE, frame);
        let out = ctx
            .execute(&format!("SELECT {check} AS may_match FROM {}", sql::TABLE))
            .and_then(|lf| lf.collect())
            .map_err(|e| anyhow!("checking statistics with {check}: {e}"))?;
        let out = bridge::to_arrow(out, None)?;
        let mask = arrow::compute::cast(out.column(0), &DataType::Boolean)?;
        let mask = mask
            .as_any()
            .downcast_ref::<arrow::array::BooleanArray>()
            .context("the statistics check is not boolean")?;
        // Null: the bounds do not say, so the unit is read.
        Ok((0..n).map(|i| mask.is_null(i) || mask.value(i)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;

    fn schema() -> Schema {
        Schema::new(
            ["id", "country", "amount", "f0", "f1"]
                .iter()
                .map(|n| Field::new(*n, DataType::Float64, true))
                .collect::<Vec<_>>(),
        )
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_the_columns_the_models_keep_and_sql_use_are_read() {
        let t = Transform::new(&TransformSpec {
            with: vec![("x".into(), "log1p(amount)".into())],
            filter: Some("country = 'FR' AND x > 1".into()),
            sql: None,
        })
        .unwrap();
        // The models want id, f0 and the derived x: f1 is not read.
        assert_eq!(
            t.source_columns(&names(&["id", "f0", "x"]), &schema()),
            names(&["id", "country", "amount", "f0"])
        );
        let q = Transform::new(&TransformSpec {
            sql: Some("SELECT id, f0 * 2 AS g FROM input WHERE amount > 1".into()),
            ..TransformSpec::default()
        })
        .unwrap();
        // A query's own list decides: country and f1 are not read.
        assert_eq!(
            q.source_columns(&names(&["id", "g"]), &schema()),
            names(&["id", "amount", "f0"])
        );
    }

    #[test]
    fn derived_names_must_be_new_and_names_must_exist_when_used() {
        let later = Transform::new(&TransformSpec {
            with: vec![("y".into(), "x + 1".into()), ("x".into(), "f0".into())],
            ..TransformSpec::default()
        })
        .unwrap();
        let e = later.check_names(&schema()).unwrap_err().to_string();
        assert!(e.contains("no column `x`"), "{e}");
        let clash = Transform::new(&TransformSpec {
            with: vec![("f1".into(), "f0".into())],
            ..TransformSpec::default()
        })
        .unwrap();
        let e = clash.check_names(&schema()).unwrap_err().to_string();
        assert!(e.contains("exists already"), "{e}");
    }
}
