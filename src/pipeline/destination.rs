//! What the pipeline writes to. The writer thread hands every scored batch, in
//! input order, to one [`Destination`]; `sink` implements it for file, stdout and
//! directory outputs. The pipeline knows no file format.

use anyhow::Result;
use arrow::record_batch::RecordBatch;

/// Where a run's scored batches go: one file, or the part files of a directory.
///
/// Contract: `write` is called with parts in ascending order and batches in
/// input order; nothing is visible at the output path before `commit` returns
/// Ok (stdout excepted, which `left_behind` then describes). Dropping a
/// destination without `commit` leaves the output as it was before the run,
/// less nothing: temporary files are removed, earlier committed parts stay.
pub trait Destination: Send {
    /// Writes a batch of `part` (parts come in ascending order) and the rows
    /// rejected from it.
    fn write(
        &mut self,
        part: usize,
        output: &RecordBatch,
        rejected: Option<&RecordBatch>,
    ) -> Result<()>;
    /// Adds a key-value pair to the metadata of `part`'s file (the part being
    /// written; Parquet outputs only), before it is committed.
    fn annotate(&mut self, _part: usize, _key: &str, _value: &str) {}
    /// How messages name `part`: a directory output's part file; None for a
    /// single output.
    fn part_name(&self, _part: usize) -> Option<String> {
        None
    }
    /// Everything is written: makes the output visible.
    fn commit(self: Box<Self>) -> Result<()>;
    /// Too many bad rows: keeps the rejected rows for the user to see, commits
    /// nothing else, and says where they are.
    fn keep_errors(self: Box<Self>) -> String;
    /// What the output holds if the run stops now, `rows_written` rows in, in
    /// words: "nothing was written to …", or what already reached a reader.
    fn left_behind(&self, rows_written: u64) -> String;
}
