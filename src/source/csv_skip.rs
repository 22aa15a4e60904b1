//! CSV reading under `--on-error skip`: a value that does not parse as its
//! column's type makes its row a bad row instead of failing the run.
//!
//! arrow-csv parses a batch's records together, and one value it cannot parse
//! fails the whole batch. Here the bytes of each batch are kept until it parses;
//! when it does not, they are decoded again one record at a time with the same
//! decoder settings, so every good row is parsed exactly as before. A bad record
//! is read as text and cast to its columns' types (what does not cast is null),
//! so that its kept columns still reach the error file; it is reported to the
//! source's rejected list with its file row, column and reason.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use arrow::array::ArrayRef;
use arrow::compute::{cast_with_options, concat_batches, CastOptions};
use arrow::csv::reader::{Decoder, Format};
use arrow::csv::ReaderBuilder;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::BadValue;

/// Where a skip-mode reader reports the rows it set aside.
pub type Rejected = Arc<Mutex<Vec<BadValue>>>;

/// How to build decoders for one file: its schema, format (without header) and
/// projection, and how to explain a value that does not parse.
pub struct Settings {
    pub schema: SchemaRef,
    pub format: Format,
    pub projection: Vec<usize>,
    pub explain: Box<dyn Fn(ArrowError, u64) -> Option<BadValue> + Send>,
}

impl Settings {
    fn decoder(&self, schema: SchemaRef, batch_size: usize) -> Decoder {
        ReaderBuilder::new(schema)
            .with_format(self.format.clone())
            .with_batch_size(batch_size)
            .with_projection(self.projection.clone())
            .build_decoder()
    }

    /// The file's schema with every column read as text.
    fn text_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.schema
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ))
    }
}

/// Batches of a CSV input (its header already consumed), bad rows set aside.
pub struct SkippingReader<R> {
    input: BufReader<R>,
    settings: Settings,
    decoder: Decoder,
    /// The bytes of the records the decoder holds, for a second pass.
    pending: Vec<u8>,
    /// Data rows emitted so far: the file row of the next one.
    row: u64,
    rejected: Rejected,
    done: bool,
}

impl<R: Read> SkippingReader<R> {
    /// Reads `input` from its start: the header record is skipped first.
    pub fn new(
        input: R,
        settings: Settings,
        batch_size: usize,
        rejected: Rejected,
    ) -> Result<Self> {
        let mut input = BufReader::new(input);
        let mut header = settings.decoder(settings.text_schema(), 1);
        loop {
            let buf = input.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let n = header.decode(buf)?;
            input.consume(n);
            if header.capacity() == 0 {
                break;
            }
        }
        let decoder = settings.decoder(settings.schema.clone(), batch_size);
        Ok(SkippingReader {
            input,
            settings,
            decoder,
            pending: vec![],
            row: 0,
            rejected,
            done: false,
        })
    }

    /// Feeds the decoder until it holds a batch or the input ends.
    fn fill(&mut self) -> Result<()> {
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                self.decoder.decode(&[])?;
                self.done = true;
                return Ok(());
            }
            let n = self.decoder.decode(buf)?;
            self.pending.extend_from_slice(&buf[..n]);
            self.input.consume(n);
            if self.decoder.capacity() == 0 {
                return Ok(());
            }
        }
    }

    /// The failed batch again, one record at a time.
    fn one_by_one(&mut self, first_error: ArrowError) -> Result<RecordBatch> {
        let bytes = std::mem::take(&mut self.pending);
        let mut rows: Vec<RecordBatch> = vec![];
        let mut pos = 0;
        let mut bad_found = false;
        while pos < bytes.len() {
            let mut one = self.settings.decoder(self.settings.schema.clone(), 1);
            let n = one.decode(&bytes[pos..])?;
            if n == 0 {
                break;
            }
            let record = &bytes[pos..pos + n];
            if one.capacity() != 0 {
                // The last record, with no line end after it.
                one.decode(&[])?;
            }
            pos += n;
            match one.flush() {
                Ok(Some(batch)) => rows.push(batch),
                Ok(None) => {}
                Err(e) => {
                    let row = self.row + rows.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                    let Some(bad) = (self.settings.explain)(e, row) else {
                        return Err(anyhow::Error::new(first_error));
                    };
                    rows.push(self.as_text(record)?);
                    self.rejected
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(bad);
                    bad_found = true;
                }
            }
        }
        if !bad_found {
            // The batch failed for another reason than its values.
            return Err(anyhow::Error::new(first_error));
        }
        let schema = Arc::new(self.settings.schema.project(&self.settings.projection)?);
        Ok(concat_batches(&schema, &rows)?)
    }

    /// A bad record as text, cast to the columns' types (what does not cast is null).
    fn as_text(&self, record: &[u8]) -> Result<RecordBatch> {
        let mut text = self.settings.decoder(self.settings.text_schema(), 1);
        text.decode(record)?;
        text.decode(&[])?;
        let strings = text
            .flush()?
            .ok_or_else(|| anyhow::anyhow!("a bad record vanished"))?;
        let target = Arc::new(self.settings.schema.project(&self.settings.projection)?);
        let safe = CastOptions {
            safe: true,
            ..Default::default()
        };
        let columns: Vec<ArrayRef> = strings
            .columns()
            .iter()
            .zip(target.fields())
            .map(|(c, f)| cast_with_options(c, f.data_type(), &safe))
            .collect::<Result<_, _>>()?;
        Ok(RecordBatch::try_new(target, columns)?)
    }
}

impl<R: Read> Iterator for SkippingReader<R> {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if !self.done {
                if let Err(e) = self.fill() {
                    self.done = true;
                    return Some(Err(e));
                }
            }
            let batch = match self.decoder.flush() {
                Ok(Some(batch)) => Ok(batch),
                Ok(None) if self.done => return None,
                Ok(None) => continue,
                Err(e) => self.one_by_one(e),
            };
            self.pending.clear();
            if let Ok(b) = &batch {
                self.row += b.num_rows() as u64;
            }
            return Some(batch);
        }
    }
}
