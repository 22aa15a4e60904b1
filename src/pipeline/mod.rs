//! The scoring pipeline: one reader thread driving a [`Source`] → rayon workers
//! running the shared plan, one batch per task → one writer thread that restores
//! input order into a [`Destination`]. It knows no file format: how inputs are
//! decoded is the source's business, how outputs are committed the destination's.
//! Channels between the stages are bounded, so a slow disk slows scoring down
//! instead of filling memory; reading, scoring and writing overlap. A window of
//! `4 × threads` batches bounds everything between the reader and the writer,
//! including batches scored early that wait for a slower one to be written first.
//!
//! Workers also profile each batch they score (`crate::profile`); the writer merges
//! the profiles in input order and, with a baseline, holds each part to it before
//! the destination commits the part (`drift`).
//!
//! The first failure (the one earliest in input order) stops the run: the reader
//! stops reading, workers skip what is queued, and the sinks are dropped without
//! committing, which removes their temporary files.

pub mod destination;
pub mod drift;
pub mod progress;
pub mod rejects;
pub mod stats;

pub use self::destination::Destination;
pub use self::stats::WorkerStats;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arrow::array::UInt32Array;
use arrow::compute::take;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;

use self::progress::Progress;
use self::rejects::{MaxErrors, OnError};
use crate::model::set::ModelSet;
use crate::model::{ScoreError, Session};
use crate::profile::drift::DriftGuard;
use crate::profile::sample::Sampled;
use crate::profile::{Profile, ProfilePlan, RunProfile};
use crate::select::{RowNumbers, Selection};
use crate::source::{bad_quoting, BadValue, Source};
use crate::sys::interrupt::Interrupt;

/// Everything a run needs, checked and opened before the first batch is read.
pub struct Pipeline {
    pub source: Box<dyn Source>,
    /// Columns to read, indices into the dataset schema, ascending.
    pub projection: Vec<usize>,
    /// The models, with their feeds over the projected batch.
    pub models: Arc<ModelSet>,
    /// Kept columns, indices into the scored batch, in output order.
    pub keep: Vec<usize>,
    /// Filters, derived columns and sample, applied to each batch read; the limit.
    pub selection: Selection,
    pub out_schema: SchemaRef,
    /// What to read, in order, and which part of the output each piece goes to.
    pub segments: Vec<Segment>,
    pub destination: Box<dyn Destination>,
    pub on_error: OnError,
    /// With `--on-error skip`: the schema of the rejected rows.
    pub error_schema: Option<SchemaRef>,
    /// Rows rejected by earlier runs of a resumed directory output (for `--max-errors`).
    pub prior_rejected: u64,
    /// Rows read by earlier runs of a resumed directory output (for `--max-errors P%`).
    pub prior_read: u64,
    /// Whether reading no rows is fine (a shard with nothing left to do).
    pub allow_empty: bool,
    pub threads: usize,
    pub batch_size: usize,
    pub progress: Progress,
    pub interrupt: Interrupt,
    /// The columns profiled (every run profiles what its models take and give).
    pub profile: Arc<ProfilePlan>,
    /// With `--baseline`: what each part and the run are held to.
    pub drift: Option<Arc<DriftGuard>>,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("bad row in {file}, row {row} (0-based, header excluded), column `{column}`: {reason}. Fix or drop the row, or pass --on-error skip to set bad rows aside")]
    BadRow {
        file: String,
        row: u64,
        column: String,
        reason: String,
    },
    #[error("{rejected} rows were rejected, more than --max-errors {limit} allows. The rejected rows are in {errors}")]
    TooManyBadRows {
        rejected: u64,
        limit: String,
        errors: String,
    },
    /// An input that cannot be read as a table where it is (bad quoting, a value
    /// that is not its column's type), and was not set aside.
    #[error("{0}")]
    BadInput(String),
    #[error("{0:#}")]
    Failed(anyhow::Error),
    #[error("stopped by {}", Interrupt::name(*.0))]
    Interrupted(i32),
    #[error("the input ({0}) has no rows. Check that the right files were given")]
    Empty(String),
    /// The rows drifted from the baseline past a threshold (`--on-drift fail`).
    #[error("{0}")]
    Drift(String),
}

/// What the pipeline measured, also after a failure.
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_rejected: u64,
    pub read_s: f64,
    pub write_s: f64,
    pub workers: WorkerStats,
    /// After a failure: what the output holds, in words ("nothing was written",
    /// "1,200 rows were already written to standard output").
    pub left_behind: Option<String>,
    /// The profile of the rows written (of those scored, after a failure).
    pub profile: Option<Profile>,
    /// With a baseline: what the comparisons found.
    pub drift: Option<drift::Checked>,
}

/// A piece of input: one file, or some of its row groups, bound for one part.
#[derive(Debug, Clone)]
pub struct Segment {
    pub part: usize,
    pub file: usize,
    /// Row groups to read (None: the whole file).
    pub row_groups: Option<Vec<usize>>,
    /// Index in the file of the segment's first row.
    pub first_row: u64,
}

struct ReadBatch {
    seq: u64,
    part: usize,
    file: usize,
    first_row: u64,
    /// Rows the run read before this batch: where its first row is in input order.
    run_row: u64,
    batch: RecordBatch,
    /// Rows of the batch the source set aside (values that do not parse).
    bad: Vec<BadValue>,
}

/// A scored batch on its way to the writer.
struct Scored {
    seq: u64,
    part: usize,
    /// Rows read, before the selection (for progress).
    read_rows: u64,
    output: RecordBatch,
    rejected: Option<RecordBatch>,
    profile: RunProfile,
}

/// The first failure in input order, shared by all stages; and where `--limit`
/// was reached, after which nothing more is needed.
struct Failure {
    /// Input position (batch sequence number) of the earliest failure; MAX: none.
    first_seq: AtomicU64,
    first: Mutex<Option<(u64, PipelineError)>>,
    /// The batch that reached the limit; MAX: not reached.
    limit_seq: AtomicU64,
}

impl Default for Failure {
    fn default() -> Self {
        Failure {
            first_seq: AtomicU64::new(u64::MAX),
            first: Mutex::new(None),
            limit_seq: AtomicU64::new(u64::MAX),
        }
    }
}

impl Failure {
    fn record(&self, seq: u64, error: PipelineError) {
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.as_ref().is_none_or(|(s, _)| seq < *s) {
            *first = Some((seq, error));
            self.first_seq.store(seq, Ordering::SeqCst);
        }
    }

    /// Whether anything has failed: the reader and writer stop.
    fn cancelled(&self) -> bool {
        self.first_seq.load(Ordering::SeqCst) != u64::MAX
    }

    /// Whether batch `seq` reached the limit: the reader stops, workers skip the rest.
    fn limit_reached(&self, seq: u64) {
        self.limit_seq.store(seq, Ordering::SeqCst);
    }

    /// Whether nothing more is needed: a failure, or the limit.
    fn stopped(&self) -> bool {
        self.cancelled() || self.limit_seq.load(Ordering::SeqCst) != u64::MAX
    }

    /// Whether a batch earlier in input order than `seq` failed or reached the
    /// limit: workers skip `seq` then, but still score earlier batches so that
    /// the failure reported is the first one in input order, whatever the thread
    /// timing.
    fn before(&self, seq: u64) -> bool {
        self.first_seq.load(Ordering::SeqCst) < seq || self.limit_seq.load(Ordering::SeqCst) < seq
    }

    fn take(self) -> Option<PipelineError> {
        self.first
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .map(|(_, e)| e)
    }
}

/// What workers need to turn a read batch into a scored one.
struct Scorer<'a> {
    models: &'a ModelSet,
    selection: &'a Selection,
    keep: &'a [usize],
    out_schema: &'a SchemaRef,
    error_schema: Option<&'a SchemaRef>,
    on_error: OnError,
    file_names: &'a [String],
    profile: &'a ProfilePlan,
}

/// What the writer hands back; no destination after a failure.
#[derive(Default)]
struct Written {
    destination: Option<Box<dyn Destination>>,
    rows: u64,
    rejected: u64,
    busy_s: f64,
    /// After a failure: what the output holds.
    left_behind: Option<String>,
    /// The profile of the run's rows, and of the part being written.
    profiles: drift::Profiles,
}

impl Pipeline {
    /// Runs to the end and commits the output, or stops at the first failure.
    #[allow(clippy::too_many_lines)] // the stage threads share one `thread::scope`: their borrows of the run's parts cannot cross a function boundary without a struct of references
    pub fn run(self) -> (PipelineStats, Result<(), PipelineError>) {
        let Pipeline {
            mut source,
            projection,
            models,
            keep,
            selection,
            out_schema,
            segments,
            destination,
            on_error,
            error_schema,
            prior_rejected,
            prior_read,
            allow_empty,
            threads,
            batch_size,
            mut progress,
            interrupt,
            profile,
            drift,
        } = self;
        let failure = Failure::default();
        let file_names: Vec<String> = (0..source.files()).map(|f| source.file_name(f)).collect();
        let pool = match rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("batchinfer-worker-{i}"))
            .build()
        {
            Ok(p) => p,
            Err(e) => {
                return (
                    PipelineStats::default(),
                    Err(PipelineError::Failed(e.into())),
                )
            }
        };
        let limit = match on_error {
            OnError::Skip { max } => max,
            OnError::Fail => None,
        };
        let scorer = Scorer {
            models: &models,
            selection: &selection,
            keep: &keep,
            out_schema: &out_schema,
            error_schema: error_schema.as_ref(),
            on_error,
            file_names: &file_names,
            profile: &profile,
        };
        let (read_tx, read_rx) = sync_channel::<ReadBatch>(threads * 2);
        let (out_tx, out_rx) = sync_channel::<Scored>(threads * 2);
        let (window_tx, window_rx) = window(threads * WINDOW_PER_THREAD);

        let mut stats = PipelineStats::default();
        let mut written = std::thread::scope(|scope| {
            let failure = &failure;
            let reader = scope.spawn(|| {
                read_all(
                    source.as_mut(),
                    &segments,
                    &projection,
                    batch_size,
                    read_tx,
                    window_rx,
                    failure,
                    &interrupt,
                )
            });
            let writer = scope.spawn(|| {
                write_in_order(
                    destination,
                    out_rx,
                    window_tx,
                    &mut progress,
                    Limits {
                        rejected: limit.map(|l| (l, prior_rejected)),
                        rows: selection.limit,
                    },
                    failure,
                    drift::Profiles::new(profile.clone(), drift.clone()),
                )
            });
            let workers = pool.install(|| {
                read_rx
                    .into_iter()
                    .par_bridge()
                    .map_init(
                        || models.sessions(),
                        |session, rb| scorer.score(session, rb, &out_tx, failure),
                    )
                    .reduce(WorkerStats::default, |a, b| a + b)
            });
            drop(out_tx);
            // A stage that died fails the run: nothing it did is committed.
            match reader.join() {
                Ok((rows_read, read_s)) => {
                    stats.rows_read = rows_read;
                    stats.read_s = read_s;
                }
                Err(p) => failure.record(u64::MAX - 1, crashed("reader", p.as_ref())),
            }
            stats.workers = workers;
            writer.join().unwrap_or_else(|p| {
                failure.record(u64::MAX - 1, crashed("writer", p.as_ref()));
                Written::default()
            })
        });
        stats.rows_written = written.rows;
        stats.rows_rejected = written.rejected;
        stats.write_s = written.busy_s;
        stats.left_behind = written.left_behind.take();
        progress.finish();

        let end = End {
            failure,
            interrupt,
            allow_empty,
            file_names,
            limit,
            prior_read,
            prior_rejected,
        };
        end.conclude(stats, written)
    }
}

/// What decides how a run ends once every stage has stopped.
struct End {
    failure: Failure,
    /// A signal that came after the reader's last check (while it waited for
    /// the end of a stream, say) still stops the run before the commit.
    interrupt: Interrupt,
    allow_empty: bool,
    file_names: Vec<String>,
    limit: Option<MaxErrors>,
    prior_read: u64,
    prior_rejected: u64,
}

impl End {
    /// The first failure, or no rows, or too many rejections (a percentage is of
    /// the rows read, known only now); otherwise the destination commits.
    fn conclude(
        self,
        mut stats: PipelineStats,
        mut written: Written,
    ) -> (PipelineStats, Result<(), PipelineError>) {
        let profiles = &mut written.profiles;
        let breach = match (self.failure.cancelled(), written.destination.as_mut()) {
            (false, Some(d)) => profiles.end_part(d.as_mut()),
            _ => None,
        };
        stats.profile = Some(profiles.run_profile());
        stats.drift = profiles.checked();
        if let Some(e) = self.failure.take() {
            return (stats, Err(e));
        }
        if let Some(sig) = self.interrupt.signal() {
            return (stats, Err(PipelineError::Interrupted(sig)));
        }
        if stats.rows_read == 0 && !self.allow_empty {
            let text = crate::source::describe_files(&self.file_names);
            return (stats, Err(PipelineError::Empty(text)));
        }
        let Some(destination) = written.destination else {
            return (
                stats,
                Err(PipelineError::Failed(anyhow::anyhow!(
                    "the writer stopped unexpectedly"
                ))),
            );
        };
        if let Some(max @ MaxErrors::Percent(p)) = self.limit {
            if max.exceeded(
                self.prior_rejected + written.rejected,
                self.prior_read + stats.rows_read,
            ) {
                stats.left_behind = Some(destination.left_behind(stats.rows_written));
                let errors = destination.keep_errors();
                return (
                    stats,
                    Err(PipelineError::TooManyBadRows {
                        rejected: written.rejected,
                        limit: format!("{p}%"),
                        errors,
                    }),
                );
            }
        }
        let left = destination.left_behind(stats.rows_written);
        if let Some(e) = breach {
            stats.left_behind = Some(left);
            return (stats, Err(e));
        }
        let committed = destination.commit().map_err(PipelineError::Failed);
        if committed.is_err() {
            stats.left_behind = Some(left);
        }
        (stats, committed)
    }
}

/// Test builds only: `BATCHINFER_TEST_FAULT=STAGE` panics that stage at its second
/// batch, so tests can check that a stage that dies fails the run.
fn injected_fault(stage: &str, seq: u64) {
    #[cfg(debug_assertions)]
    if seq == 1 && std::env::var("BATCHINFER_TEST_FAULT").is_ok_and(|v| v == stage) {
        panic!("fault injected into the {stage} for a test");
    }
    let _ = (stage, seq);
}

/// A stage thread that panicked outside the guarded library calls.
fn crashed(stage: &str, payload: &(dyn std::any::Any + Send)) -> PipelineError {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    PipelineError::Failed(anyhow::anyhow!(
        "the {stage} thread crashed ({what}); this is a bug: please report it with the command"
    ))
}

/// A read that failed: a bad value or bad quoting is bad input (exit 4, naming the
/// file and where); anything else a failure naming the file. Under `--on-error
/// skip` the source sets such rows aside itself, so these reach here only when
/// they cannot be (`--on-error fail`, or a quote that never closes).
fn read_error(e: anyhow::Error, name: &str, first_row: u64) -> PipelineError {
    if let Some(bad) = e.downcast_ref::<BadValue>() {
        return PipelineError::BadInput(format!(
            "bad value in {bad}. Fix the value, declare the column's type, or pass --on-error skip to set the row aside"
        ));
    }
    if let Some(q) = bad_quoting(&e) {
        return PipelineError::BadInput(format!(
            "{q}. Fix the quoting in the file; --on-error skip sets aside a row with text after a closing quote, but not a quote that never closes (where its row ends cannot be known)"
        ));
    }
    if crate::storage::errors::is_store_failure(&e) {
        return PipelineError::Failed(e.context(format!(
            "the object store failed while {name} was read at row {first_row}"
        )));
    }
    PipelineError::Failed(e.context(format!(
        "cannot read {name} at row {first_row}: the file may be truncated, corrupt or not what its name says; re-export it or leave it out"
    )))
}

impl Scorer<'_> {
    #[allow(clippy::too_many_lines)] // a worker's path through one batch (selection, scoring, rejects, assembly) with an early return per failure
    fn score(
        &self,
        sessions: &mut Result<Vec<Session>>,
        rb: ReadBatch,
        out: &SyncSender<Scored>,
        failure: &Failure,
    ) -> WorkerStats {
        if failure.before(rb.seq) {
            return WorkerStats::default();
        }
        let sessions = match sessions {
            Ok(s) => s,
            Err(e) => {
                failure.record(
                    rb.seq,
                    PipelineError::Failed(anyhow::anyhow!("cannot start a model session: {e:#}")),
                );
                return WorkerStats::default();
            }
        };
        let file = &self.file_names[rb.file];
        let read_rows = rb.batch.num_rows() as u64;
        let started = Instant::now();
        let ReadBatch {
            seq,
            part,
            file: file_ix,
            first_row,
            run_row: rb_run_row,
            batch,
            bad,
        } = rb;
        // Rows the source set aside leave the batch before the selection sees them.
        let (batch, read_rows_numbers, unreadable) = match self.set_aside(batch, first_row, &bad) {
            Ok(split) => split,
            Err(e) => {
                failure.record(seq, PipelineError::Failed(e));
                return WorkerStats::default();
            }
        };
        let (batch, rows) = match self.selection.apply(file_ix, batch, read_rows_numbers) {
            Ok(selected) => selected,
            Err(e) => {
                let e = e.context(format!(
                    "{file}, {}",
                    RowNumbers::From(first_row).describe(read_rows as usize)
                ));
                failure.record(seq, PipelineError::Failed(e));
                return WorkerStats::default();
            }
        };
        let n = batch.num_rows();
        // The profile's moments of the float32 inputs, gathered as they are fed.
        let mut sums = self.profile.input_sums();
        let scored = if n == 0 {
            // Nothing selected: an empty batch keeps the writer's order.
            Ok(rejects::Outcome {
                kept_rows: None,
                predictions: self
                    .out_schema
                    .fields()
                    .iter()
                    .skip(self.keep.len())
                    .map(|f| arrow::array::new_empty_array(f.data_type()))
                    .collect(),
                rejected: vec![],
                model_s: vec![0.0; self.models.members.len()],
            })
        } else {
            match self.on_error {
                OnError::Fail => self
                    .models
                    .score_observed(sessions, &batch, &mut sums)
                    .map(|s| rejects::Outcome {
                        kept_rows: None,
                        predictions: s.columns,
                        rejected: vec![],
                        model_s: s.model_s,
                    }),
                OnError::Skip { .. } => rejects::score_skipping(self.models, sessions, &batch),
            }
        };
        let mut outcome = match scored {
            Ok(o) => o,
            Err(ScoreError::BadRow(b)) => {
                let error = PipelineError::BadRow {
                    file: file.clone(),
                    row: rows.at(b.row),
                    column: b.column,
                    reason: b.reason,
                };
                failure.record(seq, error);
                return WorkerStats::default();
            }
            Err(ScoreError::Model(e)) => {
                let e = e.context(format!("{file}, {}", rows.describe(n)));
                failure.record(seq, PipelineError::Failed(e));
                return WorkerStats::default();
            }
        };
        let sampled = match rows {
            // Nothing profiled (--no-profile): no sample either.
            _ if self.profile.columns.is_empty() => Sampled::default(),
            RowNumbers::From(first) => Sampled::of_range(rb_run_row + (first - first_row), n),
            RowNumbers::Picked(_) => Sampled::of(n, |i| rb_run_row + (rows.at(i) - first_row)),
        };
        let profile = self.profile.profile(
            &batch,
            &outcome.predictions,
            outcome.kept_rows.as_deref(),
            &sampled,
            &sums,
        );
        let elapsed = started.elapsed().as_secs_f64();
        let nan_predictions = rejects::count_nan(&outcome.predictions);
        let model_s = std::mem::take(&mut outcome.model_s);
        let selected = Selected {
            seq,
            part,
            read_rows,
            batch,
            rows,
            unreadable,
        };
        match self.assemble(&selected, file, outcome, profile) {
            // A closed channel means the writer failed (and recorded why) or
            // reached the limit.
            Ok(scored) => drop(out.send(scored)),
            Err(e) => failure.record(seq, PipelineError::Failed(e)),
        }
        WorkerStats {
            rows: n as u64,
            score_s: elapsed,
            batch_s: vec![elapsed],
            nan_predictions,
            model_s,
        }
    }

    /// Takes the rows the source set aside out of a read batch: the batch left,
    /// its row numbers, and the error rows of those set aside.
    fn set_aside(
        &self,
        batch: RecordBatch,
        first_row: u64,
        bad: &[BadValue],
    ) -> Result<(RecordBatch, RowNumbers, Option<RecordBatch>)> {
        if bad.is_empty() {
            return Ok((batch, RowNumbers::From(first_row), None));
        }
        let Some(schema) = self.error_schema else {
            let first = &bad[0];
            anyhow::bail!("bad value in {first}");
        };
        // One error row per row, the first reason found.
        let mut bad: Vec<&BadValue> = bad.iter().collect();
        bad.sort_by_key(|b| b.row);
        bad.dedup_by_key(|b| b.row);
        let out: Vec<usize> = bad.iter().map(|b| (b.row - first_row) as usize).collect();
        let errors = rejects::unreadable_batch(schema, &batch, &out, &bad)?;
        let mut keep = vec![true; batch.num_rows()];
        for &i in &out {
            keep[i] = false;
        }
        let rows: Vec<u64> = (first_row..)
            .zip(&keep)
            .filter_map(|(row, &k)| k.then_some(row))
            .collect();
        let keep = arrow::array::BooleanArray::from(keep);
        let batch = arrow::compute::filter_record_batch(&batch, &keep)?;
        Ok((batch, RowNumbers::Picked(rows.into()), Some(errors)))
    }

    /// Kept columns (of the scored rows) then predictions; and the error rows.
    fn assemble(
        &self,
        sb: &Selected,
        file: &str,
        outcome: rejects::Outcome,
        profile: RunProfile,
    ) -> Result<Scored> {
        let kept: Vec<_> = match &outcome.kept_rows {
            None => self
                .keep
                .iter()
                .map(|&i| sb.batch.column(i).clone())
                .collect(),
            Some(rows) => {
                let idx = UInt32Array::from_iter_values(rows.iter().copied());
                self.keep
                    .iter()
                    .map(|&i| take(sb.batch.column(i), &idx, None))
                    .collect::<Result<_, _>>()?
            }
        };
        let mut columns = kept;
        columns.extend(outcome.predictions);
        let output = RecordBatch::try_new(self.out_schema.clone(), columns)
            .context("assembling the output batch")?;
        let scored_rejects = match (self.error_schema, outcome.rejected.is_empty()) {
            (Some(schema), false) => Some(rejects::error_batch(
                schema,
                &sb.batch,
                self.keep,
                file,
                &sb.rows,
                &outcome.rejected,
            )?),
            _ => None,
        };
        let rejected = match (sb.unreadable.clone(), scored_rejects) {
            (Some(a), Some(b)) => Some(arrow::compute::concat_batches(&a.schema(), [&a, &b])?),
            (a, b) => a.or(b),
        };
        Ok(Scored {
            seq: sb.seq,
            part: sb.part,
            read_rows: sb.read_rows,
            output,
            rejected,
            profile,
        })
    }
}

/// A read batch after the selection: the rows to score and where they came from.
struct Selected {
    seq: u64,
    part: usize,
    read_rows: u64,
    batch: RecordBatch,
    rows: RowNumbers,
    /// Error rows of the rows the source set aside.
    unreadable: Option<RecordBatch>,
}

/// Batches in flight per worker thread, from the reader's send to the writer's write.
/// It bounds the writer's reordering, which had no bound: while one batch was slow
/// (its worker descheduled, a hard row), the others went on and waited in the writer
/// for it. The logistic regression's peak RSS at 20M rows did not change measurably
/// (82–84 against 84–88 MiB, 3 runs each), nor did its wall time.
const WINDOW_PER_THREAD: usize = 4;

/// A counting semaphore over a channel: the reader takes a token per batch it sends,
/// the writer returns one per batch it writes. Dropping the writer's end (it stopped)
/// wakes the reader.
fn window(size: usize) -> (SyncSender<()>, Receiver<()>) {
    let (tx, rx) = sync_channel(size);
    for _ in 0..size {
        let _ = tx.try_send(());
    }
    (tx, rx)
}

/// Waits for a token of the window. False when the run stops meanwhile: the writer
/// is gone, another stage failed, or a signal came.
fn enter_window(window: &Receiver<()>, seq: u64, failure: &Failure, interrupt: &Interrupt) -> bool {
    loop {
        match window.recv_timeout(Duration::from_millis(50)) {
            Ok(()) => return true,
            Err(RecvTimeoutError::Disconnected) => return false,
            Err(RecvTimeoutError::Timeout) => {
                if let Some(sig) = interrupt.signal() {
                    failure.record(seq, PipelineError::Interrupted(sig));
                }
                if failure.stopped() {
                    return false;
                }
            }
        }
    }
}

/// Reads the segments in order; returns rows read and seconds spent reading.
#[allow(clippy::too_many_arguments)]
fn read_all(
    source: &mut dyn Source,
    segments: &[Segment],
    projection: &[usize],
    batch_size: usize,
    tx: SyncSender<ReadBatch>,
    window: Receiver<()>,
    failure: &Failure,
    interrupt: &Interrupt,
) -> (u64, f64) {
    let mut seq = 0u64;
    let mut rows = 0u64;
    let mut busy = 0.0;
    for segment in segments {
        let file = segment.file;
        let started = Instant::now();
        let opened = source.read(file, segment.row_groups.as_deref(), projection, batch_size);
        let mut batches = match opened {
            Ok(b) => b,
            Err(e) => {
                failure.record(seq, PipelineError::Failed(e));
                return (rows, busy);
            }
        };
        busy += started.elapsed().as_secs_f64();
        let mut first_row = segment.first_row;
        let mut waiting: Vec<BadValue> = vec![];
        loop {
            if let Some(sig) = interrupt.signal() {
                failure.record(seq, PipelineError::Interrupted(sig));
            }
            if failure.stopped() {
                return (rows, busy);
            }
            let started = Instant::now();
            let next = batches.next();
            busy += started.elapsed().as_secs_f64();
            let batch = match next {
                None => break,
                Some(Ok(b)) => b,
                Some(Err(e)) => {
                    let name = source.file_name(file);
                    failure.record(seq, read_error(e, &name, first_row));
                    return (rows, busy);
                }
            };
            let n = batch.num_rows() as u64;
            if n == 0 {
                continue;
            }
            injected_fault("reader", seq);
            if !enter_window(&window, seq, failure, interrupt) {
                return (rows, busy);
            }
            // Rows the source set aside belong to the batch that holds them (a
            // reader reading ahead may report one of a later batch first).
            waiting.extend(source.take_rejected());
            let (bad, later): (Vec<BadValue>, Vec<BadValue>) = waiting
                .drain(..)
                .partition(|b| (first_row..first_row + n).contains(&b.row));
            waiting = later;
            if tx
                .send(ReadBatch {
                    seq,
                    part: segment.part,
                    file,
                    first_row,
                    run_row: rows,
                    batch,
                    bad,
                })
                .is_err()
            {
                return (rows, busy);
            }
            seq += 1;
            rows += n;
            first_row += n;
        }
        waiting.extend(source.take_rejected());
        if let Some(lost) = waiting.first() {
            let e = anyhow::anyhow!(
                "{lost}: this row was set aside but is in no batch read; this is a bug, please report it"
            );
            failure.record(seq, PipelineError::Failed(e));
            return (rows, busy);
        }
    }
    (rows, busy)
}

/// Where the writer stops: past a row-count limit on rejections (counting
/// earlier runs' rejections), and at `--limit` rows.
struct Limits {
    rejected: Option<(MaxErrors, u64)>,
    rows: Option<u64>,
}

impl Written {
    /// What a writer that stopped early hands back: no destination.
    fn stopped(
        destination: Box<dyn Destination>,
        rows: u64,
        rejected: u64,
        busy_s: f64,
        profiles: drift::Profiles,
    ) -> Written {
        Written {
            rows,
            rejected,
            busy_s,
            left_behind: Some(destination.left_behind(rows)),
            destination: None,
            profiles,
        }
    }
}

/// Writes batches in input order, with the rows rejected from them; stops when
/// a row-count limit on rejections (counting `prior` rejections) is passed.
fn write_in_order(
    mut destination: Box<dyn Destination>,
    rx: Receiver<Scored>,
    window: SyncSender<()>,
    progress: &mut Progress,
    limits: Limits,
    failure: &Failure,
    mut profiles: drift::Profiles,
) -> Written {
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    let mut rows = 0u64;
    let mut rejected = 0u64;
    let mut busy = 0.0;
    let stopped = Written::stopped;
    'receive: for scored in rx {
        pending.insert(scored.seq, scored);
        while let Some(mut scored) = pending.remove(&next) {
            injected_fault("writer", next);
            if failure.cancelled() {
                return stopped(destination, rows, rejected, busy, profiles);
            }
            // --limit: the batch that reaches it is cut, and nothing after it is needed.
            let reached = limits
                .rows
                .filter(|&max| rows + scored.output.num_rows() as u64 >= max);
            if let Some(max) = reached {
                scored.output = scored.output.slice(0, (max - rows) as usize);
            }
            let started = Instant::now();
            // A part ends when the next one begins: its rows are held to the baseline
            // before the destination commits it.
            if let Some(e) = profiles.begin_part(scored.part, destination.as_mut()) {
                failure.record(next, e);
                return stopped(destination, rows, rejected, busy, profiles);
            }
            profiles.add(&scored.profile);
            if let Err(e) = destination.write(scored.part, &scored.output, scored.rejected.as_ref())
            {
                failure.record(next, PipelineError::Failed(e));
                return stopped(destination, rows, rejected, busy, profiles);
            }
            if let Some(bad) = &scored.rejected {
                rejected += bad.num_rows() as u64;
                if let Some((MaxErrors::Rows(n), prior)) = limits.rejected {
                    if prior + rejected > n {
                        let left = destination.left_behind(rows);
                        let errors = destination.keep_errors();
                        failure.record(
                            next,
                            PipelineError::TooManyBadRows {
                                rejected: prior + rejected,
                                limit: n.to_string(),
                                errors,
                            },
                        );
                        return Written {
                            rows,
                            rejected,
                            busy_s: busy,
                            left_behind: Some(left),
                            destination: None,
                            profiles,
                        };
                    }
                }
            }
            busy += started.elapsed().as_secs_f64();
            rows += scored.output.num_rows() as u64;
            progress.advance(scored.read_rows);
            next += 1;
            let _ = window.try_send(());
            if reached.is_some() {
                failure.limit_reached(next - 1);
                break 'receive;
            }
        }
    }
    if failure.cancelled() {
        return stopped(destination, rows, rejected, busy, profiles);
    }
    Written {
        destination: Some(destination),
        rows,
        rejected,
        busy_s: busy,
        left_behind: None,
        profiles,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_lets_as_many_batches_in_as_it_has_tokens() {
        let (tx, rx) = window(2);
        let (failure, interrupt) = (Failure::default(), Interrupt::default());
        assert!(enter_window(&rx, 0, &failure, &interrupt));
        assert!(enter_window(&rx, 1, &failure, &interrupt));
        assert!(rx.try_recv().is_err(), "a third batch must wait");
        // The writer wrote one: one more may enter.
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(120));
            tx.try_send(()).unwrap();
            tx
        });
        assert!(enter_window(&rx, 2, &failure, &interrupt));
        drop(writer.join().unwrap());
    }

    #[test]
    fn a_waiting_reader_stops_when_the_writer_is_gone_or_a_stage_failed() {
        let (tx, rx) = window(0);
        let (failure, interrupt) = (Failure::default(), Interrupt::default());
        drop(tx);
        assert!(!enter_window(&rx, 0, &failure, &interrupt));

        // The writer waits for batch 0, which failed: the full window must not hang the reader.
        let (_tx, rx) = window(0);
        failure.record(0, PipelineError::Failed(anyhow::anyhow!("batch 0 failed")));
        assert!(!enter_window(&rx, 5, &failure, &interrupt));
    }
}
