//! `batchinfer bench`: how fast a model scores on this machine across batch sizes
//! and thread counts, so a user can choose settings and a machine size.
//!
//! Up to `--rows` rows are read into memory first, so the numbers are those of
//! tensor building, the model and output conversion (reading and writing files
//! are measured by every `score` run's summary). Each setting is run `--repeat`
//! times and the median is reported.

use std::time::Instant;

use anyhow::Context;
use arrow::compute::concat_batches;
use arrow::record_batch::RecordBatch;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use rayon::prelude::*;
use serde::Serialize;

use crate::cli::config::{csv_options, model_specs};
use crate::cli::BenchArgs;
use crate::commands::prepare::{prepare, Prepared};
use crate::exit::{CliError, ExitCode, WithExit};
use crate::model::set::ModelSet;
use crate::select::SelectSpec;
use crate::source::expand_inputs;
use crate::summary::{model_summaries, ModelSummary};
use crate::sys::usage::process_usage;

/// One measured setting.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub threads: usize,
    pub batch_size: usize,
    pub rows: u64,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub rows_per_s: f64,
    pub rows_per_cpu_s: f64,
    pub usd_per_million_rows: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// The model's path; with several models, `NAME=PATH` items joined by ", ".
    pub model: String,
    pub model_sha256: String,
    /// Load and optimisation, all models.
    pub model_load_s: f64,
    /// Each model's share of scoring at the recommended setting (several models
    /// score every batch together, as in `score`).
    pub models: Vec<ModelSummary>,
    pub peak_rss_mib: f64,
    pub results: Vec<BenchRow>,
    pub recommended: Option<BenchRow>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One pass over the data at one setting.
struct Measured {
    wall_s: f64,
    cpu_s: f64,
    /// Seconds in each model, summed over workers.
    model_s: Vec<f64>,
}

/// Scores `data` once in batches of `batch_size` on `pool` with every model.
fn run_once(
    pool: &rayon::ThreadPool,
    models: &ModelSet,
    data: &RecordBatch,
    batch_size: usize,
) -> anyhow::Result<Measured> {
    let n = data.num_rows();
    let starts: Vec<usize> = (0..n).step_by(batch_size).collect();
    let model_s = std::sync::Mutex::new(vec![0.0; models.members.len()]);
    let (cpu0, _) = process_usage();
    let t0 = Instant::now();
    pool.install(|| {
        starts.par_iter().try_for_each_init(
            || models.sessions(),
            |sessions, &start| -> anyhow::Result<()> {
                let sessions = sessions.as_mut().map_err(|e| anyhow::anyhow!("{e:#}"))?;
                let batch = data.slice(start, batch_size.min(n - start));
                let scores = models
                    .score(sessions, &batch)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let mut total = model_s.lock().unwrap_or_else(|p| p.into_inner());
                total
                    .iter_mut()
                    .zip(scores.model_s)
                    .for_each(|(t, s)| *t += s);
                Ok(())
            },
        )
    })?;
    let wall_s = t0.elapsed().as_secs_f64();
    let (cpu1, _) = process_usage();
    Ok(Measured {
        wall_s,
        cpu_s: cpu1 - cpu0,
        model_s: model_s.into_inner().unwrap_or_else(|p| p.into_inner()),
    })
}

#[allow(clippy::too_many_lines)] // the measurement loop and its report fields in one place, so every field is seen measured
pub fn run(args: &BenchArgs) -> Result<BenchReport, CliError> {
    let files =
        expand_inputs(&args.input.input, args.input.csv.input_format).exit(ExitCode::Usage)?;
    let specs = model_specs(&args.model, &args.mapping).exit(ExitCode::Usage)?;
    let csv = csv_options(&args.input.csv).exit(ExitCode::Usage)?;
    let Prepared {
        models,
        mut dataset,
        projection,
        projected,
        ..
    } = prepare(&specs, files, csv, &SelectSpec::default(), false)?;

    // Read up to --rows rows into one in-memory batch.
    let mut batches = vec![];
    let mut rows = 0usize;
    'files: for ix in 0..dataset.files.len() {
        for b in dataset
            .read_file(ix, &projection, 65_536)
            .exit(ExitCode::Failure)?
        {
            let b = b.exit(ExitCode::Failure)?;
            rows += b.num_rows();
            batches.push(b);
            if rows >= args.rows {
                break 'files;
            }
        }
    }
    let data = concat_batches(&projected, &batches)
        .context("collecting the input")
        .exit(ExitCode::Failure)?;
    let data = data.slice(0, data.num_rows().min(args.rows));
    drop(batches);
    if data.num_rows() == 0 {
        return Err(CliError::new(
            ExitCode::Validation,
            anyhow::anyhow!("the input has no rows to benchmark"),
        ));
    }

    let mut results = vec![];
    let mut shares = vec![];
    for &threads in &args.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .exit(ExitCode::Failure)?;
        for &batch_size in &args.batch_size {
            run_once(&pool, &models, &data, batch_size).exit(ExitCode::Failure)?; // warm-up
            let mut walls = vec![];
            let mut cpus = vec![];
            let mut model_s = vec![0.0; models.members.len()];
            for _ in 0..args.repeat.max(1) {
                let m = run_once(&pool, &models, &data, batch_size).exit(ExitCode::Failure)?;
                walls.push(m.wall_s);
                cpus.push(m.cpu_s);
                model_s.iter_mut().zip(m.model_s).for_each(|(t, s)| *t += s);
            }
            // Per model: the mean over the repeats.
            shares.push(
                model_s
                    .iter()
                    .map(|s| s / args.repeat.max(1) as f64)
                    .collect::<Vec<f64>>(),
            );
            let (wall_s, cpu_s) = (median(walls), median(cpus));
            let n = data.num_rows() as f64;
            results.push(BenchRow {
                threads,
                batch_size,
                rows: data.num_rows() as u64,
                wall_s,
                cpu_s,
                rows_per_s: n / wall_s.max(1e-12),
                rows_per_cpu_s: n / cpu_s.max(1e-12),
                usd_per_million_rows: args.price_per_hour.map(|p| p * wall_s / 3600.0 * 1e6 / n),
            });
        }
    }
    let best =
        (0..results.len()).max_by(|&a, &b| results[a].rows_per_s.total_cmp(&results[b].rows_per_s));
    let recommended = best.map(|i| results[i].clone());
    let per_model = match best {
        Some(i) => model_summaries(&models, &shares[i], results[i].rows, results[i].threads),
        None => model_summaries(&models, &[], 0, 1),
    };
    Ok(BenchReport {
        model: models.paths(),
        model_sha256: models.sha256s(),
        model_load_s: models.load_s(),
        models: per_model,
        peak_rss_mib: process_usage().1,
        results,
        recommended,
    })
}

/// The report as a table.
pub fn render(r: &BenchReport) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header([
        "threads",
        "batch size",
        "rows/s",
        "rows per CPU-s",
        "wall s (median)",
        "$ per 1M rows",
    ]);
    for row in &r.results {
        t.add_row([
            row.threads.to_string(),
            row.batch_size.to_string(),
            format!("{:.0}", row.rows_per_s),
            format!("{:.0}", row.rows_per_cpu_s),
            format!("{:.4}", row.wall_s),
            row.usd_per_million_rows
                .map(|v| format!("{v:.6}"))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut out = format!(
        "model {} (load and optimise {:.1} ms), {} rows in memory\n",
        r.model,
        r.model_load_s * 1000.0,
        r.results.first().map(|x| x.rows).unwrap_or(0)
    );
    out.push_str(&t.to_string());
    out.push('\n');
    if r.models.len() > 1 {
        for m in &r.models {
            out.push_str(&format!(
                "model {}: {:.0}% of scoring at the recommended setting, {:.0} rows/s on its own (load {:.1} ms)\n",
                m.name.as_deref().unwrap_or(""),
                m.score_share * 100.0,
                m.rows_per_s,
                m.load_s * 1000.0
            ));
        }
    }
    if let Some(best) = &r.recommended {
        out.push_str(&format!(
            "recommended: --threads {} --batch-size {} ({:.0} rows/s); peak memory {:.1} MiB\n",
            best.threads, best.batch_size, best.rows_per_s, r.peak_rss_mib
        ));
    }
    out
}
