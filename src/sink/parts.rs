//! Directory outputs: part files, a manifest, and a `_SUCCESS` marker written last.
//!
//! Each shard (the whole input when unsharded) owns its parts, its manifest
//! `_manifest[-shard-I-of-N].json` and its marker `_SUCCESS[-shard-I-of-N]`, so N
//! shards can write into one directory. A part is written under a temporary name
//! and renamed when complete, then the manifest is rewritten (atomically) to say
//! so. After a crash, `--resume` checks that the inputs, models and options are
//! those of the manifest and scores only the parts it does not list as done. A
//! completed shard run again does nothing, unless `--overwrite`.
//! Rows set aside by `--on-error skip` go to `_errors/<part name>`; names starting
//! with `_` or `.` are skipped by Spark, pandas and pyarrow dataset readers.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::pipeline::Destination;
use crate::sink::outdir::{Expect, OutDir, Version};
use crate::sink::shard::{PartPlan, Shard};
use crate::sink::{OutputKind, OutputTarget, Sink};
use crate::source::InputFile;

/// Bytes hashed at each end of an input for its fingerprint.
const FINGERPRINT_BYTES: u64 = 64 * 1024;

/// What makes two runs the same job: `--resume` goes on only when these match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobIdentity {
    pub tool_version: String,
    pub shard: Shard,
    pub inputs: Vec<InputPrint>,
    pub models: Vec<ModelPrint>,
    /// The options that shape the output (mapping, kept columns, bad-row policy, …).
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputPrint {
    pub path: String,
    pub size: u64,
    /// SHA-256 of the first and last 64 KiB (a Parquet file's footer is at its end).
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPrint {
    pub name: Option<String>,
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartRecord {
    #[serde(flatten)]
    pub plan: PartPlan,
    pub done: bool,
    pub rows_written: u64,
    pub rows_rejected: u64,
    /// Size of the committed part file (None in manifests of earlier versions).
    #[serde(default)]
    pub bytes: Option<u64>,
}

impl PartRecord {
    /// Why a part listed as done is not what the manifest says, if it is not.
    pub fn damage(&self, dir: &OutDir) -> Option<String> {
        if !self.done {
            return None;
        }
        match (dir.size(&self.plan.name), self.bytes) {
            (Err(e), _) => Some(format!(
                "part {} could not be checked ({e:#})",
                self.plan.name
            )),
            (Ok(None), _) => Some(format!(
                "part {} ({} rows) is listed as done but is missing",
                self.plan.name, self.rows_written
            )),
            (Ok(Some(size)), Some(bytes)) if size != bytes => Some(format!(
                "part {} is {size} bytes, but {bytes} were committed",
                self.plan.name,
            )),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub job: JobIdentity,
    pub started: String,
    pub finished: Option<String>,
    pub complete: bool,
    pub parts: Vec<PartRecord>,
}

impl Manifest {
    pub fn rows_written(&self) -> u64 {
        self.parts.iter().map(|p| p.rows_written).sum()
    }

    /// The first part listed as done whose file is missing or changed.
    pub fn damage(&self, dir: &OutDir) -> Option<String> {
        self.parts.iter().find_map(|p| p.damage(dir))
    }

    /// Checks what a manifest says makes sense: part names are plain file names
    /// (never paths: parts are removed and replaced by name), hashes are SHA-256.
    fn validate(&self) -> std::result::Result<(), String> {
        let sha = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        for p in &self.parts {
            let name = &p.plan.name;
            let plain = Path::new(name)
                .file_name()
                .is_some_and(|f| f == name.as_str());
            if !plain || name.starts_with('.') {
                return Err(format!("part name {name:?} is not a plain file name"));
            }
        }
        if let Some(i) = self.job.inputs.iter().find(|i| !sha(&i.fingerprint)) {
            return Err(format!(
                "the fingerprint of input {} is not a SHA-256",
                i.path
            ));
        }
        if let Some(m) = self.job.models.iter().find(|m| !sha(&m.sha256)) {
            return Err(format!("the sha256 of model {} is not a SHA-256", m.path));
        }
        Ok(())
    }
}

/// The first 12 characters of a hash, for messages.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// What identifies an input's content: for a local file, a SHA-256 of its first
/// and last bytes; for an object, of its size, ETag and version as the listing
/// gave them (no bytes are read: a store changes the ETag with the content).
pub fn fingerprint(file: &InputFile) -> Result<InputPrint> {
    if let Some(remote) = &file.remote {
        if remote.e_tag.is_none() && remote.version.is_none() {
            bail!(
                "{} has no ETag or version, so a resumed run could not tell whether it changed",
                remote.url
            );
        }
        let mut hash = Sha256::new();
        hash.update(format!(
            "object\n{}\n{}\n{}",
            remote.size,
            remote.e_tag.as_deref().unwrap_or(""),
            remote.version.as_deref().unwrap_or("")
        ));
        return Ok(InputPrint {
            path: file.display(),
            size: remote.size,
            fingerprint: format!("{:x}", hash.finalize()),
        });
    }
    let mut f = std::fs::File::open(&file.path)
        .with_context(|| format!("cannot open {} to fingerprint it", file.display()))?;
    let size = f.metadata()?.len();
    let mut hash = Sha256::new();
    let mut head = vec![];
    (&mut f).take(FINGERPRINT_BYTES).read_to_end(&mut head)?;
    hash.update(&head);
    if size > FINGERPRINT_BYTES {
        f.seek(SeekFrom::Start(
            size.saturating_sub(FINGERPRINT_BYTES)
                .max(FINGERPRINT_BYTES),
        ))?;
        let mut tail = vec![];
        f.read_to_end(&mut tail)?;
        hash.update(&tail);
    }
    Ok(InputPrint {
        path: file.display(),
        size,
        fingerprint: format!("{:x}", hash.finalize()),
    })
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

pub fn manifest_name(shard: Shard) -> String {
    format!("_manifest{}.json", shard.suffix())
}

pub fn success_name(shard: Shard) -> String {
    format!("_SUCCESS{}", shard.suffix())
}

/// Whether this shard's manifest says complete and its marker is there: a rerun
/// that will most likely do nothing (the job is compared later, in `open`).
pub fn looks_complete(dir: &OutDir, shard: Shard) -> bool {
    dir.exists(&success_name(shard)).unwrap_or(false)
        && read_manifest(dir, &manifest_name(shard))
            .is_ok_and(|m| m.complete && m.damage(dir).is_none())
}

/// Where a directory output in a bucket records each committed part of `shard`:
/// one empty object per part, named `<part>@<rows>-<rejected>-<bytes>`, so
/// that committing a part is one small request (not a rewrite of the whole
/// manifest: with thousands of parts that would be quadratic in requests and
/// bytes) and reading them all is one listing. The manifest written when the
/// shard completes lists every part; the records are then removed.
fn records_prefix(shard: Shard) -> String {
    format!("_batchinfer/parts{}/", shard.suffix())
}

/// A part record's name: see [`records_prefix`].
fn record_name(part: &PartRecord) -> String {
    format!(
        "{}@{}-{}-{}",
        part.plan.name,
        part.rows_written,
        part.rows_rejected,
        part.bytes.unwrap_or(0)
    )
}

/// Marks the parts the records under `dir` name as done, with their counts.
fn apply_records(dir: &OutDir, manifest: &mut Manifest) -> Result<()> {
    for record in dir.names_under(&records_prefix(manifest.job.shard))? {
        let Some((name, counts)) = record.rsplit_once('@') else {
            continue;
        };
        let counts: Vec<u64> = counts.split('-').filter_map(|n| n.parse().ok()).collect();
        let [rows, rejected, bytes] = counts[..] else {
            continue;
        };
        if let Some(p) = manifest.parts.iter_mut().find(|p| p.plan.name == name) {
            p.done = true;
            p.rows_written = rows;
            p.rows_rejected = rejected;
            p.bytes = Some(bytes);
        }
    }
    Ok(())
}

/// Reads a manifest and checks that it makes sense.
pub fn read_manifest(dir: &OutDir, name: &str) -> Result<Manifest> {
    let missing = || anyhow::anyhow!("cannot read manifest {}: it is not there", dir.join(name));
    Ok(read_manifest_versioned(dir, name)?.ok_or_else(missing)?.0)
}

/// [`read_manifest`], with the version read (for a conditional write after it);
/// None when there is no manifest.
fn read_manifest_versioned(dir: &OutDir, name: &str) -> Result<Option<(Manifest, Version)>> {
    let shown = dir.join(name);
    let Some((text, version)) = dir.read_versioned(name)? else {
        return Ok(None);
    };
    let advice = "the directory output cannot be resumed or checked; remove the directory (or this manifest and the parts it names) and score again";
    let manifest: Manifest = serde_json::from_slice(&text).with_context(|| {
        format!("{shown} is not a batchinfer manifest (damaged, or from another tool); {advice}")
    })?;
    manifest
        .validate()
        .map_err(|what| anyhow::anyhow!("{shown} is damaged: {what}; {advice}"))?;
    let mut manifest = manifest;
    if dir.is_object() && !manifest.complete {
        apply_records(dir, &mut manifest)?;
    }
    Ok(Some((manifest, version)))
}

/// Writes the manifest if it is still as `expected` (in a bucket: the version
/// this run read or wrote last, so that two writers cannot both win).
fn save(dir: &OutDir, manifest: &Manifest, expected: Expect) -> Result<Version> {
    let body = serde_json::to_vec_pretty(manifest).context("serialising the manifest")?;
    dir.write_if(&manifest_name(manifest.job.shard), &body, expected)
}

/// What a directory output holds for this shard before the run.
pub enum Opened {
    /// This shard already completed this job: nothing to do.
    Complete(Manifest),
    /// Parts to write (indices into the manifest's parts), and how many were
    /// already done by an earlier run.
    ToDo {
        manifest: Manifest,
        pending: Vec<usize>,
        resumed: usize,
        /// The manifest's version in the store, for the next conditional write.
        version: Version,
    },
}

/// Why a directory output cannot be written as asked.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Usage: a decision the user has to make (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The job changed since the run being resumed (exit 3).
    #[error("{0}")]
    Changed(String),
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

/// The first difference between the manifest's job and this one, in words.
fn difference(old: &JobIdentity, new: &JobIdentity) -> Option<String> {
    if old.tool_version != new.tool_version {
        return Some(format!(
            "it was written by batchinfer {}, this is {}",
            old.tool_version, new.tool_version
        ));
    }
    if old.inputs.len() != new.inputs.len() {
        return Some(format!(
            "it read {} input file(s), this run has {}",
            old.inputs.len(),
            new.inputs.len()
        ));
    }
    for (a, b) in old.inputs.iter().zip(&new.inputs) {
        if a != b {
            return Some(format!(
                "input {} changed (it was {} bytes with fingerprint {}, now {} bytes with {})",
                b.path,
                a.size,
                short(&a.fingerprint),
                b.size,
                short(&b.fingerprint)
            ));
        }
    }
    if old.models != new.models {
        for (a, b) in old.models.iter().zip(&new.models) {
            if a != b {
                return Some(format!(
                    "model {} changed (sha256 {} then, {} now)",
                    b.path,
                    short(&a.sha256),
                    short(&b.sha256)
                ));
            }
        }
        return Some("the set of models changed".into());
    }
    let keys: std::collections::BTreeSet<&String> =
        old.options.keys().chain(new.options.keys()).collect();
    for key in keys {
        let (was, now) = (old.options.get(key), new.options.get(key));
        if was != now {
            let shown = |v: Option<&String>| match v {
                None => format!("no {}", key.trim_end()),
                Some(v) if key.ends_with(':') => format!("{key}{v}"),
                Some(v) => format!("{key} {v}"),
            };
            return Some(format!(
                "it was written with {}, this run has {}",
                shown(was),
                shown(now)
            ));
        }
    }
    None
}

/// Looks at the directory and decides what this run writes. The directory
/// exists (the caller created it to take the shard's lock) and the lock is held.
#[allow(clippy::too_many_lines)] // one decision table over what the directory holds (complete, damaged, unfinished, another job) and the flags
pub fn open(
    dir: &OutDir,
    job: JobIdentity,
    plans: Vec<PartPlan>,
    resume: bool,
    overwrite: bool,
) -> Result<Opened, OpenError> {
    let shard = job.shard;
    // Shards of another split would write overlapping parts.
    for name in dir.names()? {
        if name.starts_with("_manifest") && name.ends_with(".json") {
            let other = read_manifest(dir, &name)?;
            if other.job.shard.count != shard.count {
                return Err(OpenError::Usage(format!(
                    "{} holds shards of a {}-way split ({name}), but this run is shard {shard}; use the same shard count, another output directory, or remove the old run",
                    dir.display(),
                    other.job.shard.count
                )));
            }
        }
    }
    let success = success_name(shard);
    let what = if shard.count > 1 {
        format!("shard {shard} of {}", dir.display())
    } else {
        dir.display()
    };
    let mut expected = Expect::Absent;
    if let Some((old, old_version)) = read_manifest_versioned(dir, &manifest_name(shard))? {
        expected = Expect::Version(old_version.clone());
        let changed = difference(&old.job, &job);
        let damage = old.damage(dir);
        if old.complete && dir.exists(&success)? && !overwrite {
            match (changed.as_ref(), damage.as_ref()) {
                (None, None) => return Ok(Opened::Complete(old)),
                (Some(why), _) => {
                    return Err(OpenError::Usage(format!(
                        "{what} holds a completed run of another job ({why}); pass --overwrite to replace it, or write elsewhere"
                    )))
                }
                (None, Some(damage)) if !resume => {
                    return Err(OpenError::Usage(format!(
                        "{what} is complete by its manifest but damaged: {damage}. Pass --resume to score the missing parts again, or --overwrite to score everything again"
                    )))
                }
                // --resume rescores the damaged parts below.
                (None, Some(_)) => {}
            }
        }
        let rescoring = old.complete && damage.is_some() && resume && !overwrite;
        if (!old.complete || rescoring) && !overwrite {
            if !resume {
                return Err(OpenError::Usage(format!(
                    "{what} holds an unfinished run (started {}, {} of {} parts done); pass --resume to finish it, or --overwrite to start again",
                    old.started,
                    old.parts.iter().filter(|p| p.done).count(),
                    old.parts.len()
                )));
            }
            if let Some(why) = changed {
                return Err(OpenError::Changed(format!(
                    "cannot resume {what}: {why}. Restore the earlier inputs, models and options, or pass --overwrite to score everything again"
                )));
            }
            let pending: Vec<usize> = old
                .parts
                .iter()
                .enumerate()
                .filter(|(_, p)| !p.done || p.damage(dir).is_some())
                .map(|(i, _)| i)
                .collect();
            let resumed = old.parts.len() - pending.len();
            let mut manifest = old;
            if rescoring {
                // Not complete again until the damaged parts are rewritten.
                dir.remove(&success);
                manifest.complete = false;
                manifest.finished = None;
            }
            for &i in &pending {
                manifest.parts[i].done = false;
            }
            return Ok(Opened::ToDo {
                manifest,
                pending,
                resumed,
                version: old_version,
            });
        }
        // --overwrite: remove what the earlier run of this shard wrote.
        dir.remove(&success);
        for p in &old.parts {
            dir.remove(&p.plan.name);
            dir.remove(&format!("_errors/{}", p.plan.name));
        }
    }
    let manifest = Manifest {
        job,
        started: now(),
        finished: None,
        complete: false,
        parts: plans
            .into_iter()
            .map(|plan| PartRecord {
                plan,
                done: false,
                rows_written: 0,
                rows_rejected: 0,
                bytes: None,
            })
            .collect(),
    };
    if dir.is_object() {
        dir.remove_under(&records_prefix(shard))?;
    }
    let version = save(dir, &manifest, expected)?;
    let pending = (0..manifest.parts.len()).collect();
    Ok(Opened::ToDo {
        manifest,
        pending,
        resumed: 0,
        version,
    })
}

/// The part being written.
struct Current {
    part: usize,
    sink: Box<dyn Sink>,
    errors: Option<Box<dyn Sink>>,
    rows: u64,
    rejected: u64,
}

/// Writes parts in order, committing each and recording it in the manifest.
pub struct PartWriter {
    dir: OutDir,
    manifest: Manifest,
    /// The manifest's version in the store as this run last read or wrote it.
    version: Version,
    /// Parts still to write, ascending; `next` is the first not yet opened.
    pending: Vec<usize>,
    next: usize,
    current: Option<Current>,
    schema: SchemaRef,
    error_schema: Option<SchemaRef>,
    metadata: Vec<(String, String)>,
}

impl PartWriter {
    pub fn new(
        dir: &OutDir,
        manifest: Manifest,
        version: Version,
        pending: Vec<usize>,
        schema: SchemaRef,
        error_schema: Option<SchemaRef>,
        metadata: Vec<(String, String)>,
    ) -> PartWriter {
        // Temporary files a killed run of this shard left (other shards' parts
        // have other names, and may be being written right now).
        let names: Vec<String> = pending
            .iter()
            .flat_map(|&i| {
                let name = &manifest.parts[i].plan.name;
                [name.clone(), format!("_errors/{name}")]
            })
            .collect();
        dir.remove_leftovers(&names);
        // Records of parts to be written again (damaged ones, on --resume).
        if dir.is_object() {
            let prefix = records_prefix(manifest.job.shard);
            let stale: Vec<String> = dir.names_under(&prefix).unwrap_or_default();
            for record in stale {
                let part = record.rsplit_once('@').map_or(record.as_str(), |(n, _)| n);
                if pending.iter().any(|&i| manifest.parts[i].plan.name == part) {
                    dir.remove(&format!("{prefix}{record}"));
                }
            }
        }
        PartWriter {
            dir: dir.clone(),
            manifest,
            version,
            pending,
            next: 0,
            current: None,
            schema,
            error_schema,
            metadata,
        }
    }

    /// The part (or error part) `name` as an output of its own.
    fn target(&self, name: &str) -> Result<OutputTarget> {
        let mut target = OutputTarget::parse(&self.dir.join(name), true)?;
        target.kind = OutputKind::Parquet;
        Ok(target)
    }

    fn open_next(&mut self) -> Result<()> {
        let part = self.pending[self.next];
        self.next += 1;
        let name = self.manifest.parts[part].plan.name.clone();
        let sink = self
            .target(&name)?
            .open(self.schema.clone(), &self.metadata)?;
        let errors = match &self.error_schema {
            // Missing parent directories are created by the sink.
            Some(schema) => Some(
                self.target(&format!("_errors/{name}"))?
                    .open(schema.clone(), &self.metadata)?,
            ),
            None => None,
        };
        self.current = Some(Current {
            part,
            sink,
            errors,
            rows: 0,
            rejected: 0,
        });
        Ok(())
    }

    /// Commits the current part and records it in the manifest.
    fn commit_current(&mut self) -> Result<()> {
        let Some(c) = self.current.take() else {
            return Ok(());
        };
        let name = self.manifest.parts[c.part].plan.name.clone();
        let error_file = format!("_errors/{name}");
        match (c.errors, c.rejected) {
            (Some(errors), n) if n > 0 => errors
                .commit()
                .with_context(|| format!("committing the error file of {name}"))?,
            _ => {
                // No rejections: no error file, not even one left by an earlier run.
                self.dir.remove(&error_file);
            }
        }
        c.sink.commit()?;
        let bytes = self
            .dir
            .size(&name)?
            .with_context(|| format!("the committed part {name} is not there"))?;
        let record = &mut self.manifest.parts[c.part];
        record.done = true;
        record.bytes = Some(bytes);
        record.rows_written = c.rows;
        record.rows_rejected = c.rejected;
        if self.dir.is_object() {
            let name = format!(
                "{}{}",
                records_prefix(self.manifest.job.shard),
                record_name(record)
            );
            return self.dir.write(&name, b"");
        }
        self.version = save(
            &self.dir,
            &self.manifest,
            Expect::Version(self.version.take()),
        )?;
        Ok(())
    }

    /// Opens and commits parts until `part` is the current one.
    fn advance_to(&mut self, part: usize) -> Result<()> {
        while self.current.as_ref().is_none_or(|c| c.part != part) {
            self.commit_current()?;
            if self.next >= self.pending.len() {
                bail!("part {part} is not one this run writes");
            }
            self.open_next()?;
        }
        Ok(())
    }
}

impl Destination for PartWriter {
    fn write(
        &mut self,
        part: usize,
        output: &RecordBatch,
        rejected: Option<&RecordBatch>,
    ) -> Result<()> {
        self.advance_to(part)?;
        let c = self.current.as_mut().expect("advance_to opened it");
        c.sink.write(output)?;
        c.rows += output.num_rows() as u64;
        if let (Some(bad), Some(errors)) = (rejected, c.errors.as_mut()) {
            errors.write(bad).context("writing the error file")?;
            c.rejected += bad.num_rows() as u64;
        }
        Ok(())
    }

    fn annotate(&mut self, part: usize, key: &str, value: &str) {
        if let Some(c) = self.current.as_mut().filter(|c| c.part == part) {
            c.sink.annotate(key, value);
        }
    }

    fn part_name(&self, part: usize) -> Option<String> {
        self.manifest.parts.get(part).map(|p| p.plan.name.clone())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        // Parts no batch came for (no rows) are committed empty.
        self.commit_current()?;
        while self.next < self.pending.len() {
            self.open_next()?;
            self.commit_current()?;
        }
        self.manifest.complete = true;
        self.manifest.finished = Some(now());
        save(
            &self.dir,
            &self.manifest,
            Expect::Version(self.version.take()),
        )?;
        self.dir
            .write(&success_name(self.manifest.job.shard), b"")?;
        if self.dir.is_object() {
            // The complete manifest lists every part now.
            if let Err(e) = self
                .dir
                .remove_under(&records_prefix(self.manifest.job.shard))
            {
                crate::sys::log::warn(&format!("{e:#}"));
            }
        }
        Ok(())
    }

    fn left_behind(&self, _rows_written: u64) -> String {
        let done = self.manifest.parts.iter().filter(|p| p.done).count();
        if done == 0 {
            format!("no part of {} was committed", self.dir.display())
        } else {
            format!(
                "{done} of {} part(s) committed before stay in {} (its manifest lists them, and there is no _SUCCESS marker); --resume scores the rest",
                self.manifest.parts.len(),
                self.dir.display()
            )
        }
    }

    fn keep_errors(mut self: Box<Self>) -> String {
        if let Some(c) = self.current.take() {
            if let Some(errors) = c.errors {
                let _ = errors.commit();
            }
        }
        self.dir.join("_errors")
    }
}
