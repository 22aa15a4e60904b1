//! `batchinfer score`: everything is opened and checked before the first batch
//! (model, schema, mapping, output), then the pipeline runs, then the summary.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::Context;
use arrow::datatypes::SchemaRef;

use crate::cli::config::{ScoreConfig, SummaryTo};
use crate::commands::plan::{directory_plan, file_plan, part_plans, DirectoryPlan, Plan};
use crate::commands::prepare::{prepare, Prepared};
use crate::exit::{CliError, ExitCode, WithExit};
use crate::model::set::ModelSet;
use crate::pipeline::progress::Progress;
use crate::pipeline::rejects::{self, OnError};
use crate::pipeline::{Pipeline, PipelineError, PipelineStats};
use crate::profile::drift::DriftGuard;
use crate::profile::ProfilePlan;
use crate::sink::atomic::AtomicFile;
use crate::sink::clash::{self, Use};
use crate::sink::lock;
use crate::sink::parts;
use crate::sink::{self, OutputKind};
use crate::source::Pruned;
use crate::summary::{self, PartsSummary, Summary};
use crate::sys::interrupt::Interrupt;
use crate::sys::usage;

/// When and where the run started, for the summary's measurements.
struct Clock {
    started: Instant,
    /// CPU time of this run only: process start-up (loading the binary) is not the job's.
    cpu_at_start: f64,
    read_at_start: Option<u64>,
    /// RFC 3339, for the Parquet metadata.
    run_start: String,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            started: Instant::now(),
            cpu_at_start: usage::process_usage().0,
            read_at_start: usage::bytes_read(),
            run_start: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        }
    }
}

/// Runs the job; the summary, or None after `--check`.
pub fn run(cfg: ScoreConfig) -> Result<Option<Summary>, CliError> {
    let clock = Clock::start();
    check_paths(&cfg).exit(ExitCode::Usage)?;
    cfg.output.check_free().exit(ExitCode::Usage)?;
    if let Some(errors) = &cfg.errors {
        errors.check_free().exit(ExitCode::Usage)?;
    }
    // Created now, so that an unwritable summary path fails before scoring.
    let summary_file = match (&cfg.summary_json, cfg.check) {
        (Some(path), false) => {
            Some(open_summary(path, cfg.output.overwrite).exit(ExitCode::Usage)?)
        }
        _ => None,
    };
    let _lock = take_lock(&cfg)?;
    let interrupt = Interrupt::install()
        .context("installing signal handlers")
        .exit(ExitCode::Failure)?;
    // A rerun of a completed directory job says so, without the mapping plan.
    let directory = cfg.output.kind == OutputKind::Directory;
    let rerun = directory && parts::looks_complete(&cfg.output.dir(), cfg.shard);
    let prepared = prepare(
        &cfg.models,
        cfg.inputs.clone(),
        cfg.csv.clone(),
        &cfg.select,
        !cfg.quiet && !rerun,
    )?;
    let kept_fields = prepared.kept_fields();
    let out_schema = sink::output_schema(&kept_fields, prepared.models.output_fields())
        .exit(ExitCode::Validation)?;
    if matches!(cfg.output.kind, OutputKind::Csv | OutputKind::Stdout) {
        sink::check_csv_writable(&out_schema).exit(ExitCode::Usage)?;
    }
    // What the run profiles, and the baseline it is held to.
    let profiling = profile_plan(&cfg, &prepared)?;
    if cfg.check {
        return check_passed(&cfg, &prepared).map(|()| None);
    }
    // Rejected rows go to the error file, or a directory output's _errors/.
    let error_schema =
        matches!(cfg.on_error, OnError::Skip { .. }).then(|| rejects::error_schema(&kept_fields));
    let metadata = output_metadata(&cfg, &prepared, &clock.run_start);
    let plan = if directory {
        match directory_plan(&cfg, &prepared, &out_schema, error_schema.clone(), metadata)? {
            DirectoryPlan::Run(plan) => plan,
            DirectoryPlan::Complete(manifest) => {
                let summary = already_complete(&cfg, &prepared.models, &manifest, &clock);
                emit(&summary, &cfg.summary)?;
                write_json(&summary, summary_file)?;
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
    let parts_summary = plan.parts.clone();
    let schemas = (out_schema, error_schema);
    let (pipeline, models, pruned) = pipeline(&cfg, prepared, plan, schemas, profiling, interrupt);
    let (stats, result) = pipeline.run();
    let summary = summarize(
        &cfg,
        &models,
        parts_summary,
        pruned,
        &stats,
        &result,
        &clock,
    );
    emit(&summary, &cfg.summary)?;
    let left = stats
        .left_behind
        .unwrap_or_else(|| "nothing was written".into());
    finish(summary, summary_file, result.map_err(|e| failed(e, &left)))
}

/// Writes the summary file, last: its failure must not hide the run's own exit code.
fn finish(
    summary: Summary,
    summary_file: Option<SummaryFile>,
    outcome: Result<(), CliError>,
) -> Result<Option<Summary>, CliError> {
    match (write_json(&summary, summary_file), outcome) {
        (Ok(()), Ok(())) => Ok(Some(summary)),
        (Err(e), Ok(())) => Err(CliError::new(
            ExitCode::Failure,
            anyhow::anyhow!("the output was committed, but {e}"),
        )),
        (Err(e), Err(run)) => {
            crate::sys::log::warn(&format!("{e}"));
            Err(run)
        }
        (Ok(()), Err(run)) => Err(run),
    }
}

/// What the run profiles and, with `--baseline`, what it is held to: a baseline
/// without a column the run profiles is refused before scoring (exit 3).
fn profile_plan(
    cfg: &ScoreConfig,
    prepared: &Prepared,
) -> Result<(Arc<ProfilePlan>, Option<Arc<DriftGuard>>), CliError> {
    if !cfg.drift.profile {
        return Ok((Arc::new(ProfilePlan::default()), None));
    }
    let plan = ProfilePlan::new(
        &prepared.models,
        &prepared.projected,
        &prepared.models.output_fields(),
    );
    let Some(path) = &cfg.drift.baseline else {
        return Ok((Arc::new(plan), None));
    };
    let guard = DriftGuard {
        baseline: crate::profile::baseline::read(path).exit(ExitCode::Usage)?,
        path: path.display().to_string(),
        thresholds: cfg.drift.thresholds.clone(),
        on_drift: cfg.drift.on_drift,
    };
    let unmatched = guard.unmatched(&plan);
    if !unmatched.is_empty() {
        return Err(CliError::new(
            ExitCode::Validation,
            anyhow::anyhow!(
                "baseline {} does not match this run's columns: {}. Make the baseline with the same models and mapping (batchinfer profile), or check the mapping with `batchinfer inspect --baseline`",
                path.display(),
                unmatched.join(", ")
            ),
        ));
    }
    let unknown = guard.thresholds.unknown_columns(&plan);
    if !unknown.is_empty() {
        return Err(CliError::new(
            ExitCode::Usage,
            anyhow::anyhow!(
                "--max-drift names columns this run does not profile: {}",
                unknown.join(", ")
            ),
        ));
    }
    let plan = plan.with_baseline(&guard.baseline);
    Ok((Arc::new(plan), Some(Arc::new(guard))))
}

/// Takes the lock that makes this run the only one on its output (a directory
/// output: on this shard), creating the output's directory first.
fn take_lock(cfg: &ScoreConfig) -> Result<Option<Held>, CliError> {
    if let Some(url) = &cfg.output.remote {
        let directory = cfg.output.kind == OutputKind::Directory;
        // A directory output: one lock per shard, named after its manifest.
        let lock_on = match directory {
            true => url.with_key(format!("{}{}", url.key, parts::manifest_name(cfg.shard))),
            false => url.clone(),
        };
        let lease = crate::storage::lease::acquire(&lock_on, crate::storage::settings().lease)
            .map_err(lock_error)?;
        // Uploads a killed run left on this output: abort them (a lifecycle rule
        // on the bucket catches the rest). A directory output's parts: when opened.
        if !directory {
            if let Err(e) = crate::storage::upload::abort_leftovers(url) {
                crate::sys::log::warn(&format!("{e:#}"));
            }
        }
        return Ok(Some(Held::Lease(lease)));
    }
    let lock_on = match cfg.output.kind {
        OutputKind::Stdout | OutputKind::Discard => return Ok(None),
        OutputKind::Directory => {
            create_dir(&cfg.output.path)?;
            cfg.output.path.join(parts::manifest_name(cfg.shard))
        }
        _ => {
            let parent = cfg.output.path.parent();
            if let Some(parent) = parent.filter(|p| !p.as_os_str().is_empty()) {
                create_dir(parent)?;
            }
            cfg.output.path.clone()
        }
    };
    let held = lock::acquire(&lock_on).map_err(lock_error)?;
    if cfg.output.kind != OutputKind::Directory {
        lock::remove_leftovers(&lock_on);
    }
    Ok(Some(Held::File(held)))
}

/// The lock a run holds on its output until it ends.
#[allow(dead_code)] // Held for its Drop, which releases the lock.
enum Held {
    File(lock::OutputLock),
    Lease(crate::storage::lease::Lease),
}

fn lock_error(e: lock::LockError) -> CliError {
    match e {
        e @ lock::LockError::Held { .. } => CliError::new(ExitCode::Locked, e),
        lock::LockError::Io(e) => CliError::new(ExitCode::Usage, e),
    }
}

/// The Parquet key-value metadata: models, tool version, run start, selection.
fn output_metadata(
    cfg: &ScoreConfig,
    prepared: &Prepared,
    run_start: &str,
) -> Vec<(String, String)> {
    let mut metadata = prepared.models.metadata();
    metadata.extend([
        (
            "batchinfer.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("batchinfer.run_start".to_string(), run_start.to_string()),
    ]);
    if !cfg.select.is_empty() {
        // Which rows these are: the filter, derived columns, sample and limit.
        metadata.push((
            "batchinfer.selection".to_string(),
            serde_json::to_string(&cfg.select).unwrap_or_default(),
        ));
    }
    metadata
}

/// `--check`: says what would run, and stops.
fn check_passed(cfg: &ScoreConfig, prepared: &Prepared) -> Result<(), CliError> {
    let models: Vec<String> = prepared
        .models
        .members
        .iter()
        .map(|m| format!("{} ({} output columns)", m.label(), m.model.outputs.len()))
        .collect();
    let parts = if cfg.output.kind == OutputKind::Directory {
        format!(
            " ({} part file(s) for shard {})",
            part_plans(cfg, prepared).len(),
            cfg.shard
        )
    } else {
        String::new()
    };
    crate::sys::out::print(&format!(
        "check passed: {} input file(s), {}, output {}{parts}; nothing was scored\n",
        cfg.inputs.len(),
        models.join(", "),
        cfg.output.display()
    ))
    .context("writing to standard output")
    .exit(ExitCode::Failure)
}

/// The pipeline over what `prepare` opened and the plan decided.
fn pipeline(
    cfg: &ScoreConfig,
    prepared: Prepared,
    plan: Plan,
    (out_schema, error_schema): (SchemaRef, Option<SchemaRef>),
    (profile, drift): (Arc<ProfilePlan>, Option<Arc<DriftGuard>>),
    interrupt: Interrupt,
) -> (Pipeline, Arc<ModelSet>, Pruned) {
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
    let directory = cfg.output.kind == OutputKind::Directory;
    let allow_empty = selection.drops_rows() || (directory && dataset.total_rows != Some(0));
    let pruned = dataset.pruned;
    let dataset = dataset.with_decode_threads(cfg.threads);
    let pipeline = Pipeline {
        progress: Progress::new(plan.rows, cfg.quiet, cfg.progress_every),
        source: Box::new(dataset),
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
        profile,
        drift,
    };
    (pipeline, models, pruned)
}

/// The summary of a run, from what the pipeline measured.
fn summarize(
    cfg: &ScoreConfig,
    models: &ModelSet,
    parts: Option<PartsSummary>,
    pruned: Pruned,
    stats: &PipelineStats,
    result: &Result<(), PipelineError>,
    clock: &Clock,
) -> Summary {
    let wall_s = clock.started.elapsed().as_secs_f64();
    let (cpu_now, peak_rss_mib) = usage::process_usage();
    let cpu_s = (cpu_now - clock.cpu_at_start).max(0.0);
    let rows_scored = if result.is_ok() {
        stats.rows_written
    } else {
        0
    };
    let kept_errors = stats.rows_rejected > 0
        && matches!(result, Ok(()) | Err(PipelineError::TooManyBadRows { .. }));
    let directory = cfg.output.kind == OutputKind::Directory;
    Summary {
        status: match result {
            Ok(()) => "ok",
            Err(PipelineError::Interrupted(_)) => "interrupted",
            Err(PipelineError::Drift(_)) => "drift",
            Err(_) => "failed",
        }
        .into(),
        models: summary::model_summaries(models, &stats.workers.model_s, rows_scored, cfg.threads),
        parts: parts.map(|mut p| {
            // What the manifest now lists as done (a failed run stops midway).
            if let Ok(m) = parts::read_manifest(&cfg.output.dir(), &parts::manifest_name(cfg.shard))
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
            Some(e) => kept_errors.then(|| e.display()),
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
        read_bytes: usage::bytes_read()
            .zip(clock.read_at_start)
            .map(|(now, start)| now.saturating_sub(start)),
        fetched_bytes: crate::storage::read::fetched_bytes(),
        cost: cfg
            .price_per_hour
            .map(|p| summary::cost(p, wall_s, rows_scored)),
        profile: stats.profile.clone().filter(|_| cfg.drift.profile),
        drift: stats.drift.clone().map(|checked| summary::DriftSummary {
            baseline: cfg
                .drift
                .baseline
                .as_ref()
                .map(|b| b.display().to_string())
                .unwrap_or_default(),
            on_drift: cfg.drift.on_drift.name().into(),
            thresholds: cfg.drift.thresholds.shown(),
            breached: !checked.findings.is_empty(),
            checked,
        }),
        ..identity(cfg, models, wall_s)
    }
}

/// What every summary says of the job, whatever was measured.
fn identity(cfg: &ScoreConfig, models: &ModelSet, wall_s: f64) -> Summary {
    Summary {
        tool_version: env!("CARGO_PKG_VERSION").into(),
        model: models.paths(),
        model_sha256: models.sha256s(),
        models: summary::model_summaries(models, &[], 0, cfg.threads),
        inputs: cfg.inputs.iter().map(|f| f.display()).collect(),
        output: cfg.output.display(),
        shard: (cfg.shard.count > 1).then(|| cfg.shard.to_string()),
        wall_s,
        threads: cfg.threads,
        batch_size: cfg.batch_size,
        ..Default::default()
    }
}

/// A pipeline failure with its exit code, and what the output holds now.
fn failed(e: PipelineError, left: &str) -> CliError {
    let code = match &e {
        PipelineError::BadRow { .. }
        | PipelineError::TooManyBadRows { .. }
        | PipelineError::BadInput(_) => ExitCode::TooManyBadRows,
        PipelineError::Empty(_) => ExitCode::Validation,
        PipelineError::Drift(_) => ExitCode::Drift,
        PipelineError::Interrupted(sig) => ExitCode::Signal(*sig),
        PipelineError::Failed(_) => ExitCode::Failure,
    };
    let error = match e {
        // Keep the cause's chain (a closed stdout is recognised by it).
        PipelineError::Failed(inner) => inner.context(format!("the run failed; {left}")),
        other => anyhow::anyhow!("{other}; {left}"),
    };
    CliError::new(code, error)
}

/// The summary JSON's file, created before the run. It replaces an earlier run's
/// summary (a retry or a rerun writes its own), but nothing else unless `--overwrite`.
fn open_summary(path: &std::path::Path, overwrite: bool) -> anyhow::Result<SummaryFile> {
    let is_summary = |b: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(b)
            .ok()
            .is_some_and(|v| v.get("tool_version").is_some() && v.get("status").is_some())
    };
    let location = path
        .to_str()
        .map(crate::storage::Location::parse)
        .transpose()?;
    if let Some(crate::storage::Location::Object(url)) = location {
        let earlier = || crate::storage::read::read_all(&url).is_ok_and(|b| is_summary(&b));
        if !overwrite && crate::storage::upload::exists(&url)? && !earlier() {
            anyhow::bail!(
                "--summary-json {url} exists and is not a batchinfer summary; pass --overwrite to replace it, or choose another path"
            );
        }
        return Ok(SummaryFile::Object(url));
    }
    let earlier_summary = || std::fs::read(path).ok().is_some_and(|b| is_summary(&b));
    if path.exists() && !overwrite && !earlier_summary() {
        anyhow::bail!(
            "--summary-json {} exists and is not a batchinfer summary; pass --overwrite to replace it, or choose another path",
            path.display()
        );
    }
    Ok(SummaryFile::Local(
        AtomicFile::create(path, true).context("--summary-json")?,
    ))
}

/// Where the summary JSON goes: a local file (created before the run, so that an
/// unwritable path fails first), or an object written in one request at the end.
enum SummaryFile {
    Local(AtomicFile),
    Object(crate::storage::ObjectUrl),
}

/// Creates an output directory (and its parents), as Spark and pandas writers do.
fn create_dir(dir: &std::path::Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir)
        .with_context(|| {
            format!(
                "cannot create the output directory {}; check the path and its permissions",
                dir.display()
            )
        })
        .exit(ExitCode::Usage)
}

/// Every path the run reads against every path it writes (see `clash`).
fn check_paths(cfg: &ScoreConfig) -> anyhow::Result<()> {
    let mut reads: Vec<Use> = cfg
        .inputs
        .iter()
        .filter(|f| !f.is_stdin())
        .map(|f| Use::file("input", f.display()))
        .collect();
    reads.extend(cfg.models.iter().map(|m| Use::file("--model", &m.path)));
    reads.extend(cfg.job_file.iter().map(|j| Use::file("job file", j)));
    reads.extend(
        cfg.drift
            .baseline
            .iter()
            .map(|b| Use::file("--baseline", b)),
    );
    let mut writes = vec![];
    match cfg.output.kind {
        OutputKind::Stdout | OutputKind::Discard => {}
        OutputKind::Directory => {
            writes.push(Use::directory("--output", cfg.output.dir().display()))
        }
        _ if cfg.output.remote.is_some() => {
            writes.push(Use::file("--output", cfg.output.display()))
        }
        _ => {
            writes.push(Use::file("--output", &cfg.output.path));
            writes.push(Use::file(
                "the lock file of --output",
                lock::lock_path(&cfg.output.path),
            ));
        }
    }
    if let Some(e) = &cfg.errors {
        writes.push(Use::file("--errors", e.display()));
    }
    if let Some(j) = &cfg.summary_json {
        writes.push(Use::file("--summary-json", j));
    }
    clash::check(&reads, &writes)
}

/// A directory job this shard already completed: says so, and the summary of a
/// run that did nothing.
fn already_complete(
    cfg: &ScoreConfig,
    models: &ModelSet,
    manifest: &parts::Manifest,
    clock: &Clock,
) -> Summary {
    let shard = (cfg.shard.count > 1).then(|| cfg.shard.to_string());
    let rows = manifest.rows_written();
    let text = format!(
        "batchinfer: {} is already complete{} ({} parts, {rows} rows, finished {}); nothing to do. Pass --overwrite to score it again\n",
        cfg.output.display(),
        shard.as_ref().map(|s| format!(" for shard {s}")).unwrap_or_default(),
        manifest.parts.len(),
        manifest.finished.as_deref().unwrap_or("?")
    );
    crate::sys::log::event(
        "info",
        "already_complete",
        serde_json::json!({
            "output": cfg.output.display(),
            "shard": shard,
            "parts": manifest.parts.len(),
            "rows": rows,
            "finished": manifest.finished,
        }),
        &text,
    );
    Summary {
        status: "already complete".into(),
        parts: Some(PartsSummary {
            total: manifest.parts.len(),
            written: 0,
            already_done: manifest.parts.len(),
        }),
        ..identity(cfg, models, clock.started.elapsed().as_secs_f64())
    }
}

fn emit(summary: &Summary, to: &SummaryTo) -> Result<(), CliError> {
    let text = if crate::sys::log::is_json() {
        crate::sys::log::json_line("info", "summary", summary) + "\n"
    } else {
        summary::render_text(summary)
    };
    match to {
        SummaryTo::Stderr => eprint!("{text}"),
        SummaryTo::Stdout => crate::sys::out::print(&text)
            .context("writing the summary to standard output")
            .exit(ExitCode::Failure)?,
        SummaryTo::Nowhere => {}
    }
    Ok(())
}

/// Writes the summary JSON into the file opened before the run, and commits it.
fn write_json(summary: &Summary, file: Option<SummaryFile>) -> Result<(), CliError> {
    let Some(file) = file else {
        return Ok(());
    };
    let body = serde_json::to_string_pretty(summary)
        .context("serialising the summary")
        .exit(ExitCode::Failure)?
        + "\n";
    let (path, written) = match file {
        SummaryFile::Object(url) => (
            url.to_string(),
            crate::storage::upload::put(&url, body.into_bytes(), true),
        ),
        SummaryFile::Local(mut file) => {
            use std::io::Write;
            let path = file.path().display().to_string();
            let written = file
                .file()
                .write_all(body.as_bytes())
                .context("writing")
                .and_then(|()| file.commit());
            (path, written)
        }
    };
    written
        .with_context(|| format!("the summary could not be written to {path}"))
        .exit(ExitCode::Failure)
}
