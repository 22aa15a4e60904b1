//! The directory of a directory output: a local directory, or a prefix in a
//! bucket (`s3://bucket/scores/`). Parts, manifests, markers and error parts are
//! named relative to it; this is the one place that knows which it is.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::storage::errors::{self, Failure};
use crate::storage::read::path as key_path;
use crate::storage::store::{block_on, bucket};
use crate::storage::ObjectUrl;

/// The version of an object as read or written (None: a local file).
pub type Version = Option<object_store::UpdateVersion>;

/// What a conditional write expects to find.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Nothing there.
    Absent,
    /// This version (None: anything).
    Version(Version),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutDir {
    Local(PathBuf),
    /// A prefix: its key is empty or ends in `/`.
    Object(ObjectUrl),
}

impl OutDir {
    /// The directory a path or URL names (`s3://b/scores` is the prefix `scores/`).
    pub fn parse(s: &str) -> Result<OutDir> {
        Ok(match crate::storage::Location::parse(s)? {
            crate::storage::Location::Local(p) => OutDir::Local(p),
            crate::storage::Location::Object(url) => {
                let key = match url.key.trim_end_matches('/') {
                    "" => String::new(),
                    k => format!("{k}/"),
                };
                OutDir::Object(url.with_key(key))
            }
        })
    }

    pub fn display(&self) -> String {
        match self {
            OutDir::Local(p) => p.display().to_string(),
            OutDir::Object(url) => url.to_string(),
        }
    }

    /// `name` (which may hold `/`) in this directory, as a path or URL.
    pub fn join(&self, name: &str) -> String {
        match self {
            OutDir::Local(p) => p.join(name).display().to_string(),
            OutDir::Object(url) => url.with_key(format!("{}{name}", url.key)).to_string(),
        }
    }

    fn object(&self, name: &str) -> Option<ObjectUrl> {
        match self {
            OutDir::Local(_) => None,
            OutDir::Object(url) => Some(url.with_key(format!("{}{name}", url.key))),
        }
    }

    fn local(&self, name: &str) -> PathBuf {
        match self {
            OutDir::Local(p) => p.join(name),
            OutDir::Object(_) => PathBuf::from(name),
        }
    }

    /// Creates the directory (and its parents); a prefix needs nothing.
    pub fn create(&self) -> Result<()> {
        match self {
            OutDir::Local(p) => std::fs::create_dir_all(p).with_context(|| {
                format!(
                    "cannot create the output directory {}; check the path and its permissions",
                    p.display()
                )
            }),
            OutDir::Object(_) => Ok(()),
        }
    }

    /// The size of `name`, or None when there is none.
    pub fn size(&self, name: &str) -> Result<Option<u64>> {
        match self.object(name) {
            None => Ok(std::fs::metadata(self.local(name)).ok().map(|m| m.len())),
            Some(url) => crate::storage::upload::size(&url),
        }
    }

    /// Whether `name` is there (an error when a store cannot say).
    pub fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.size(name)?.is_some())
    }

    /// The bytes of `name`, or None when there is none.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        if self.is_object() {
            return Ok(self.read_versioned(name)?.map(|(b, _)| b));
        }
        let path = self.local(name);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The bytes of `name` and the version read (None for a local file), or None
    /// when there is none.
    pub fn read_versioned(&self, name: &str) -> Result<Option<(Vec<u8>, Version)>> {
        let Some(url) = self.object(name) else {
            return Ok(self.read(name)?.map(|b| (b, None)));
        };
        use object_store::ObjectStoreExt;
        let store = bucket(&url)?.store;
        let got = block_on(async {
            let got = store.get(&key_path(&url)).await?;
            let meta = got.meta.clone();
            Ok::<_, object_store::Error>((got.bytes().await?, meta))
        });
        match got {
            Ok((bytes, meta)) => Ok(Some((
                bytes.to_vec(),
                Some(object_store::UpdateVersion {
                    e_tag: meta.e_tag,
                    version: meta.version,
                }),
            ))),
            Err(e) if errors::failure(&e) == Failure::NotFound => Ok(None),
            Err(e) => Err(errors::explain("reading", &url, &e)),
        }
    }

    /// Writes `name` whole if it is as `expected` (an object: a conditional
    /// write, If-None-Match or If-Match; a local file: unconditionally, the
    /// shard's lock keeps other runs out). Returns the version written.
    pub fn write_if(&self, name: &str, bytes: &[u8], expected: Expect) -> Result<Version> {
        let Some(url) = self.object(name) else {
            self.write(name, bytes)?;
            return Ok(None);
        };
        if crate::storage::lease::lost() {
            anyhow::bail!(
                "another run took over the lock on {} (this run's lease was not renewed in time); stopping before writing {name}",
                self.display()
            );
        }
        let mode = match expected {
            Expect::Absent => object_store::PutMode::Create,
            Expect::Version(Some(v)) => object_store::PutMode::Update(v),
            Expect::Version(None) => object_store::PutMode::Overwrite,
        };
        let opts = object_store::PutOptions {
            mode,
            ..Default::default()
        };
        let store = bucket(&url)?.store;
        use object_store::ObjectStore;
        match block_on(store.put_opts(&key_path(&url), bytes.to_vec().into(), opts)) {
            Ok(r) => Ok(Some(object_store::UpdateVersion {
                e_tag: r.e_tag,
                version: r.version,
            })),
            Err(e) if errors::failure(&e) == Failure::Conflict => anyhow::bail!(
                "{url} was changed by another writer since this run read or wrote it; nothing more is written (run again with --resume when the other run is done)"
            ),
            Err(e) => Err(errors::explain("writing", &url, &e)),
        }
    }

    /// Writes `name` whole: a local file atomically (temporary name, rename), an
    /// object in one request (an object appears whole or not at all).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        match self {
            OutDir::Local(_) => crate::sink::atomic::write(&self.local(name), bytes),
            OutDir::Object(_) => self
                .write_if(name, bytes, Expect::Version(None))
                .map(|_| ()),
        }
    }

    /// Removes `name` if it is there.
    pub fn remove(&self, name: &str) {
        match self.object(name) {
            None => {
                let _ = std::fs::remove_file(self.local(name));
            }
            Some(url) => {
                use object_store::ObjectStoreExt;
                if let Ok(b) = bucket(&url) {
                    let _ = block_on(b.store.delete(&key_path(&url)));
                }
            }
        }
    }

    /// The names directly in the directory (files and subdirectories), sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = match self {
            OutDir::Local(p) => {
                let mut names = vec![];
                for entry in
                    std::fs::read_dir(p).with_context(|| format!("listing {}", p.display()))?
                {
                    let entry = entry.with_context(|| format!("listing {}", p.display()))?;
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
                names
            }
            OutDir::Object(url) => {
                let listed = crate::storage::list::list(url, &url.key)?;
                let mut names: Vec<String> = listed
                    .iter()
                    .filter_map(|r| {
                        r.url.key[url.key.len()..]
                            .split('/')
                            .next()
                            .map(String::from)
                    })
                    .collect();
                names.dedup();
                names
            }
        };
        names.sort();
        Ok(names)
    }

    /// Whether this is a prefix in a bucket.
    pub fn is_object(&self) -> bool {
        matches!(self, OutDir::Object(_))
    }

    /// The names under `prefix` (recursively), relative to it, sorted.
    pub fn names_under(&self, prefix: &str) -> Result<Vec<String>> {
        match self {
            OutDir::Local(p) => {
                let dir = p.join(prefix);
                let mut names = vec![];
                for entry in walkdir::WalkDir::new(&dir).min_depth(1) {
                    let Ok(entry) = entry else { continue };
                    if entry.file_type().is_file() {
                        if let Ok(rel) = entry.path().strip_prefix(&dir) {
                            names.push(rel.display().to_string());
                        }
                    }
                }
                names.sort();
                Ok(names)
            }
            OutDir::Object(url) => {
                let under = format!("{}{prefix}", url.key);
                let listed = crate::storage::list::list(url, &under)?;
                Ok(listed
                    .iter()
                    .map(|r| r.url.key[under.len()..].to_string())
                    .collect())
            }
        }
    }

    /// Removes everything under `prefix` (a bulk delete in a bucket).
    pub fn remove_under(&self, prefix: &str) -> Result<()> {
        match self {
            OutDir::Local(p) => {
                let dir = p.join(prefix);
                match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(e).with_context(|| format!("removing {}", dir.display()))
                    }
                    _ => Ok(()),
                }
            }
            OutDir::Object(url) => {
                use futures::{StreamExt, TryStreamExt};
                use object_store::ObjectStore;
                let under = url.with_key(format!("{}{prefix}", url.key));
                let store = bucket(url)?.store;
                let locations = futures::stream::iter(
                    crate::storage::list::list(url, &under.key)?
                        .into_iter()
                        .map(|r| Ok(key_path(&r.url))),
                )
                .boxed();
                block_on(store.delete_stream(locations).try_collect::<Vec<_>>())
                    .map_err(|e| errors::explain("deleting under", &under, &e))?;
                Ok(())
            }
        }
    }

    /// Cleans what killed runs left while writing `names`: local temporary
    /// files, or objects' pending uploads (one listing per prefix).
    pub fn remove_leftovers(&self, names: &[String]) {
        if !self.is_object() {
            for name in names {
                crate::sink::lock::remove_leftovers(&self.local(name));
            }
            return;
        }
        let urls: Vec<ObjectUrl> = names.iter().filter_map(|n| self.object(n)).collect();
        if let Err(e) = crate::storage::upload::abort_leftovers_of(&urls) {
            crate::sys::log::warn(&format!("{e:#}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_join_onto_a_directory_or_a_prefix() {
        let local = OutDir::parse("out/scores").unwrap();
        assert_eq!(
            local.join("_errors/part-0.parquet"),
            "out/scores/_errors/part-0.parquet"
        );
        let prefix = OutDir::parse("s3://b/scores").unwrap();
        assert_eq!(prefix, OutDir::parse("s3://b/scores/").unwrap());
        assert_eq!(prefix.join("_SUCCESS"), "s3://b/scores/_SUCCESS");
        assert_eq!(prefix.display(), "s3://b/scores/");
        assert_eq!(
            OutDir::parse("gs://b").unwrap().join("p.parquet"),
            "gs://b/p.parquet"
        );
    }
}
