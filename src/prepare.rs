//! What every job does before its first batch: open the model and the inputs,
//! map columns to model inputs, compile the model, and work out which columns to
//! read and where each one lands. `score` and `bench` share it, so a job that
//! would fail fails here, before anything is read or written.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow::datatypes::{FieldRef, SchemaRef};

use crate::exit::{CliError, ExitCode, WithExit};
use crate::mapping::{self, MappingRequest};
use crate::model::{Feed, Model, ModelFile};
use crate::source::{CsvOptions, Dataset, InputFile};

/// A job ready to read its first batch.
pub struct Prepared {
    pub model: Arc<Model>,
    pub dataset: Dataset,
    /// Columns to read, indices into the dataset schema, ascending.
    pub projection: Vec<usize>,
    /// The schema of the batches read.
    pub projected: SchemaRef,
    /// Which read columns feed which model input.
    pub feeds: Vec<Feed>,
    /// Kept columns, indices into the read batches, in output order.
    pub keep: Vec<usize>,
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

/// The inputs as a short phrase for messages.
fn describe(files: &[InputFile]) -> String {
    match files {
        [one] => one.display(),
        [first, rest @ ..] => format!("{} and {} more file(s)", first.display(), rest.len()),
        [] => "the input".into(),
    }
}

/// Opens and checks everything; with `log_plan`, writes the mapping plan to stderr.
pub fn prepare(
    model: &Path,
    files: Vec<InputFile>,
    csv: CsvOptions,
    request: &MappingRequest,
    log_plan: bool,
) -> Result<Prepared, CliError> {
    let model_file = ModelFile::open(model).exit(ExitCode::Validation)?;
    let inputs = describe(&files);
    let dataset = Dataset::open(files, csv).exit(ExitCode::Validation)?;
    let schema = dataset.schema.clone();
    let plan = mapping::plan(&schema, &model_file.signature, request)
        .with_context(|| {
            format!(
                "mapping the columns of {inputs} to the inputs of model {}",
                model.display()
            )
        })
        .exit(ExitCode::Validation)?;
    if log_plan {
        let text = plan.render(&model_file.signature, &schema);
        eprint!(
            "batchinfer: mapping\n{}",
            text.lines().map(|l| format!("  {l}\n")).collect::<String>()
        );
    }
    let compiled = model_file
        .compile(&plan.widths(model_file.signature.inputs.len()))
        .exit(ExitCode::Validation)?;
    let projection = plan.projection(&schema);
    let projected = Arc::new(
        schema
            .project(&projection)
            .context("projecting the input schema")
            .exit(ExitCode::Failure)?,
    );
    let feeds = plan.feeds(&projected);
    let keep = plan
        .keep
        .iter()
        .map(|k| {
            projected
                .index_of(k)
                .expect("the projection holds every kept column")
        })
        .collect();
    Ok(Prepared {
        model: Arc::new(compiled),
        dataset,
        projection,
        projected,
        feeds,
        keep,
    })
}
