//! The scoring pipeline: one reader thread → rayon workers running the shared
//! plan, one batch per task → one writer thread that restores input order.
//! Channels between the stages are bounded, so a slow disk slows scoring down
//! instead of filling memory; reading, scoring and writing overlap.
//!
//! The first failure (the one earliest in input order) stops the run: the reader
//! stops reading, workers skip what is queued, and the sink is dropped without
//! committing, which removes its temporary file.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;

use crate::interrupt::Interrupt;
use crate::model::{Feed, Model, ScoreError, Session};
use crate::progress::Progress;
use crate::sink::Sink;
use crate::source::Dataset;
use crate::summary::WorkerStats;

/// Everything a run needs, checked and opened before the first batch is read.
pub struct Pipeline {
    pub dataset: Dataset,
    /// Columns to read, indices into the dataset schema, ascending.
    pub projection: Vec<usize>,
    pub model: Arc<Model>,
    /// Feeds over the projected batch.
    pub feeds: Vec<Feed>,
    /// Kept columns, indices into the projected batch, in output order.
    pub keep: Vec<usize>,
    pub out_schema: SchemaRef,
    pub sink: Box<dyn Sink>,
    pub threads: usize,
    pub batch_size: usize,
    pub progress: Progress,
    pub interrupt: Interrupt,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("bad row in {file}, row {row} (0-based, header excluded), column `{column}`: {reason}. Nothing was written; fix or drop the row (--on-error skip is not available yet)")]
    BadRow {
        file: String,
        row: u64,
        column: String,
        reason: String,
    },
    #[error("{0:#}")]
    Failed(anyhow::Error),
    #[error("stopped by {}; nothing was written", Interrupt::name(*.0))]
    Interrupted(i32),
}

/// What the pipeline measured, also after a failure.
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub rows_read: u64,
    pub rows_written: u64,
    pub read_s: f64,
    pub write_s: f64,
    pub workers: WorkerStats,
}

struct ReadBatch {
    seq: u64,
    file: usize,
    first_row: u64,
    batch: RecordBatch,
}

/// The first failure in input order, shared by all stages.
#[derive(Default)]
struct Failure {
    cancel: AtomicBool,
    first: Mutex<Option<(u64, PipelineError)>>,
}

impl Failure {
    fn record(&self, seq: u64, error: PipelineError) {
        self.cancel.store(true, Ordering::SeqCst);
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.as_ref().is_none_or(|(s, _)| seq < *s) {
            *first = Some((seq, error));
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn take(self) -> Option<PipelineError> {
        self.first
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .map(|(_, e)| e)
    }
}

impl Pipeline {
    /// Runs to the end and commits the output, or stops at the first failure.
    pub fn run(self) -> (PipelineStats, Result<(), PipelineError>) {
        let Pipeline {
            mut dataset,
            projection,
            model,
            feeds,
            keep,
            out_schema,
            sink,
            threads,
            batch_size,
            mut progress,
            interrupt,
        } = self;
        let failure = Failure::default();
        let file_names: Vec<String> = dataset.files.iter().map(|f| f.display()).collect();
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
        let (read_tx, read_rx) = sync_channel::<ReadBatch>(threads * 2);
        let (out_tx, out_rx) = sync_channel::<(u64, RecordBatch)>(threads * 2);

        let mut stats = PipelineStats::default();
        let sink = std::thread::scope(|scope| {
            let failure = &failure;
            let reader = scope.spawn(|| {
                read_all(
                    &mut dataset,
                    &projection,
                    batch_size,
                    read_tx,
                    failure,
                    &interrupt,
                )
            });
            let writer = scope.spawn(|| write_in_order(sink, out_rx, &mut progress, failure));
            let workers = pool.install(|| {
                read_rx
                    .into_iter()
                    .par_bridge()
                    .map_init(
                        || model.session(),
                        |session, rb| {
                            score_one(
                                session,
                                &model,
                                &feeds,
                                &keep,
                                &out_schema,
                                &file_names,
                                rb,
                                &out_tx,
                                failure,
                            )
                        },
                    )
                    .reduce(WorkerStats::default, |a, b| a + b)
            });
            drop(out_tx);
            let (rows_read, read_s) = reader.join().unwrap_or_default();
            stats.rows_read = rows_read;
            stats.read_s = read_s;
            stats.workers = workers;
            let (sink, rows_written, write_s) = writer.join().unwrap_or((None, 0, 0.0));
            stats.rows_written = rows_written;
            stats.write_s = write_s;
            sink
        });
        progress.finish();
        if let Some(e) = failure.take() {
            return (stats, Err(e));
        }
        let Some(sink) = sink else {
            return (
                stats,
                Err(PipelineError::Failed(anyhow::anyhow!(
                    "the writer stopped unexpectedly"
                ))),
            );
        };
        let committed = sink.commit().map_err(PipelineError::Failed);
        (stats, committed)
    }
}

/// Reads every file in order; returns rows read and seconds spent reading.
fn read_all(
    dataset: &mut Dataset,
    projection: &[usize],
    batch_size: usize,
    tx: std::sync::mpsc::SyncSender<ReadBatch>,
    failure: &Failure,
    interrupt: &Interrupt,
) -> (u64, f64) {
    let mut seq = 0u64;
    let mut rows = 0u64;
    let mut busy = 0.0;
    for file in 0..dataset.files.len() {
        let started = Instant::now();
        let batches = match dataset.read_file(file, projection, batch_size) {
            Ok(b) => b,
            Err(e) => {
                failure.record(seq, PipelineError::Failed(e));
                return (rows, busy);
            }
        };
        busy += started.elapsed().as_secs_f64();
        let mut first_row = 0u64;
        let mut batches = batches;
        loop {
            if let Some(sig) = interrupt.signal() {
                failure.record(seq, PipelineError::Interrupted(sig));
            }
            if failure.cancelled() {
                return (rows, busy);
            }
            let started = Instant::now();
            let next = batches.next();
            busy += started.elapsed().as_secs_f64();
            let batch = match next {
                None => break,
                Some(Ok(b)) => b,
                Some(Err(e)) => {
                    let e = e.context(format!("after row {first_row}"));
                    failure.record(seq, PipelineError::Failed(e));
                    return (rows, busy);
                }
            };
            let n = batch.num_rows() as u64;
            if n == 0 {
                continue;
            }
            if tx
                .send(ReadBatch {
                    seq,
                    file,
                    first_row,
                    batch,
                })
                .is_err()
            {
                return (rows, busy);
            }
            seq += 1;
            rows += n;
            first_row += n;
        }
    }
    (rows, busy)
}

#[allow(clippy::too_many_arguments)]
fn score_one(
    session: &mut Result<Session>,
    model: &Model,
    feeds: &[Feed],
    keep: &[usize],
    out_schema: &SchemaRef,
    file_names: &[String],
    rb: ReadBatch,
    out: &std::sync::mpsc::SyncSender<(u64, RecordBatch)>,
    failure: &Failure,
) -> WorkerStats {
    if failure.cancelled() {
        return WorkerStats::default();
    }
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            failure.record(
                rb.seq,
                PipelineError::Failed(anyhow::anyhow!("cannot start a model session: {e:#}")),
            );
            return WorkerStats::default();
        }
    };
    let started = Instant::now();
    let predictions = match session.score(model, &rb.batch, feeds) {
        Ok(p) => p,
        Err(ScoreError::BadRow(b)) => {
            failure.record(
                rb.seq,
                PipelineError::BadRow {
                    file: file_names[rb.file].clone(),
                    row: rb.first_row + b.row as u64,
                    column: b.column,
                    reason: b.reason,
                },
            );
            return WorkerStats::default();
        }
        Err(ScoreError::Model(e)) => {
            let rows = rb.batch.num_rows() as u64;
            let e = e.context(format!(
                "{}, rows {}..{}",
                file_names[rb.file],
                rb.first_row,
                rb.first_row + rows
            ));
            failure.record(rb.seq, PipelineError::Failed(e));
            return WorkerStats::default();
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    let rows = rb.batch.num_rows() as u64;
    let mut columns: Vec<_> = keep.iter().map(|&i| rb.batch.column(i).clone()).collect();
    columns.extend(predictions);
    match RecordBatch::try_new(out_schema.clone(), columns).context("assembling the output batch") {
        Ok(batch) => {
            // A closed channel means the writer failed and recorded why.
            let _ = out.send((rb.seq, batch));
        }
        Err(e) => failure.record(rb.seq, PipelineError::Failed(e)),
    }
    WorkerStats {
        rows,
        score_s: elapsed,
        batch_s: vec![elapsed],
    }
}

/// Writes batches in input order; returns the sink (None after a failure), rows
/// written and seconds spent writing.
fn write_in_order(
    mut sink: Box<dyn Sink>,
    rx: std::sync::mpsc::Receiver<(u64, RecordBatch)>,
    progress: &mut Progress,
    failure: &Failure,
) -> (Option<Box<dyn Sink>>, u64, f64) {
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    let mut rows = 0u64;
    let mut busy = 0.0;
    for (seq, batch) in rx {
        pending.insert(seq, batch);
        while let Some(batch) = pending.remove(&next) {
            if failure.cancelled() {
                return (None, rows, busy);
            }
            let started = Instant::now();
            if let Err(e) = sink.write(&batch) {
                failure.record(next, PipelineError::Failed(e));
                return (None, rows, busy);
            }
            busy += started.elapsed().as_secs_f64();
            rows += batch.num_rows() as u64;
            progress.advance(batch.num_rows() as u64);
            next += 1;
        }
    }
    if failure.cancelled() {
        return (None, rows, busy);
    }
    (Some(sink), rows, busy)
}
