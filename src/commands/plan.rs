//! Where a run's scored rows go: one file (and its error file), or the parts of
//! a directory output that this shard still has to write. Decided after the
//! model and inputs are prepared, before the first batch is read.

use std::collections::BTreeMap;

use arrow::datatypes::SchemaRef;

use crate::cli::config::ScoreConfig;
use crate::commands::prepare::Prepared;
use crate::exit::{CliError, ExitCode, WithExit};
use crate::pipeline::rejects::{MaxErrors, OnError};
use crate::pipeline::Destination;
use crate::pipeline::Segment;
use crate::sink::parts::{self, JobIdentity, ModelPrint, OpenError, Opened, PartWriter};
use crate::sink::shard;
use crate::sink::FileDestination;
use crate::summary::PartsSummary;

/// Where the scored rows of this run go, and what is already there.
pub struct Plan {
    pub destination: Box<dyn Destination>,
    pub segments: Vec<Segment>,
    /// Rows the pending input holds, when the files say (for progress).
    pub rows: Option<u64>,
    /// Rows read and rejected by earlier runs of a resumed directory output.
    pub prior_read: u64,
    pub prior_rejected: u64,
    pub parts: Option<PartsSummary>,
}

/// A directory output that needs this run, or one that is already complete.
pub enum DirectoryPlan {
    Run(Plan),
    Complete(parts::Manifest),
}

/// What makes this run's output what it is: checked by `--resume`.
fn job_identity(cfg: &ScoreConfig, prepared: &Prepared) -> Result<JobIdentity, CliError> {
    let inputs = prepared
        .dataset
        .files
        .iter()
        .map(parts::fingerprint)
        .collect::<anyhow::Result<Vec<_>>>()
        .exit(ExitCode::Validation)?;
    let models = prepared
        .models
        .members
        .iter()
        .map(|m| ModelPrint {
            name: m.name.clone(),
            path: m.model.path.display().to_string(),
            sha256: m.model.sha256.clone(),
        })
        .collect();
    let options = job_options(cfg);
    Ok(JobIdentity {
        tool_version: env!("CARGO_PKG_VERSION").into(),
        shard: cfg.shard,
        inputs,
        models,
        options,
    })
}

/// The options that shape the output, as the flags and values the user would
/// write (`--rows-per-file` → `256`); options not given are left out.
/// `--raw-score` and `--iterations` where a run sets them.
fn native_options(cfg: &ScoreConfig) -> Vec<(&'static str, String)> {
    let mut out = vec![];
    if cfg.models.iter().any(|s| s.native.raw_score) {
        out.push(("--raw-score", "true".into()));
    }
    let mut iterations = cfg.models.iter().map(|s| s.native.iterations);
    if let Some(i) = iterations.find(|i| *i != Default::default()) {
        out.push(("--iterations", i.to_string()));
    }
    out
}

fn job_options(cfg: &ScoreConfig) -> BTreeMap<String, String> {
    let mut options = BTreeMap::new();
    let mut set = |flag: String, value: String| {
        options.insert(flag, value);
    };
    let first = cfg.models.first().map(|m| &m.mapping);
    if let Some(m) = first {
        if m.keep_all {
            set("--keep-all".into(), "true".into());
        } else if !m.keep.is_empty() {
            set("--keep".into(), m.keep.join(","));
        }
    }
    for spec in &cfg.models {
        // `--features m:` for model m's own, `--features` when there is one model.
        let flag = |name: &str| match &spec.name {
            Some(n) => format!("--{name} {n}:"),
            None => format!("--{name}"),
        };
        if let Some(f) = &spec.mapping.features {
            set(flag("features"), f.join(","));
        }
        if !spec.mapping.input_map.is_empty() {
            let maps: Vec<String> = spec
                .mapping
                .input_map
                .iter()
                .map(|(input, cols)| format!("{input}={}", cols.join(",")))
                .collect();
            set(flag("input-map"), maps.join(" "));
        }
        if let Some(o) = &spec.outputs {
            set(flag("select-outputs"), o.join(","));
        }
        if !spec.as_list.is_empty() {
            set(flag("as-list"), spec.as_list.join(","));
        }
    }
    // Flags for the run, carried by every model's spec.
    for (flag, value) in native_options(cfg) {
        set(flag.into(), value);
    }
    match cfg.on_error {
        OnError::Fail => set("--on-error".into(), "fail".into()),
        OnError::Skip { max } => {
            set("--on-error".into(), "skip".into());
            match max {
                Some(MaxErrors::Rows(n)) => set("--max-errors".into(), n.to_string()),
                Some(MaxErrors::Percent(p)) => set("--max-errors".into(), format!("{p}%")),
                None => {}
            }
        }
    }
    if cfg
        .inputs
        .iter()
        .any(|f| f.format == crate::source::Format::Csv)
    {
        for (flag, value) in cfg.csv.flags() {
            set(flag, value);
        }
    }
    if let Some(n) = cfg.rows_per_file {
        set("--rows-per-file".into(), n.to_string());
    }
    let select = &cfg.select;
    for (name, expr) in &select.transform.with {
        set(format!("--with {name}"), expr.clone());
    }
    if let Some(f) = &select.transform.filter {
        set("--filter".into(), f.clone());
    }
    if let Some(q) = &select.transform.sql {
        set("--sql".into(), q.clone());
    }
    if let Some(f) = select.sample {
        set("--sample".into(), f.to_string());
        set("--seed".into(), select.seed.to_string());
    }
    options
}

/// Everything the dataset selects, bound for one output: the parts of the
/// whole dataset as one shard (a file, or each run of consecutive row groups a
/// filter left, so that a segment's rows stay consecutive in its file).
fn all_segments(dataset: &crate::source::Dataset) -> Vec<Segment> {
    let units = shard::units(dataset);
    let every: Vec<usize> = (0..units.len()).collect();
    shard::parts(&units, &every, None)
        .into_iter()
        .map(|p| Segment {
            part: 0,
            file: p.file,
            row_groups: p.row_groups,
            first_row: p.first_row,
        })
        .collect()
}

/// The parts of this shard of a directory output.
pub fn part_plans(cfg: &ScoreConfig, prepared: &Prepared) -> Vec<shard::PartPlan> {
    let units = shard::units(&prepared.dataset);
    let mine = shard::assign(&units, cfg.shard);
    shard::parts(&units, &mine, cfg.rows_per_file)
}

pub fn directory_plan(
    cfg: &ScoreConfig,
    prepared: &Prepared,
    out_schema: &SchemaRef,
    error_schema: Option<SchemaRef>,
    metadata: Vec<(String, String)>,
) -> Result<DirectoryPlan, CliError> {
    let identity = job_identity(cfg, prepared)?;
    let opened = parts::open(
        &cfg.output.dir(),
        identity,
        part_plans(cfg, prepared),
        cfg.resume,
        cfg.output.overwrite,
    )
    .map_err(|e| match e {
        OpenError::Usage(m) => CliError::new(ExitCode::Usage, anyhow::anyhow!(m)),
        OpenError::Changed(m) => CliError::new(ExitCode::Validation, anyhow::anyhow!(m)),
        OpenError::Io(e) => CliError::new(ExitCode::Failure, e),
    })?;
    let (manifest, pending, resumed, version) = match opened {
        Opened::Complete(m) => return Ok(DirectoryPlan::Complete(m)),
        Opened::ToDo {
            manifest,
            pending,
            resumed,
            version,
        } => (manifest, pending, resumed, version),
    };
    let segments: Vec<Segment> = pending
        .iter()
        .map(|&p| {
            let plan = &manifest.parts[p].plan;
            Segment {
                part: p,
                file: plan.file,
                row_groups: plan.row_groups.clone(),
                first_row: plan.first_row,
            }
        })
        .collect();
    let rows = pending
        .iter()
        .map(|&p| manifest.parts[p].plan.rows)
        .sum::<Option<u64>>();
    let done = manifest.parts.iter().filter(|p| p.done);
    let prior_read = done.clone().map(|p| p.rows_written + p.rows_rejected).sum();
    let prior_rejected = done.map(|p| p.rows_rejected).sum();
    let parts = PartsSummary {
        total: manifest.parts.len(),
        written: pending.len(),
        already_done: resumed,
    };
    let destination = PartWriter::new(
        &cfg.output.dir(),
        manifest,
        version,
        pending,
        out_schema.clone(),
        error_schema,
        metadata,
    );
    Ok(DirectoryPlan::Run(Plan {
        destination: Box::new(destination),
        segments,
        rows,
        prior_read,
        prior_rejected,
        parts: Some(parts),
    }))
}

/// A single output file: opened (as a temporary file) now, so an unwritable
/// destination fails before scoring.
pub fn file_plan(
    cfg: &ScoreConfig,
    prepared: &Prepared,
    out_schema: &SchemaRef,
    error_schema: Option<&SchemaRef>,
    metadata: &[(String, String)],
) -> Result<Plan, CliError> {
    let sink = cfg
        .output
        .open(out_schema.clone(), metadata)
        .exit(ExitCode::Usage)?;
    let errors = match (&cfg.errors, error_schema) {
        (Some(target), Some(schema)) => Some(
            target
                .open(schema.clone(), metadata)
                .exit(ExitCode::Usage)?,
        ),
        _ => None,
    };
    Ok(Plan {
        destination: Box::new(FileDestination {
            sink,
            errors,
            target: cfg.output.clone(),
        }),
        segments: all_segments(&prepared.dataset),
        rows: prepared.dataset.total_rows,
        prior_read: 0,
        prior_rejected: 0,
        parts: None,
    })
}
