//! What every job does before its first batch: open the model and the inputs,
//! map columns to model inputs, compile the model, and work out which columns to
//! read and where each one lands. `score` and `bench` share it, so a job that
//! would fail fails here, before anything is read or written.

use std::sync::Arc;

use anyhow::Context;
use arrow::datatypes::{FieldRef, SchemaRef};

use crate::cli::config::ModelSpec;
use crate::exit::{CliError, ExitCode, WithExit};
use crate::mapping;
use crate::model::set::{Member, ModelSet};
use crate::model::ModelFile;
use crate::select::{SelectSpec, Selection};
use crate::source::{CsvOptions, Dataset, InputFile};

/// A job ready to read its first batch.
pub struct Prepared {
    pub models: ModelSet,
    pub dataset: Dataset,
    /// Columns to read, indices into the dataset schema, ascending: what every
    /// model, the kept columns and the selection need.
    pub projection: Vec<usize>,
    /// The schema of the batches scored: the batches read, through the selection.
    pub projected: SchemaRef,
    /// Kept columns, indices into the scored batches, in output order.
    pub keep: Vec<usize>,
    /// Filters, derived columns, sample and limit, ready for the workers.
    pub selection: Selection,
}

impl Prepared {
    /// The kept columns' fields, types unchanged.
    pub fn kept_fields(&self) -> Vec<FieldRef> {
        self.keep
            .iter()
            .map(|&i| self.projected.fields()[i].clone())
            .collect()
    }
}

/// Opens and checks everything; with `log_plan`, writes each model's mapping plan to stderr.
#[allow(clippy::too_many_lines)] // the pre-scoring checks in the order they must happen (model, inputs, selection, mapping, compile, projection)
pub fn prepare(
    models: &[ModelSpec],
    files: Vec<InputFile>,
    csv: CsvOptions,
    select: &SelectSpec,
    log_plan: bool,
) -> Result<Prepared, CliError> {
    let model_files = models
        .iter()
        .map(|spec| ModelFile::open_with(&spec.path, spec.native))
        .collect::<Result<Vec<_>, _>>()
        .exit(ExitCode::Validation)?;
    for m in &model_files {
        for w in &m.warnings {
            crate::sys::log::warn(&format!("{}: {w}", m.path.display()));
        }
    }
    let names: Vec<String> = files.iter().map(|f| f.display()).collect();
    let inputs = crate::source::describe_files(&names);
    let mut selection = Selection::new(select).exit(ExitCode::Usage)?;
    let dataset = Dataset::open_pruned(files, csv, selection.pruner()).map_err(|e| {
        // Bad quoting is bad input wherever it is found (exit 4, as while scoring).
        let code = if crate::source::bad_quoting(&e).is_some() {
            ExitCode::TooManyBadRows
        } else {
            ExitCode::Validation
        };
        CliError::new(code, e)
    })?;
    // What the models see: the input's columns through --with/--filter/--sql.
    let schema = selection
        .output_schema(&dataset.schema)
        .with_context(|| format!("applying the selection to {inputs}"))
        .exit(ExitCode::Validation)?;
    let mut planned = vec![];
    for (spec, model_file) in models.iter().zip(model_files) {
        let whose = crate::model::set::label(spec.name.as_deref(), &spec.path);
        let plan = mapping::plan(&schema, &model_file.signature, &spec.mapping)
            .with_context(|| format!("mapping the columns of {inputs} to the inputs of {whose}"))
            .exit(ExitCode::Validation)?;
        if log_plan {
            let text = plan.render(&model_file.signature, &schema, true);
            let title = match &spec.name {
                Some(n) => format!("mapping for model {n}"),
                None => "mapping".into(),
            };
            crate::sys::log::event(
                "info",
                "mapping",
                serde_json::json!({
                    "model": spec.name,
                    "path": spec.path.display().to_string(),
                    "plan": text,
                }),
                &format!(
                    "batchinfer: {title}\n{}",
                    text.lines().map(|l| format!("  {l}\n")).collect::<String>()
                ),
            );
        }
        let mut compiled = model_file
            .compile(&plan.widths(model_file.signature.inputs.len()))
            .exit(ExitCode::Validation)?;
        compiled
            .select_outputs(spec.outputs.as_deref(), &spec.as_list)
            .map_err(|e| anyhow::anyhow!("{whose}: {e}"))
            .exit(ExitCode::Validation)?;
        planned.push((spec.name.clone(), plan, compiled));
    }
    let needed: Vec<String> = planned
        .iter()
        .flat_map(|(_, plan, _)| plan.projection(&schema))
        .map(|i| schema.field(i).name().clone())
        .collect();
    let mut projection: Vec<usize> = selection
        .source_columns(&needed, &dataset.schema)
        .iter()
        .filter_map(|c| dataset.schema.index_of(c).ok())
        .collect();
    projection.sort_unstable();
    projection.dedup();
    refuse_duplicates(&dataset, &projection, &inputs).exit(ExitCode::Validation)?;
    let read = Arc::new(
        dataset
            .schema
            .project(&projection)
            .context("projecting the input schema")
            .exit(ExitCode::Failure)?,
    );
    let projected = selection
        .plan(&read, &dataset.files)
        .with_context(|| format!("applying the selection to {inputs}"))
        .exit(ExitCode::Validation)?;
    // Every plan keeps the same columns: --keep is one option for the run.
    let keep = planned
        .first()
        .map(|(_, plan, _)| {
            plan.keep
                .iter()
                .map(|k| {
                    projected
                        .index_of(k)
                        .expect("the projection holds every kept column")
                })
                .collect()
        })
        .unwrap_or_default();
    let members = planned
        .into_iter()
        .map(|(name, plan, compiled)| Member {
            name,
            feeds: plan.feeds(&projected),
            model: Arc::new(compiled),
        })
        .collect();
    Ok(Prepared {
        models: ModelSet { members },
        dataset,
        projection,
        projected,
        keep,
        selection,
    })
}

/// A column name the input has twice cannot be told apart: refused where the run
/// uses it (mapping, kept columns, selection), naming it.
fn refuse_duplicates(dataset: &Dataset, projection: &[usize], inputs: &str) -> anyhow::Result<()> {
    let fields = dataset.schema.fields();
    for &i in projection {
        let name = fields[i].name();
        let count = fields.iter().filter(|f| f.name() == name).count();
        if count > 1 {
            anyhow::bail!(
                "column `{name}` appears {count} times in {inputs}, and this run uses it (to feed a model, to keep, or in the selection); rename the copies so that each column has its own name"
            );
        }
    }
    Ok(())
}
