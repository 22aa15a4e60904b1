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
    url: ObjectUrl,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
}

impl ObjectReader {
    /// Starts a GET of the object (of this version, when the listing gave one).
    pub fn open(remote: &Remote) -> Result<ObjectReader> {
        let b = bucket(&remote.url)?;
        let opts = object_store::GetOptions {
            if_match: remote.e_tag.clone(),
            ..Default::default()
        };
        let got = block_on(b.store.get_opts(&path(&remote.url), opts))
            .map_err(|e| errors::explain("reading", &remote.url, &e))?;
        Ok(ObjectReader {
            url: remote.url.clone(),
            stream: got.into_stream(),
            chunk: Bytes::new(),
        })
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => {
                    count(&b);
                    self.chunk = b;
                }
                Some(Err(e)) => {
                    return Err(std::io::Error::other(errors::store_error(
                        "reading", &self.url, &e,
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
        let store = bucket(&remote.url)?.store;
        let tail_start = remote.size.saturating_sub(TAIL_BYTES);
        let tail = block_on(store.get_range(&path(&remote.url), tail_start..remote.size))
            .map_err(|e| errors::explain("reading", &remote.url, &e))?;
        count(&tail);
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
