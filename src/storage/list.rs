//! Finding the objects behind an input URL: one object, every object under a
//! prefix (read like a directory), or the keys a glob matches. One paginated
//! listing per prefix, never a request per object.

use anyhow::{bail, Result};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::errors::{self, Failure};
use super::read::path;
use super::store::{block_on, bucket};
use super::url::ObjectUrl;
use super::Remote;

/// Whether `key` holds glob characters.
fn is_glob(key: &str) -> bool {
    key.contains(['*', '?', '['])
}

/// Whether a key segment is left out: `_SUCCESS`, `_errors/`, `.tmp` and the
/// like, as in local directories.
fn hidden(segment: &str) -> bool {
    segment.starts_with(['_', '.'])
}

/// The objects `url` names, sorted by key, with the prefix they were listed
/// under (the root of their partition directories). `data` says which keys of a
/// listing are data files (by their extension).
pub fn expand(url: &ObjectUrl, data: impl Fn(&str) -> bool) -> Result<(String, Vec<Remote>)> {
    if is_glob(&url.key) {
        return glob(url, data);
    }
    if !url.key.is_empty() && !url.key.ends_with('/') {
        let b = bucket(url)?;
        match block_on(b.store.head(&path(url))) {
            Ok(meta) => {
                let root = url.parent_prefix().to_string();
                return Ok((root, vec![remote(url, meta)]));
            }
            Err(e) if errors::failure(&e) == Failure::NotFound => {}
            Err(e) => return Err(errors::explain("reading", url, &e)),
        }
    }
    let root = match url.key.trim_end_matches('/') {
        "" => String::new(),
        k => format!("{k}/"),
    };
    let found: Vec<Remote> = list(url, &root)?
        .into_iter()
        .filter(|r| {
            let rest = &r.url.key[root.len()..];
            !rest.split('/').any(hidden) && data(&r.url.key)
        })
        .collect();
    if found.is_empty() {
        bail!(
            "{url}: no object has this key, and no .parquet or .csv object is under it; check the bucket {} and the key {:?}",
            url.bucket,
            url.key
        );
    }
    Ok((root, found))
}

fn glob(url: &ObjectUrl, data: impl Fn(&str) -> bool) -> Result<(String, Vec<Remote>)> {
    let pattern = glob::Pattern::new(&url.key)
        .map_err(|e| anyhow::anyhow!("{url}: invalid glob pattern ({e})"))?;
    let literal: Vec<&str> = url.key.split('/').take_while(|s| !is_glob(s)).collect();
    let root = if literal.is_empty() {
        String::new()
    } else {
        format!("{}/", literal.join("/"))
    };
    let options = glob::MatchOptions {
        require_literal_separator: true,
        ..Default::default()
    };
    let found: Vec<Remote> = list(url, &root)?
        .into_iter()
        .filter(|r| {
            let rest = &r.url.key[root.len()..];
            pattern.matches_with(&r.url.key, options)
                && !rest.split('/').any(hidden)
                && (data(&r.url.key) || !r.url.key.ends_with('/'))
        })
        .collect();
    if found.is_empty() {
        bail!("no object matches {url}; check the pattern and quote it so the shell does not expand it");
    }
    Ok((root, found))
}

/// Every object under `prefix` (a key ending in `/`, or empty), sorted by key.
pub fn list(url: &ObjectUrl, prefix: &str) -> Result<Vec<Remote>> {
    let b = bucket(url)?;
    let at = (!prefix.is_empty()).then(|| object_store::path::Path::from(prefix));
    let listed: Vec<object_store::ObjectMeta> =
        block_on(b.store.list(at.as_ref()).try_collect())
            .map_err(|e| errors::explain("listing", &url.with_key(prefix), &e))?;
    let mut found: Vec<Remote> = listed
        .into_iter()
        .filter(|m| !m.location.as_ref().ends_with('/'))
        .map(|m| {
            let key = m.location.to_string();
            remote(&url.with_key(key), m)
        })
        .collect();
    found.sort_by(|a, b| a.url.key.cmp(&b.url.key));
    Ok(found)
}

fn remote(url: &ObjectUrl, meta: object_store::ObjectMeta) -> Remote {
    Remote {
        url: url.clone(),
        size: meta.size,
        e_tag: meta.e_tag,
        version: meta.version,
    }
}
