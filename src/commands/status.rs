//! `batchinfer status OUT`: which shards of a directory output are complete, from
//! their manifests and `_SUCCESS` markers. Exit 0 when every shard is complete,
//! 1 otherwise, so a scheduler (an Airflow sensor, a shell loop) can wait on it.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;

use crate::exit::{CliError, ExitCode, WithExit};
use crate::sink::outdir::OutDir;
use crate::sink::parts::{read_manifest, success_name};

#[derive(Debug, Serialize)]
pub struct ShardStatus {
    pub shard: String,
    /// Its manifest says complete, its `_SUCCESS` marker is there, and every part
    /// it lists is there with the size it was committed with.
    pub complete: bool,
    /// A part listed as done that is missing or changed (deleted by hand, say).
    pub damaged: Option<String>,
    pub parts_done: usize,
    pub parts: usize,
    pub rows_written: u64,
    pub rows_rejected: u64,
    pub started: String,
    pub finished: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub output: String,
    /// Shards the job was split into.
    pub shards: u32,
    pub complete: bool,
    /// Shards with no manifest yet (not started, or started elsewhere and not begun).
    pub missing: Vec<u32>,
    pub found: Vec<ShardStatus>,
}

/// The status of the directory output `dir` (a path, or a prefix URL).
pub fn status(dir: &str) -> Result<Status, CliError> {
    let dir = OutDir::parse(dir).exit(ExitCode::Usage)?;
    let names = dir
        .names()
        .map_err(|e| {
            e.context(format!(
                "cannot list {}; is it a batchinfer directory output?",
                dir.display()
            ))
        })
        .exit(ExitCode::Usage)?;
    let mut manifests = vec![];
    for name in names {
        if name.starts_with("_manifest") && name.ends_with(".json") {
            manifests.push(read_manifest(&dir, &name).exit(ExitCode::Failure)?);
        }
    }
    if manifests.is_empty() {
        return Err(CliError::new(
            ExitCode::Usage,
            anyhow::anyhow!(
                "{} holds no batchinfer manifest: no run has started writing there",
                dir.display()
            ),
        ));
    }
    manifests.sort_by_key(|m| m.job.shard.index);
    let count = manifests[0].job.shard.count;
    if let Some(other) = manifests.iter().find(|m| m.job.shard.count != count) {
        return Err(CliError::new(
            ExitCode::Failure,
            anyhow::anyhow!(
                "{} mixes shards of a {count}-way and a {}-way split; remove the older run",
                dir.display(),
                other.job.shard.count
            ),
        ));
    }
    let mut marked = vec![];
    for m in &manifests {
        marked.push(
            dir.exists(&success_name(m.job.shard))
                .exit(ExitCode::Failure)?,
        );
    }
    let found: Vec<ShardStatus> = manifests
        .iter()
        .zip(marked)
        .map(|(m, marked)| (m, marked, m.damage(&dir)))
        .map(|(m, marked, damaged)| ShardStatus {
            shard: m.job.shard.to_string(),
            complete: m.complete && marked && damaged.is_none(),
            damaged,
            parts_done: m.parts.iter().filter(|p| p.done).count(),
            parts: m.parts.len(),
            rows_written: m.rows_written(),
            rows_rejected: m.parts.iter().map(|p| p.rows_rejected).sum(),
            started: m.started.clone(),
            finished: m.finished.clone(),
        })
        .collect();
    let missing: Vec<u32> = (0..count)
        .filter(|i| !manifests.iter().any(|m| m.job.shard.index == *i))
        .collect();
    Ok(Status {
        output: dir.display(),
        shards: count,
        complete: missing.is_empty() && found.iter().all(|s| s.complete),
        missing,
        found,
    })
}

pub fn render(s: &Status) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header([
        "shard",
        "state",
        "parts done",
        "rows written",
        "rows rejected",
        "started",
        "finished",
    ]);
    for f in &s.found {
        t.add_row([
            f.shard.clone(),
            match (&f.damaged, f.complete) {
                (Some(_), _) => "damaged",
                (None, true) => "complete",
                (None, false) => "unfinished",
            }
            .to_string(),
            format!("{}/{}", f.parts_done, f.parts),
            f.rows_written.to_string(),
            f.rows_rejected.to_string(),
            f.started.clone(),
            f.finished.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    for i in &s.missing {
        t.add_row([
            format!("{i}/{}", s.shards),
            "not started".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
    }
    let done = s.found.iter().filter(|f| f.complete).count();
    let damage: String = s
        .found
        .iter()
        .filter_map(|f| {
            f.damaged
                .as_ref()
                .map(|d| format!("shard {}: {d}; `--resume` scores it again\n", f.shard))
        })
        .collect();
    format!(
        "{}: {} of {} shard(s) complete{}\n{t}\n{damage}",
        s.output,
        done,
        s.shards,
        if s.complete { "" } else { " (exit 1)" }
    )
}
