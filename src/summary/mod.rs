//! The run summary: measured values in a serialisable struct, rendered by pure
//! functions as text (stderr, or stdout with `--summary -`) and as JSON
//! (`--summary-json`). Field names carry their units.

use std::fmt::Write;

use serde::Serialize;

use crate::model::set::ModelSet;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// Nearest-rank percentiles of batch latencies.
pub fn latency(batch_s: &[f64]) -> Latency {
    let mut v: Vec<f64> = batch_s.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        if v.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
        v[rank.min(v.len()) - 1] * 1000.0
    };
    Latency {
        p50_ms: pct(50.0),
        p95_ms: pct(95.0),
        p99_ms: pct(99.0),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub price_per_hour_usd: f64,
    pub run_usd: f64,
    pub usd_per_million_rows: Option<f64>,
}

/// Cost of a run at an hourly machine price.
pub fn cost(price_per_hour_usd: f64, wall_s: f64, rows: u64) -> Cost {
    let run_usd = price_per_hour_usd * wall_s / 3600.0;
    Cost {
        price_per_hour_usd,
        run_usd,
        usd_per_million_rows: (rows > 0).then(|| run_usd * 1e6 / rows as f64),
    }
}

/// One model's part of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    /// Null for a single model given without a name.
    pub name: Option<String>,
    pub path: String,
    pub sha256: String,
    pub load_s: f64,
    /// Seconds workers spent in this model, summed over workers.
    pub score_s: f64,
    /// This model's fraction of all scoring time.
    pub score_share: f64,
    /// Rows/s this model alone sustains on the run's threads, scoring only.
    pub rows_per_s: f64,
}

/// Each model's load time, scoring time and rate; `model_s` as the workers measured it.
pub fn model_summaries(
    models: &ModelSet,
    model_s: &[f64],
    rows: u64,
    threads: usize,
) -> Vec<ModelSummary> {
    let total: f64 = model_s.iter().sum();
    models
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let score_s = model_s.get(i).copied().unwrap_or(0.0);
            ModelSummary {
                name: m.name.clone(),
                path: m.model.path.display().to_string(),
                sha256: m.model.sha256.clone(),
                load_s: m.model.compile_s,
                score_s,
                score_share: if total > 0.0 { score_s / total } else { 0.0 },
                rows_per_s: if score_s > 0.0 {
                    rows as f64 * threads as f64 / score_s
                } else {
                    0.0
                },
            }
        })
        .collect()
}

/// A directory output's parts, for this shard.
#[derive(Debug, Clone, Serialize)]
pub struct PartsSummary {
    pub total: usize,
    /// Written by this run.
    pub written: usize,
    /// Found complete from an earlier run (`--resume`, or a completed job rerun).
    pub already_done: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub status: String,
    pub tool_version: String,
    /// The model's path; with several models, `NAME=PATH` items joined by ", ".
    pub model: String,
    /// The model's SHA-256; with several models, `NAME=SHA256` items joined by ",".
    pub model_sha256: String,
    /// Every model with its own load time, scoring time and rate.
    pub models: Vec<ModelSummary>,
    pub inputs: Vec<String>,
    pub output: String,
    /// `I/N` when the run is one shard of several.
    pub shard: Option<String>,
    /// Directory outputs: the parts of this shard.
    pub parts: Option<PartsSummary>,
    pub rows_read: u64,
    /// Rows read that the selection (--filter, --sql, --sample, --limit) left out.
    pub rows_filtered: u64,
    /// What the filter kept from being read at all (files, row groups).
    pub skipped: Option<crate::source::Pruned>,
    pub rows_scored: u64,
    pub rows_rejected: u64,
    pub nan_predictions: u64,
    /// The error file, when rows were set aside (`--on-error skip`).
    pub errors_file: Option<String>,
    pub wall_s: f64,
    pub rows_per_s: f64,
    pub model_load_s: f64,
    pub read_s: f64,
    pub score_s: f64,
    pub write_s: f64,
    pub batch_latency: Latency,
    pub cpu_s: f64,
    pub cpu_utilisation: f64,
    pub peak_rss_mib: f64,
    /// Bytes this run read from files (inputs and models; Linux `rchar`), null
    /// where the platform does not say.
    pub read_bytes: Option<u64>,
    /// Bytes fetched from object storage (inputs and models in buckets).
    pub fetched_bytes: u64,
    pub threads: usize,
    pub batch_size: usize,
    pub cost: Option<Cost>,
    /// What the models were fed and predicted, column by column (docs/reference.md,
    /// "Profiles and drift"); a later run's `--baseline`.
    pub profile: Option<crate::profile::Profile>,
    /// With `--baseline`: the comparison.
    pub drift: Option<DriftSummary>,
}

/// The comparison of a run with its baseline.
#[derive(Debug, Clone, Serialize)]
pub struct DriftSummary {
    pub baseline: String,
    pub on_drift: String,
    /// The thresholds for every column (null: that check is off); per-column
    /// overrides are in the job's options.
    pub thresholds: std::collections::BTreeMap<String, Option<f64>>,
    /// Whether any figure was over its threshold.
    pub breached: bool,
    #[serde(flatten)]
    pub checked: crate::pipeline::drift::Checked,
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Drift notes the text summary shows (the JSON has them all).
const NOTES_SHOWN: usize = 5;

/// The human-readable summary.
#[allow(clippy::too_many_lines)] // one line of the text summary per field, in the order shown
pub fn render_text(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "batchinfer {} summary ({})", s.tool_version, s.status);
    match s.models.as_slice() {
        [m] if m.name.is_none() => {
            let _ = writeln!(
                o,
                "  model            {} (sha256 {})",
                m.path,
                &m.sha256[..16]
            );
        }
        models => {
            for m in models {
                let _ = writeln!(
                    o,
                    "  model {:<10} {} (sha256 {}): load {:.1} ms, score {:.3} s ({:.0}% of scoring), {:.0} rows/s",
                    m.name.as_deref().unwrap_or(""),
                    m.path,
                    &m.sha256[..16],
                    m.load_s * 1000.0,
                    m.score_s,
                    m.score_share * 100.0,
                    m.rows_per_s
                );
            }
        }
    }
    let _ = writeln!(o, "  output           {}", s.output);
    if let Some(shard) = &s.shard {
        let _ = writeln!(o, "  shard            {shard}");
    }
    if let Some(p) = &s.parts {
        let _ = writeln!(
            o,
            "  parts            {} written, {} already done, {} in all",
            p.written, p.already_done, p.total
        );
    }
    if let Some(p) = &s.skipped {
        let _ = writeln!(
            o,
            "  not read         {} file(s), {} row group(s) ({} rows) ruled out by the filter",
            p.files,
            p.row_groups,
            thousands(p.rows)
        );
    }
    let filtered = if s.rows_filtered > 0 {
        format!("{} filtered out, ", thousands(s.rows_filtered))
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "  rows             {} read, {filtered}{} scored, {} rejected",
        thousands(s.rows_read),
        thousands(s.rows_scored),
        thousands(s.rows_rejected)
    );
    if let Some(f) = &s.errors_file {
        let _ = writeln!(o, "  rejected rows    {f}");
    }
    if s.nan_predictions > 0 {
        let _ = writeln!(o, "  NaN predictions  {}", thousands(s.nan_predictions));
    }
    let _ = writeln!(
        o,
        "  wall time        {:.3} s  ({:.0} rows/s)",
        s.wall_s, s.rows_per_s
    );
    let _ = writeln!(o, "  time split       model load {:.3} s, read {:.3} s, score {:.3} s (all workers), write {:.3} s", s.model_load_s, s.read_s, s.score_s, s.write_s);
    let _ = writeln!(
        o,
        "  batch latency    p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        s.batch_latency.p50_ms, s.batch_latency.p95_ms, s.batch_latency.p99_ms
    );
    let _ = writeln!(
        o,
        "  cpu              {:.3} s, {:.0}% of {} thread(s)",
        s.cpu_s,
        s.cpu_utilisation * 100.0,
        s.threads
    );
    let _ = writeln!(o, "  peak memory      {:.1} MiB", s.peak_rss_mib);
    if let Some(b) = s.read_bytes {
        let _ = writeln!(o, "  read from files  {:.1} MiB", b as f64 / 1048576.0);
    }
    if s.fetched_bytes > 0 {
        let _ = writeln!(
            o,
            "  fetched          {:.1} MiB from object storage",
            s.fetched_bytes as f64 / 1048576.0
        );
    }
    let _ = writeln!(
        o,
        "  settings         {} threads, batch size {}",
        s.threads, s.batch_size
    );
    if let Some(p) = &s.profile {
        for (i, line) in p.text_lines().iter().enumerate() {
            let label = if i == 0 { "profile" } else { "" };
            let _ = writeln!(o, "  {label:<16} {line}");
        }
    }
    if let Some(d) = &s.drift {
        let verdict = match (d.breached, d.on_drift.as_str()) {
            (false, _) => "no column past its threshold".to_string(),
            (true, "warn") => format!(
                "{} breach(es), committed (--on-drift warn)",
                d.checked.findings.len()
            ),
            (true, _) => format!(
                "{} breach(es), nothing committed (--on-drift fail)",
                d.checked.findings.len()
            ),
        };
        let _ = writeln!(o, "  drift            against {}: {verdict}", d.baseline);
        for f in &d.checked.findings {
            let _ = writeln!(o, "                   {}", f.line());
        }
        // Many small parts can make many notes: the first few, and the count.
        for n in d.checked.notes.iter().take(NOTES_SHOWN) {
            let _ = writeln!(o, "                   note: {n}");
        }
        if d.checked.notes.len() > NOTES_SHOWN {
            let _ = writeln!(
                o,
                "                   and {} more notes in --summary-json",
                d.checked.notes.len() - NOTES_SHOWN
            );
        }
    }
    match &s.cost {
        Some(c) => {
            let per_m = c
                .usd_per_million_rows
                .map(|v| format!("${v:.6} per million rows"))
                .unwrap_or_else(|| "no rows".into());
            let _ = writeln!(
                o,
                "  cost             ${:.6} at ${}/h; {}",
                c.run_usd, c.price_per_hour_usd, per_m
            );
        }
        None => {
            let _ = writeln!(o, "  cost             pass --price-per-hour USD (or BATCHINFER_PRICE_PER_HOUR) to see it");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(|i| i as f64 / 1000.0).collect();
        let l = latency(&v);
        assert_eq!((l.p50_ms, l.p95_ms, l.p99_ms), (50.0, 95.0, 99.0));
        assert_eq!(latency(&[]).p99_ms, 0.0);
    }

    #[test]
    fn cost_per_million_rows() {
        let c = cost(3.6, 10.0, 2_000_000);
        assert!((c.run_usd - 0.01).abs() < 1e-12);
        assert!((c.usd_per_million_rows.unwrap() - 0.005).abs() < 1e-12);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }
}
