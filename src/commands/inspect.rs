//! `batchinfer inspect`: a model's signature and operators, and with data the
//! mapping plan. Written to stdout: it is what the user asked for.

use std::fmt::Write;

use crate::cli::InspectArgs;
use arrow::datatypes::SchemaRef;

use crate::cli::config::{csv_options, model_specs, select_spec, ModelSpec};
use crate::exit::{CliError, ExitCode, WithExit};
use crate::mapping;
use crate::model::ModelFile;
use crate::select::Selection;
use crate::source::{expand_inputs, Dataset};

pub fn run(args: &InspectArgs) -> Result<String, CliError> {
    let specs = model_specs(&args.model, &args.mapping).exit(ExitCode::Usage)?;
    let select = select_spec(&args.select, &|s| s.to_string()).exit(ExitCode::Usage)?;
    let selection = Selection::new(&select).exit(ExitCode::Usage)?;
    if !select.is_empty() && args.input.is_empty() {
        return Err(CliError::new(
            ExitCode::Usage,
            anyhow::anyhow!("--filter, --with, --sql, --sample and --limit need --input"),
        ));
    }
    let mut out = String::new();
    let baseline = match &args.baseline {
        Some(path) => Some(crate::profile::baseline::read(path).exit(ExitCode::Usage)?),
        None => None,
    };
    if let (Some(b), Some(path)) = (&baseline, &args.baseline) {
        out.push_str(&describe_baseline(b, path));
    }
    let schema = if args.input.is_empty() {
        baseline.as_ref().map(baseline_schema)
    } else {
        let files = expand_inputs(&args.input, args.csv.input_format).exit(ExitCode::Usage)?;
        let csv = csv_options(&args.csv).exit(ExitCode::Usage)?;
        let dataset =
            Dataset::open_pruned(files, csv, selection.pruner()).exit(ExitCode::Validation)?;
        let schema = selection
            .output_schema(&dataset.schema)
            .exit(ExitCode::Validation)?;
        if !select.is_empty() {
            out.push_str(&describe_selection(&dataset, &schema));
        }
        Some(schema)
    };
    let mut predicted = vec![];
    for (i, spec) in specs.iter().enumerate() {
        if i > 0 || !out.is_empty() {
            out.push('\n');
        }
        let (text, columns) = inspect_one(spec, schema.as_ref())?;
        out.push_str(&text);
        predicted.extend(columns);
    }
    if let (Some(b), Some(path)) = (&baseline, &args.baseline) {
        let missing: Vec<String> = predicted
            .into_iter()
            .filter(|c| !b.predictions.contains_key(c))
            .collect();
        if !missing.is_empty() {
            return Err(CliError::new(
                ExitCode::Validation,
                anyhow::anyhow!(
                    "baseline {} has no prediction column {}: make it with the same models (and NAME= prefixes)",
                    path.display(),
                    missing.join(", ")
                ),
            ));
        }
    }
    Ok(out)
}

/// The columns of a baseline, one line each.
fn describe_baseline(b: &crate::profile::Profile, path: &std::path::Path) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "baseline {} ({} rows)", path.display(), b.rows);
    for (title, columns) in [("inputs", &b.inputs), ("predictions", &b.predictions)] {
        let _ = writeln!(out, "  {title}:");
        for (name, c) in columns {
            let _ = writeln!(
                out,
                "    {name} {}: {}",
                c.kind(),
                crate::profile::describe(c)
            );
        }
    }
    out
}

/// A schema of the baseline's input columns (numbers as float64, the rest as
/// strings), to plan the mapping onto.
fn baseline_schema(b: &crate::profile::Profile) -> SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema};
    let fields: Vec<Field> = b
        .inputs
        .iter()
        .map(|(name, c)| {
            let t = match c {
                crate::profile::ColumnProfile::Numeric(n)
                    if n.data_type.starts_with("Int") || n.data_type.starts_with("UInt") =>
                {
                    DataType::Int64
                }
                crate::profile::ColumnProfile::Numeric(_) => DataType::Float64,
                crate::profile::ColumnProfile::Categorical(_) => DataType::Utf8,
            };
            Field::new(name, t, true)
        })
        .collect();
    std::sync::Arc::new(Schema::new(fields))
}

/// What a selection reads and the columns it gives the models.
fn describe_selection(dataset: &Dataset, schema: &SchemaRef) -> String {
    let mut out = String::new();
    let p = dataset.pruned;
    let rows = dataset
        .total_rows
        .map(|r| format!("{r} rows in"))
        .unwrap_or_else(|| "all of".into());
    let _ = writeln!(
        out,
        "selection reads {rows} {} file(s); the filter rules out {} file(s) by partition and {} row group(s) ({} rows) by statistics",
        dataset.files_to_read(),
        p.files,
        p.row_groups,
        p.rows
    );
    let _ = writeln!(out, "columns after the selection:");
    for f in schema.fields() {
        let _ = writeln!(out, "  {} {}", f.name(), f.data_type());
    }
    out
}

/// One model: signature, output columns, operators, and the mapping plan.
/// Also the output column names, prefixed.
fn inspect_one(
    spec: &ModelSpec,
    schema: Option<&SchemaRef>,
) -> Result<(String, Vec<String>), CliError> {
    let model = ModelFile::open_with(&spec.path, spec.native).exit(ExitCode::Validation)?;
    let mut out = String::new();
    match &spec.name {
        Some(name) => {
            let _ = writeln!(
                out,
                "model {name} {} (columns prefixed `{name}.`)",
                model.path.display()
            );
        }
        None => {
            let _ = writeln!(out, "model {}", model.path.display());
        }
    }
    let _ = writeln!(out, "sha256 {}", model.sha256);
    if let Some(d) = &model.description {
        let _ = writeln!(out, "format {d}");
    }
    for w in &model.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(out, "inputs:");
    for i in &model.signature.inputs {
        let _ = writeln!(out, "  {} {}", i.name, i.type_text());
        if !i.feature_names.is_empty() {
            let _ = writeln!(out, "    features: {}", i.feature_names.join(", "));
        }
        let categorical: Vec<String> = (i.categories.iter().enumerate())
            .filter_map(|(j, v)| {
                let v = v.as_deref()?;
                let name = i
                    .feature_names
                    .get(j)
                    .cloned()
                    .unwrap_or_else(|| format!("#{j}"));
                Some(format!("{name} ({})", v.describe()))
            })
            .collect();
        if !categorical.is_empty() {
            let _ = writeln!(out, "    categorical: {}", categorical.join(", "));
        }
    }
    let mut widths = vec![None; model.signature.inputs.len()];
    let mut plan_text = None;
    if let Some(schema) = schema {
        let plan =
            mapping::plan(schema, &model.signature, &spec.mapping).exit(ExitCode::Validation)?;
        widths = plan.widths(widths.len());
        plan_text = Some(plan.render(&model.signature, schema, false));
    }
    let _ = writeln!(out, "outputs:");
    let names = describe_outputs(&mut out, &model, spec, &widths)?;
    let _ = writeln!(out, "operators:");
    let _ = writeln!(out, "  batchinfer's own: {}", list(&model.ops.own));
    let _ = writeln!(out, "  tract:            {}", list(&model.ops.tract));
    if let Some(text) = plan_text {
        let _ = writeln!(out, "mapping:");
        for line in text.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    Ok((out, names))
}

/// The output columns of each model output, and their names for a profile
/// (lists are not profiled).
fn describe_outputs(
    out: &mut String,
    model: &ModelFile,
    spec: &ModelSpec,
    widths: &[Option<usize>],
) -> Result<Vec<String>, CliError> {
    let prefix = spec
        .name
        .as_ref()
        .map(|n| format!("{n}."))
        .unwrap_or_default();
    let mut compiled = match model.compile(widths) {
        Ok(c) => c,
        Err(e) => {
            for spec in &model.signature.outputs {
                let _ = writeln!(out, "  {}", spec.name);
            }
            let _ = writeln!(
                out,
                "(output columns are known once the mapping fixes the input widths: {e})"
            );
            return Ok(vec![]);
        }
    };
    compiled
        .select_outputs(spec.outputs.as_deref(), &spec.as_list)
        .map_err(|e| anyhow::anyhow!(e))
        .exit(ExitCode::Validation)?;
    for spec in &model.signature.outputs {
        let cols: Vec<String> = compiled
            .outputs
            .iter()
            .filter(|c| model.signature.outputs[c.output].name == spec.name)
            .map(|c| format!("{prefix}{} ({})", c.name, c.data_type))
            .collect();
        let _ = writeln!(out, "  {} → columns: {}", spec.name, cols.join(", "));
    }
    let _ = writeln!(out, "compile time {:.1} ms", compiled.compile_s * 1000.0);
    let _ = writeln!(
        out,
        "runs on chunks of at most {} rows (its widest intermediate values within 1 MiB)",
        compiled.chunk_rows
    );
    Ok(compiled
        .outputs
        .iter()
        .filter(|c| !matches!(c.data_type, arrow::datatypes::DataType::FixedSizeList(..)))
        .map(|c| format!("{prefix}{}", c.name))
        .collect())
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
