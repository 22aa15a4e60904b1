//! Reading objects: streamed whole (CSV), or by byte ranges (Parquet: the
//! footer, then the column chunks of each row group, fetched ahead).

use std::collections::VecDeque;
use std::io::Read;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::file::reader::{ChunkReader, Length};

use super::store::{block_on, bucket, runtime};
use super::url::ObjectUrl;
use super::{errors, Remote};

/// Bytes fetched from object stores by this process.
static FETCHED: AtomicU64 = AtomicU64::new(0);

/// Bytes fetched from object stores so far.
pub fn fetched_bytes() -> u64 {
    FETCHED.load(Ordering::Relaxed)
}

fn count(b: &Bytes) {
    FETCHED.fetch_add(b.len() as u64, Ordering::Relaxed);
}

/// `url` as a path in its bucket.
pub fn path(url: &ObjectUrl) -> object_store::path::Path {
    object_store::path::Path::from(url.key.as_str())
}

/// An object read front to back, one response chunk at a time: memory is one
/// chunk, whatever the object's size.
pub struct ObjectReader {
    remote: Remote,
    /// None until the first byte past a prefetched head is needed.
    stream: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    /// Where the stream starts, when it is opened.
    offset: u64,
    chunk: Bytes,
}

impl ObjectReader {
    /// Starts a GET of the object (of this version, when the listing gave one).
    pub fn open(remote: &Remote) -> Result<ObjectReader> {
        let mut reader = ObjectReader::with_head(remote, Bytes::new());
        reader.stream = Some(reader.get_from(0)?);
        Ok(reader)
    }

    /// Reads `head` (the object's first bytes, fetched already), then the rest
    /// with a ranged GET only if it is read that far.
    pub fn with_head(remote: &Remote, head: Bytes) -> ObjectReader {
        ObjectReader {
            remote: remote.clone(),
            stream: None,
            offset: head.len() as u64,
            chunk: head,
        }
    }

    fn get_from(&self, offset: u64) -> Result<BoxStream<'static, object_store::Result<Bytes>>> {
        let b = bucket(&self.remote.url)?;
        let opts = object_store::GetOptions {
            if_match: self.remote.e_tag.clone(),
            range: (offset > 0).then_some(object_store::GetRange::Offset(offset)),
            ..Default::default()
        };
        let got = block_on(b.store.get_opts(&path(&self.remote.url), opts))
            .map_err(|e| errors::explain("reading", &self.remote.url, &e))?;
        Ok(got.into_stream())
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            if self.stream.is_none() {
                if self.offset >= self.remote.size {
                    return Ok(0);
                }
                let stream = self
                    .get_from(self.offset)
                    .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
                self.stream = Some(stream);
            }
            let stream = self.stream.as_mut().expect("opened");
            match block_on(stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => {
                    count(&b);
                    self.chunk = b;
                }
                Some(Err(e)) => {
                    return Err(std::io::Error::other(errors::store_error(
                        "reading",
                        &self.remote.url,
                        &e,
                    )));
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

/// The whole object in memory (a model file).
pub fn read_all(url: &ObjectUrl) -> Result<Bytes> {
    let b = bucket(url)?;
    let got = block_on(async { b.store.get(&path(url)).await?.bytes().await })
        .map_err(|e| errors::explain("reading", url, &e))?;
    count(&got);
    Ok(got)
}

/// How much of an object's end the first request fetches: the footer of most
/// Parquet files fits, so reading it costs one request.
const TAIL_BYTES: u64 = 64 * 1024;

/// A Parquet object for reading its footer: its last bytes fetched at once, any
/// other range fetched when asked for.
pub struct Footer {
    remote: Remote,
    store: std::sync::Arc<dyn ObjectStore>,
    tail_start: u64,
    tail: Bytes,
}

impl Footer {
    pub fn open(remote: &Remote) -> Result<Footer> {
        Footer::with_tail(remote, None)
    }

    /// The footer from `tail`, the object's last bytes fetched already (see
    /// [`Ahead`]), or from a request now.
    pub fn with_tail(remote: &Remote, tail: Option<Bytes>) -> Result<Footer> {
        let store = bucket(&remote.url)?.store;
        let tail = match tail {
            Some(t) => t,
            None => {
                let start = remote.size.saturating_sub(TAIL_BYTES);
                let t = block_on(store.get_range(&path(&remote.url), start..remote.size))
                    .map_err(|e| errors::explain("reading", &remote.url, &e))?;
                count(&t);
                t
            }
        };
        let tail_start = remote.size - tail.len() as u64;
        Ok(Footer {
            remote: remote.clone(),
            store,
            tail_start,
            tail,
        })
    }

    fn range(&self, start: u64, end: u64) -> parquet::errors::Result<Bytes> {
        if start >= self.tail_start && end <= self.remote.size {
            let s = (start - self.tail_start) as usize;
            let e = (end - self.tail_start) as usize;
            return Ok(self.tail.slice(s..e));
        }
        let got =
            block_on(self.store.get_range(&path(&self.remote.url), start..end)).map_err(|e| {
                parquet::errors::ParquetError::External(Box::new(errors::store_error(
                    "reading",
                    &self.remote.url,
                    &e,
                )))
            })?;
        count(&got);
        Ok(got)
    }
}

impl Length for Footer {
    fn len(&self) -> u64 {
        self.remote.size
    }
}

impl ChunkReader for Footer {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        Ok(self.range(start, self.remote.size)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.range(start, start + length as u64)
    }
}

/// Byte ranges of one object fetched into memory: the column chunks of one row
/// group. Reads outside them fail (they would mean the footer lied).
#[derive(Clone)]
pub struct Fetched {
    size: u64,
    ranges: std::sync::Arc<Vec<(u64, Bytes)>>,
}

impl Fetched {
    fn find(&self, start: u64, len: u64) -> parquet::errors::Result<Bytes> {
        for (at, bytes) in self.ranges.iter() {
            let end = at + bytes.len() as u64;
            if start >= *at && start + len <= end {
                let s = (start - at) as usize;
                return Ok(bytes.slice(s..s + len as usize));
            }
        }
        Err(parquet::errors::ParquetError::General(format!(
            "bytes {start}..{} lie outside the column chunks the footer describes: the file is damaged",
            start + len
        )))
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.ranges.iter().map(|(_, b)| b.len() as u64).sum()
    }
}

impl Length for Fetched {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for Fetched {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        // From `start` to the end of the range holding it.
        for (at, bytes) in self.ranges.iter() {
            let end = at + bytes.len() as u64;
            if start >= *at && start < end {
                return Ok(bytes.slice((start - at) as usize..).reader());
            }
        }
        Ok(self.find(start, 0)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.find(start, length as u64)
    }
}

/// Fetches `groups` (each a list of byte ranges of `remote`) in order on a thread
/// of its own, several at a time while the bytes in flight stay under
/// `budget` (at least one group is always in flight). The receiver gets each
/// group's bytes in order; dropping it stops the fetching.
pub fn prefetch(
    remote: &Remote,
    groups: Vec<Vec<Range<u64>>>,
    budget: u64,
) -> Result<Receiver<Result<Fetched>>> {
    let store = bucket(&remote.url)?.store;
    let remote = remote.clone();
    let (tx, rx) = sync_channel(1);
    std::thread::Builder::new()
        .name("batchinfer-fetch".into())
        .spawn(move || {
            let location = path(&remote.url);
            let mut pending = groups.into_iter().peekable();
            let mut in_flight = VecDeque::new();
            let mut bytes_in_flight = 0u64;
            loop {
                while let Some(next) = pending.peek() {
                    let size: u64 = next.iter().map(|r| r.end - r.start).sum();
                    if !in_flight.is_empty() && bytes_in_flight + size > budget {
                        break;
                    }
                    let ranges = pending.next().expect("peeked");
                    let store = store.clone();
                    let location = location.clone();
                    let task = runtime().spawn(async move {
                        let got = store.get_ranges(&location, &ranges).await?;
                        Ok::<_, object_store::Error>(
                            ranges.iter().map(|r| r.start).zip(got).collect::<Vec<_>>(),
                        )
                    });
                    bytes_in_flight += size;
                    in_flight.push_back((size, task));
                }
                let Some((size, task)) = in_flight.pop_front() else {
                    return;
                };
                let item = match block_on(task) {
                    Ok(Ok(ranges)) => {
                        ranges.iter().for_each(|(_, b)| count(b));
                        Ok(Fetched {
                            size: remote.size,
                            ranges: std::sync::Arc::new(ranges),
                        })
                    }
                    Ok(Err(e)) => Err(errors::explain("reading", &remote.url, &e)),
                    Err(e) => {
                        Err(anyhow::Error::from(e).context(format!("reading {}", remote.url)))
                    }
                };
                bytes_in_flight -= size;
                let failed = item.is_err();
                if tx.send(item).is_err() || failed {
                    in_flight.iter().for_each(|(_, t)| t.abort());
                    return;
                }
            }
        })
        .context("starting a fetching thread")?;
    Ok(rx)
}

/// Which end of an object [`Ahead`] fetches.
#[derive(Debug, Clone, Copy)]
pub enum End {
    /// The first 64 KiB (a CSV header).
    Head,
    /// The last 64 KiB (a Parquet footer).
    Tail,
}

/// Objects fetched this many at a time by [`Ahead`].
const AHEAD: usize = 16;

/// [`AHEAD`], or in test builds `BATCHINFER_TEST_AHEAD` (to measure it).
fn ahead() -> usize {
    super::test_knob("BATCHINFER_TEST_AHEAD", AHEAD)
}

/// The ends of many objects, fetched [`AHEAD`] at a time ahead of the one asked
/// for: opening a dataset of thousands of objects reads every header or footer,
/// and one at a time that is thousands of round trips. Memory: `AHEAD` × 64 KiB.
pub struct Ahead {
    wanted: Vec<Option<(Remote, End)>>,
    tasks: std::collections::HashMap<usize, JoinHandle<object_store::Result<Bytes>>>,
    next: usize,
}

use tokio::task::JoinHandle;

impl Ahead {
    /// `wanted[i]`: what to fetch of file `i` (None: nothing, a local file).
    pub fn new(wanted: Vec<Option<(Remote, End)>>) -> Ahead {
        let mut ahead = Ahead {
            wanted,
            tasks: Default::default(),
            next: 0,
        };
        ahead.fill(0);
        ahead
    }

    fn fill(&mut self, from: usize) {
        self.next = self.next.max(from);
        while self.next < self.wanted.len() && self.tasks.len() < ahead().max(1) {
            let i = self.next;
            self.next += 1;
            let Some((remote, end)) = self.wanted[i].clone() else {
                continue;
            };
            let Ok(store) = bucket(&remote.url).map(|b| b.store) else {
                continue;
            };
            let range = match end {
                End::Head => 0..remote.size.min(TAIL_BYTES),
                End::Tail => remote.size.saturating_sub(TAIL_BYTES)..remote.size,
            };
            let location = path(&remote.url);
            let task = runtime().spawn(async move { store.get_range(&location, range).await });
            self.tasks.insert(i, task);
        }
    }

    /// File `i`'s end, if it was fetched (an error: None, and the reader asks again
    /// and reports it).
    pub fn take(&mut self, i: usize) -> Option<Bytes> {
        let task = self.tasks.remove(&i);
        self.fill(i + 1);
        let got = block_on(task?).ok()?.ok()?;
        count(&got);
        Some(got)
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        for task in self.tasks.values() {
            task.abort();
        }
    }
}
