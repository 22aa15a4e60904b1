//! `batchinfer score`: everything is opened and checked before the first batch
//! (model, schema, mapping, output), then the pipeline runs, then the summary.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::Context;

use crate::config::{ScoreConfig, SummaryTo};
use crate::exit::{CliError, ExitCode, WithExit};
use crate::interrupt::Interrupt;
use crate::lock;
use crate::pipeline::{Pipeline, PipelineError};
use crate::prepare::{prepare, Prepared};
use crate::progress::Progress;
use crate::rejects;
use crate::sink;
use crate::summary::{self, Summary};

/// Runs the job; the summary, or None after `--check`.
pub fn run(cfg: ScoreConfig) -> Result<Option<Summary>, CliError> {
    let started = Instant::now();
    // CPU time of this run only: process start-up (loading the binary) is not the job's.
    let (cpu_at_start, _) = summary::process_usage();
    let read_at_start = summary::bytes_read();
    let run_start = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let inputs: Vec<String> = cfg.inputs.iter().map(|f| f.display()).collect();

    cfg.output.check_free().exit(ExitCode::Usage)?;
    if let Some(errors) = &cfg.errors {
        errors.check_free().exit(ExitCode::Usage)?;
    }
    // Held until the run ends; file outputs only.
    let _lock = match cfg.output.kind {
        crate::sink::OutputKind::Stdout => None,
        _ => {
            let held = lock::acquire(&cfg.output.path).map_err(|e| match e {
                e @ lock::LockError::Held { .. } => CliError::new(ExitCode::Locked, e),
                lock::LockError::Io(e) => CliError::new(ExitCode::Usage, e),
            })?;
            lock::remove_leftovers(&cfg.output.path);
            Some(held)
        }
    };
    let interrupt = Interrupt::install()
        .context("installing signal handlers")
        .exit(ExitCode::Failure)?;
    let prepared = prepare(&cfg.models, cfg.inputs, cfg.csv, !cfg.quiet)?;
    let kept_fields = prepared.kept_fields();
    let out_schema = sink::output_schema(&kept_fields, prepared.models.output_fields())
        .exit(ExitCode::Validation)?;
    if cfg.output.kind != crate::sink::OutputKind::Parquet {
        if let Some(f) = out_schema
            .fields()
            .iter()
            .find(|f| matches!(f.data_type(), arrow::datatypes::DataType::FixedSizeList(..)))
        {
            return Err(CliError::new(
                ExitCode::Usage,
                anyhow::anyhow!(
                    "column `{}` is a list (--as-list), which CSV cannot hold; write Parquet or drop --as-list",
                    f.name()
                ),
            ));
        }
    }
    let mut metadata = prepared.models.metadata();
    metadata.extend([
        (
            "batchinfer.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("batchinfer.run_start".to_string(), run_start),
    ]);
    if cfg.check {
        let models: Vec<String> = prepared
            .models
            .members
            .iter()
            .map(|m| format!("{} ({} output columns)", m.label(), m.model.outputs.len()))
            .collect();
        println!(
            "check passed: {} input file(s), {}, output {}; nothing was scored",
            inputs.len(),
            models.join(", "),
            cfg.output.path.display()
        );
        return Ok(None);
    }
    let sink = cfg
        .output
        .open(out_schema.clone(), &metadata)
        .exit(ExitCode::Usage)?;
    let errors = match &cfg.errors {
        Some(target) => {
            let schema = rejects::error_schema(&kept_fields);
            Some((
                target
                    .open(schema.clone(), &metadata)
                    .exit(ExitCode::Usage)?,
                schema,
            ))
        }
        None => None,
    };

    let Prepared {
        models,
        dataset,
        projection,
        keep,
        ..
    } = prepared;
    let models = Arc::new(models);
    let pipeline = Pipeline {
        progress: Progress::new(dataset.total_rows, cfg.quiet, cfg.progress_every),
        dataset,
        projection,
        models: models.clone(),
        keep,
        out_schema,
        sink,
        on_error: cfg.on_error,
        errors,
        threads: cfg.threads,
        batch_size: cfg.batch_size,
        interrupt,
    };
    let (stats, result) = pipeline.run();

    let wall_s = started.elapsed().as_secs_f64();
    let (cpu_now, peak_rss_mib) = summary::process_usage();
    let cpu_s = (cpu_now - cpu_at_start).max(0.0);
    let rows_scored = if result.is_ok() {
        stats.rows_written
    } else {
        0
    };
    let summary = Summary {
        status: match &result {
            Ok(()) => "ok",
            Err(PipelineError::Interrupted(_)) => "interrupted",
            Err(_) => "failed",
        }
        .into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        model: models.paths(),
        model_sha256: models.sha256s(),
        models: summary::model_summaries(&models, &stats.workers.model_s, rows_scored, cfg.threads),
        inputs,
        output: cfg.output.path.display().to_string(),
        rows_read: stats.rows_read,
        rows_scored,
        rows_rejected: stats.rows_rejected
            + matches!(result, Err(PipelineError::BadRow { .. })) as u64,
        nan_predictions: stats.workers.nan_predictions,
        errors_file: cfg
            .errors
            .as_ref()
            .filter(|_| {
                stats.rows_rejected > 0
                    && matches!(result, Ok(()) | Err(PipelineError::TooManyBadRows { .. }))
            })
            .map(|e| e.path.display().to_string()),
        wall_s,
        rows_per_s: rows_scored as f64 / wall_s.max(1e-9),
        model_load_s: models.members.iter().map(|m| m.model.compile_s).sum(),
        read_s: stats.read_s,
        score_s: stats.workers.score_s,
        write_s: stats.write_s,
        batch_latency: summary::latency(&stats.workers.batch_s),
        cpu_s,
        cpu_utilisation: cpu_s / (wall_s * cfg.threads as f64).max(1e-9),
        peak_rss_mib,
        read_bytes: summary::bytes_read()
            .zip(read_at_start)
            .map(|(now, start)| now.saturating_sub(start)),
        threads: cfg.threads,
        batch_size: cfg.batch_size,
        cost: cfg
            .price_per_hour
            .map(|p| summary::cost(p, wall_s, rows_scored)),
    };
    emit(&summary, &cfg.summary, cfg.summary_json.as_deref())?;
    match result {
        Ok(()) => Ok(Some(summary)),
        Err(e @ (PipelineError::BadRow { .. } | PipelineError::TooManyBadRows { .. })) => {
            Err(CliError::new(ExitCode::TooManyBadRows, e))
        }
        Err(e @ PipelineError::Empty) => Err(CliError::new(ExitCode::Validation, e)),
        Err(PipelineError::Interrupted(sig)) => Err(CliError::new(
            ExitCode::Signal(sig),
            PipelineError::Interrupted(sig),
        )),
        Err(e) => Err(CliError::new(ExitCode::Failure, e)),
    }
}

fn emit(summary: &Summary, to: &SummaryTo, json: Option<&std::path::Path>) -> Result<(), CliError> {
    let text = summary::render_text(summary);
    match to {
        SummaryTo::Stderr => eprint!("{text}"),
        SummaryTo::Stdout => print!("{text}"),
        SummaryTo::Nowhere => {}
    }
    if let Some(path) = json {
        let body = serde_json::to_string_pretty(summary)
            .context("serialising the summary")
            .exit(ExitCode::Failure)?;
        std::fs::write(path, body + "\n")
            .with_context(|| format!("writing the summary to {}", path.display()))
            .exit(ExitCode::Failure)?;
    }
    Ok(())
}
