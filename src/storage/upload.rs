//! Writing objects so that a key holds nothing or a complete object: a
//! multipart upload, completed only by [`Upload::commit`] and aborted when
//! dropped. A run killed with SIGKILL cannot abort its upload; it leaves a
//! marker naming the upload under `<prefix>_batchinfer/`, and the next run on
//! the same output aborts what the marker names ([`abort_leftovers`]).

use std::collections::VecDeque;
use std::io::Write;

use anyhow::{bail, Context, Result};
use futures::TryStreamExt;
use object_store::multipart::PartId;
use object_store::path::Path;
use object_store::{MultipartId, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio::task::JoinHandle;

use super::errors::{self, Failure};
use super::read::path;
use super::store::{block_on, bucket, runtime, Bucket};
use super::url::ObjectUrl;

/// Bytes per part: S3 wants at least 5 MiB (but for the last part) and at most
/// 10,000 parts, so objects up to ~78 GiB.
const PART_BYTES: usize = 8 << 20;
/// Parts uploading at once; memory is about (this + 1) parts.
const PARTS_IN_FLIGHT: usize = 3;

/// Where the markers of `url`'s uploads and its lock live: a hidden prefix
/// beside it, skipped by readers of the prefix (names starting with `_`).
pub fn bookkeeping(url: &ObjectUrl, suffix: &str) -> ObjectUrl {
    url.with_key(format!(
        "{}_batchinfer/{}{suffix}",
        url.parent_prefix(),
        url.name()
    ))
}

/// The size of the object at `url`, or None when there is none.
pub fn size(url: &ObjectUrl) -> Result<Option<u64>> {
    let b = bucket(url)?;
    match block_on(b.store.head(&path(url))) {
        Ok(meta) => Ok(Some(meta.size)),
        Err(e) if errors::failure(&e) == Failure::NotFound => Ok(None),
        Err(e) => Err(errors::explain("checking", url, &e)),
    }
}

/// Whether an object exists at `url`.
pub fn exists(url: &ObjectUrl) -> Result<bool> {
    Ok(size(url)?.is_some())
}

/// Refuses an existing object unless `overwrite`.
pub fn check_free(url: &ObjectUrl, overwrite: bool) -> Result<()> {
    if !overwrite && exists(url)? {
        bail!("output {url} already exists; pass --overwrite to replace it");
    }
    Ok(())
}

/// Writes a small object in one request; without `overwrite` only if no object
/// is there (a conditional write: safe against a race).
pub fn put(url: &ObjectUrl, bytes: Vec<u8>, overwrite: bool) -> Result<()> {
    let b = bucket(url)?;
    let mode = if overwrite {
        PutMode::Overwrite
    } else {
        PutMode::Create
    };
    let opts = PutOptions {
        mode,
        ..Default::default()
    };
    match block_on(b.store.put_opts(&path(url), PutPayload::from(bytes), opts)) {
        Ok(_) => Ok(()),
        Err(e) if errors::failure(&e) == Failure::Conflict => {
            bail!("{url} already exists; pass --overwrite to replace it")
        }
        Err(e) => Err(errors::explain("writing", url, &e)),
    }
}

/// What a marker records of an upload.
#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    key: String,
    upload_id: String,
    host: String,
    pid: u32,
    started: String,
}

/// Aborts the uploads to `url` that killed runs left (their markers say which).
/// Returns how many.
pub fn abort_leftovers(url: &ObjectUrl) -> Result<usize> {
    abort_leftovers_of(std::slice::from_ref(url))
}

/// [`abort_leftovers`] for several objects: one listing per prefix they are in.
pub fn abort_leftovers_of(urls: &[ObjectUrl]) -> Result<usize> {
    let mut by_prefix: std::collections::BTreeMap<String, Vec<&ObjectUrl>> = Default::default();
    for url in urls {
        by_prefix
            .entry(url.parent_prefix().to_string())
            .or_default()
            .push(url);
    }
    let mut aborted = 0;
    for (prefix, urls) in by_prefix {
        let first = urls[0];
        let b = bucket(first)?;
        let dir = Path::from(prefix.clone() + "_batchinfer");
        let listed: Vec<object_store::ObjectMeta> =
            block_on(b.store.list(Some(&dir)).try_collect())
                .map_err(|e| errors::explain("listing", &first.with_key(dir.to_string()), &e))?;
        for meta in listed {
            let Some(url) = urls.iter().find(|u| {
                meta.location
                    .as_ref()
                    .starts_with(&bookkeeping(u, ".upload-").key)
            }) else {
                continue;
            };
            let read = block_on(async { b.store.get(&meta.location).await?.bytes().await });
            if let Ok(Ok(marker)) = read.map(|bytes| serde_json::from_slice::<Marker>(&bytes)) {
                let id: MultipartId = marker.upload_id.clone();
                // An upload that is gone already (completed, aborted, expired) is fine.
                let _ = block_on(b.multipart.abort_multipart(&path(url), &id));
                aborted += 1;
            }
            let _ = block_on(b.store.delete(&meta.location));
        }
    }
    Ok(aborted)
}

/// Outputs up to this size are sent in one conditional PUT at commit: without
/// `--overwrite` it is If-None-Match, so another writer that created the object
/// meanwhile makes the commit fail instead of being replaced. Larger outputs
/// become a multipart upload, whose completion object_store cannot make
/// conditional: the key is checked again just before completing.
const SINGLE_PUT_BYTES: usize = 32 << 20;

/// [`SINGLE_PUT_BYTES`], or in test builds `BATCHINFER_TEST_SINGLE_PUT_BYTES`
/// (0: every output is a multipart upload, so tests can catch one midway).
fn single_put_bytes() -> usize {
    super::test_knob("BATCHINFER_TEST_SINGLE_PUT_BYTES", SINGLE_PUT_BYTES)
}

/// A multipart upload under way, and the marker that names it.
struct Multipart {
    id: MultipartId,
    marker: Path,
}

/// An object being written. Invisible at its key until [`Upload::commit`];
/// dropped without committing, it aborts the upload.
pub struct Upload {
    url: ObjectUrl,
    bucket: Bucket,
    /// None until the output outgrows one PUT.
    multipart: Option<Multipart>,
    overwrite: bool,
    buffer: Vec<u8>,
    running: VecDeque<JoinHandle<object_store::Result<PartId>>>,
    parts: Vec<PartId>,
    committed: bool,
}

impl Upload {
    /// Starts writing `url`, refusing an existing object unless `overwrite`.
    pub fn create(url: &ObjectUrl, overwrite: bool) -> Result<Upload> {
        check_free(url, overwrite)?;
        let mut upload = Upload {
            url: url.clone(),
            bucket: bucket(url)?,
            multipart: None,
            overwrite,
            buffer: Vec::with_capacity(PART_BYTES),
            running: VecDeque::new(),
            parts: vec![],
            committed: false,
        };
        if single_put_bytes() == 0 {
            upload.start_multipart()?;
        }
        Ok(upload)
    }

    /// Starts the multipart upload and records it in a marker.
    fn start_multipart(&mut self) -> Result<()> {
        let id = block_on(self.bucket.multipart.create_multipart(&path(&self.url)))
            .map_err(|e| errors::explain("writing", &self.url, &e))?;
        let marker_url = bookkeeping(&self.url, &format!(".upload-{}.json", random_suffix()));
        let marker = Marker {
            key: self.url.key.clone(),
            upload_id: id.clone(),
            host: crate::sink::lock::hostname(),
            pid: std::process::id(),
            started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        self.multipart = Some(Multipart {
            id,
            marker: path(&marker_url),
        });
        put(&marker_url, serde_json::to_vec(&marker)?, true)
            .context("recording the upload, so that a later run can clean it up")
    }

    fn send_part(&mut self) -> std::io::Result<()> {
        let data = PutPayload::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(PART_BYTES),
        ));
        let index = self.parts.len() + self.running.len();
        let store = self.bucket.multipart.clone();
        let location = path(&self.url);
        let id = self.multipart.as_ref().expect("started").id.clone();
        self.running.push_back(
            runtime().spawn(async move { store.put_part(&location, &id, index, data).await }),
        );
        while self.running.len() > PARTS_IN_FLIGHT {
            self.wait_one()?;
        }
        Ok(())
    }

    fn wait_one(&mut self) -> std::io::Result<()> {
        let Some(task) = self.running.pop_front() else {
            return Ok(());
        };
        let part = block_on(task)
            .map_err(std::io::Error::other)?
            .map_err(|e| {
                std::io::Error::other(format!("{:#}", errors::explain("uploading", &self.url, &e)))
            })?;
        self.parts.push(part);
        Ok(())
    }

    /// Makes the object appear at its key, complete: one PUT, or the rest of the
    /// parts and the upload's completion.
    pub fn commit(mut self) -> Result<()> {
        if super::lease::lost() {
            bail!(
                "another run took over the lock on {} (this run's lease was not renewed in time); nothing was committed",
                self.url
            );
        }
        let url = self.url.clone();
        let appeared = move || {
            anyhow::anyhow!(
                "output {url} appeared while this run wrote it (another writer?); nothing was replaced"
            )
        };
        if self.multipart.is_none() {
            let body = std::mem::take(&mut self.buffer);
            return match put(&self.url, body, self.overwrite) {
                Ok(()) => {
                    self.committed = true;
                    Ok(())
                }
                Err(e) if !self.overwrite && exists(&self.url).unwrap_or(false) => {
                    Err(appeared().context(format!("{e:#}")))
                }
                Err(e) => Err(e),
            };
        }
        if !self.buffer.is_empty() || self.parts.len() + self.running.len() == 0 {
            self.send_part()?;
        }
        while !self.running.is_empty() {
            self.wait_one()?;
        }
        if !self.overwrite && exists(&self.url)? {
            return Err(appeared());
        }
        let parts = std::mem::take(&mut self.parts);
        let Multipart { id, marker } = self.multipart.as_ref().expect("started");
        block_on(
            self.bucket
                .multipart
                .complete_multipart(&path(&self.url), id, parts),
        )
        .map_err(|e| errors::explain("completing the upload of", &self.url, &e))?;
        self.committed = true;
        let _ = block_on(self.bucket.store.delete(marker));
        Ok(())
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.multipart.is_none() {
            self.buffer.extend_from_slice(buf);
            if self.buffer.len() >= single_put_bytes() {
                self.start_multipart()
                    .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
                let held = std::mem::take(&mut self.buffer);
                for chunk in held.chunks(PART_BYTES) {
                    self.buffer.extend_from_slice(chunk);
                    if self.buffer.len() == PART_BYTES {
                        self.send_part()?;
                    }
                }
            }
            return Ok(buf.len());
        }
        let room = PART_BYTES - self.buffer.len();
        let n = room.min(buf.len());
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() == PART_BYTES {
            self.send_part()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for task in &self.running {
            task.abort();
        }
        if let Some(Multipart { id, marker }) = &self.multipart {
            let _ = block_on(self.bucket.multipart.abort_multipart(&path(&self.url), id));
            let _ = block_on(self.bucket.store.delete(marker));
        }
    }
}

/// A short random name part (for markers).
pub fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", h.finish())
}
