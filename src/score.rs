//! `batchinfer score`: everything is opened and checked before the first batch
//! (model, schema, mapping, output), then the pipeline runs, then the summary.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::Context;

use crate::config::{ScoreConfig, SummaryTo};
use crate::exit::{CliError, ExitCode, WithExit};
use crate::interrupt::Interrupt;
use crate::lock;
use crate::output_plan::{directory_plan, file_plan, part_plans, DirectoryPlan};
use crate::parts;
use crate::pipeline::{Pipeline, PipelineError};
use crate::prepare::{prepare, Prepared};
use crate::progress::Progress;
use crate::rejects::{self, OnError};
use crate::sink::{self, OutputKind};
use crate::source::Pruned;
use crate::summary::{self, PartsSummary, Summary};

/// Runs the job; the summary, or None after `--check`.
pub fn run(cfg: ScoreConfig) -> Result<Option<Summary>, CliError> {
    let started = Instant::now();
    // CPU time of this run only: process start-up (loading the binary) is not the job's.
    let (cpu_at_start, _) = summary::process_usage();
    let read_at_start = summary::bytes_read();
    let run_start = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let inputs: Vec<String> = cfg.inputs.iter().map(|f| f.display()).collect();
    let directory = cfg.output.kind == OutputKind::Directory;

    cfg.output.check_free().exit(ExitCode::Usage)?;
    if let Some(errors) = &cfg.errors {
        errors.check_free().exit(ExitCode::Usage)?;
    }
    // Held until the run ends: one run per output file, or per shard of a directory.
    let lock_on = match cfg.output.kind {
        OutputKind::Stdout => None,
        OutputKind::Directory => {
            std::fs::create_dir_all(&cfg.output.path)
                .with_context(|| {
                    format!(
                        "cannot create the output directory {}; check that its parent exists and is writable",
                        cfg.output.path.display()
                    )
                })
                .exit(ExitCode::Usage)?;
            Some(parts::manifest_path(&cfg.output.path, cfg.shard))
        }
        _ => Some(cfg.output.path.clone()),
    };
    let _lock = match lock_on {
        None => None,
        Some(path) => {
            let held = lock::acquire(&path).map_err(|e| match e {
                e @ lock::LockError::Held { .. } => CliError::new(ExitCode::Locked, e),
                lock::LockError::Io(e) => CliError::new(ExitCode::Usage, e),
            })?;
            if !directory {
                lock::remove_leftovers(&path);
            }
            Some(held)
        }
    };
    let interrupt = Interrupt::install()
        .context("installing signal handlers")
        .exit(ExitCode::Failure)?;
    // A rerun of a completed directory job says so, without the mapping plan.
    let rerun = directory && parts::looks_complete(&cfg.output.path, cfg.shard);
    let log_plan = !cfg.quiet && !rerun;
    let prepared = prepare(
        &cfg.models,
        cfg.inputs.clone(),
        cfg.csv.clone(),
        &cfg.select,
        log_plan,
    )?;
    let kept_fields = prepared.kept_fields();
    let out_schema = sink::output_schema(&kept_fields, prepared.models.output_fields())
        .exit(ExitCode::Validation)?;
    if matches!(cfg.output.kind, OutputKind::Csv | OutputKind::Stdout) {
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
    if !cfg.select.is_empty() {
        // Which rows these are: the filter, derived columns, sample and limit.
        metadata.push((
            "batchinfer.selection".to_string(),
            serde_json::to_string(&cfg.select).unwrap_or_default(),
        ));
    }
    if cfg.check {
        let models: Vec<String> = prepared
            .models
            .members
            .iter()
            .map(|m| format!("{} ({} output columns)", m.label(), m.model.outputs.len()))
            .collect();
        let parts = if directory {
            format!(
                " ({} part file(s) for shard {})",
                part_plans(&cfg, &prepared).len(),
                cfg.shard
            )
        } else {
            String::new()
        };
        println!(
            "check passed: {} input file(s), {}, output {}{parts}; nothing was scored",
            inputs.len(),
            models.join(", "),
            cfg.output.path.display()
        );
        return Ok(None);
    }
    // Rejected rows go to the error file, or a directory output's _errors/.
    let error_schema =
        matches!(cfg.on_error, OnError::Skip { .. }).then(|| rejects::error_schema(&kept_fields));
    let shard_text = (cfg.shard.count > 1).then(|| cfg.shard.to_string());
    let plan = if directory {
        match directory_plan(&cfg, &prepared, &out_schema, error_schema.clone(), metadata)? {
            DirectoryPlan::Run(plan) => plan,
            DirectoryPlan::Complete(manifest) => {
                let summary = already_complete(&cfg, &prepared, &manifest, inputs, started);
                emit(&summary, &cfg.summary, cfg.summary_json.as_deref())?;
                return Ok(Some(summary));
            }
        }
    } else {
        file_plan(
            &cfg,
            &prepared,
            &out_schema,
            error_schema.as_ref(),
            &metadata,
        )?
    };

    let Prepared {
        models,
        dataset,
        projection,
        keep,
        selection,
        ..
    } = prepared;
    let models = Arc::new(models);
    // A filter or sample may select nothing; a shard may have nothing left to do.
    let allow_empty = selection.drops_rows() || (directory && dataset.total_rows != Some(0));
    let pruned = dataset.pruned;
    let pipeline = Pipeline {
        progress: Progress::new(plan.rows, cfg.quiet, cfg.progress_every),
        dataset,
        projection,
        models: models.clone(),
        keep,
        selection,
        out_schema,
        segments: plan.segments,
        destination: plan.destination,
        on_error: cfg.on_error,
        error_schema,
        prior_rejected: plan.prior_rejected,
        prior_read: plan.prior_read,
        allow_empty,
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
    let kept_errors = stats.rows_rejected > 0
        && matches!(result, Ok(()) | Err(PipelineError::TooManyBadRows { .. }));
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
        shard: shard_text,
        parts: plan.parts.map(|mut p| {
            // What the manifest now lists as done (a failed run stops midway).
            if let Ok(m) = parts::read_manifest(&parts::manifest_path(&cfg.output.path, cfg.shard))
            {
                let done = m.parts.iter().filter(|p| p.done).count();
                p.written = done.saturating_sub(p.already_done);
            }
            p
        }),
        rows_read: stats.rows_read,
        rows_filtered: if result.is_ok() {
            stats
                .rows_read
                .saturating_sub(stats.rows_written + stats.rows_rejected)
        } else {
            0
        },
        skipped: (pruned != Pruned::default()).then_some(pruned),
        rows_scored,
        rows_rejected: stats.rows_rejected
            + matches!(result, Err(PipelineError::BadRow { .. })) as u64,
        nan_predictions: stats.workers.nan_predictions,
        errors_file: match &cfg.errors {
            Some(e) => kept_errors.then(|| e.path.display().to_string()),
            None if directory => {
                kept_errors.then(|| cfg.output.path.join("_errors").display().to_string())
            }
            None => None,
        },
        wall_s,
        rows_per_s: rows_scored as f64 / wall_s.max(1e-9),
        model_load_s: models.load_s(),
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

/// A directory job this shard already completed: says so, and the summary of a
/// run that did nothing.
fn already_complete(
    cfg: &ScoreConfig,
    prepared: &Prepared,
    manifest: &parts::Manifest,
    inputs: Vec<String>,
    started: Instant,
) -> Summary {
    let shard = (cfg.shard.count > 1).then(|| cfg.shard.to_string());
    let rows = manifest.rows_written();
    let text = format!(
        "batchinfer: {} is already complete{} ({} parts, {rows} rows, finished {}); nothing to do. Pass --overwrite to score it again\n",
        cfg.output.path.display(),
        shard.as_ref().map(|s| format!(" for shard {s}")).unwrap_or_default(),
        manifest.parts.len(),
        manifest.finished.as_deref().unwrap_or("?")
    );
    crate::log::event(
        "info",
        "already_complete",
        serde_json::json!({
            "output": cfg.output.path.display().to_string(),
            "shard": shard,
            "parts": manifest.parts.len(),
            "rows": rows,
            "finished": manifest.finished,
        }),
        &text,
    );
    Summary {
        status: "already complete".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        model: prepared.models.paths(),
        model_sha256: prepared.models.sha256s(),
        models: summary::model_summaries(&prepared.models, &[], 0, cfg.threads),
        inputs,
        output: cfg.output.path.display().to_string(),
        shard,
        parts: Some(PartsSummary {
            total: manifest.parts.len(),
            written: 0,
            already_done: manifest.parts.len(),
        }),
        wall_s: started.elapsed().as_secs_f64(),
        threads: cfg.threads,
        batch_size: cfg.batch_size,
        ..Default::default()
    }
}

fn emit(summary: &Summary, to: &SummaryTo, json: Option<&std::path::Path>) -> Result<(), CliError> {
    let text = if crate::log::is_json() {
        crate::log::json_line("info", "summary", summary) + "\n"
    } else {
        summary::render_text(summary)
    };
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
