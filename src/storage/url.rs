//! Where a path points: a local file, or an object in a bucket.
//!
//! `s3://bucket/key`, `gs://bucket/key`, `az://container/key` (also `azure://`),
//! and `abfs[s]://container@account.dfs.core.windows.net/key` as Azure users write
//! it are objects; `file:///abs/path` and plain paths are local.

use std::fmt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// The cloud a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cloud {
    S3,
    Gcs,
    Azure,
}

impl Cloud {
    fn scheme(self) -> &'static str {
        match self {
            Cloud::S3 => "s3",
            Cloud::Gcs => "gs",
            Cloud::Azure => "az",
        }
    }
}

/// An object, or a prefix of objects, in a bucket (an Azure container).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectUrl {
    pub cloud: Cloud,
    pub bucket: String,
    /// The storage account, when the URL names it (`abfss://c@account.dfs…`).
    pub account: Option<String>,
    /// The key without a leading `/`; a trailing `/` is kept (it marks a prefix).
    pub key: String,
}

impl ObjectUrl {
    /// The same bucket, another key.
    pub fn with_key(&self, key: impl Into<String>) -> ObjectUrl {
        ObjectUrl {
            key: key.into(),
            ..self.clone()
        }
    }

    /// The key's last segment.
    pub fn name(&self) -> &str {
        self.key
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
    }

    /// The key up to and including its last `/` (empty at the bucket's root).
    pub fn parent_prefix(&self) -> &str {
        let key = self.key.trim_end_matches('/');
        match key.rfind('/') {
            Some(i) => &key[..=i],
            None => "",
        }
    }
}

impl fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.account {
            Some(account) => write!(
                f,
                "abfss://{}@{account}.dfs.core.windows.net/{}",
                self.bucket, self.key
            ),
            None => write!(f, "{}://{}/{}", self.cloud.scheme(), self.bucket, self.key),
        }
    }
}

/// A path as given: on this machine, or in object storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    Object(ObjectUrl),
}

/// Whether `s` is written as a URL with a scheme we know (`s3://…`, `file://…`).
pub fn is_url(s: &str) -> bool {
    scheme_of(s).is_some()
}

fn scheme_of(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let known = ["s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "file"];
    known
        .contains(&scheme.to_ascii_lowercase().as_str())
        .then_some(scheme)
}

impl Location {
    /// Reads a path or URL. Other schemes (`http://`, `hdfs://`) are refused by name.
    pub fn parse(s: &str) -> Result<Location> {
        let Some(scheme) = scheme_of(s) else {
            if let Some((scheme, _)) = s.split_once("://") {
                if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()) {
                    bail!(
                        "{s}: the scheme {scheme}:// is not supported; use a local path, file://, s3://, gs://, az:// or abfss://"
                    );
                }
            }
            return Ok(Location::Local(PathBuf::from(s)));
        };
        let rest = &s[scheme.len() + 3..];
        let cloud = match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    bail!("{s}: a file:// URL needs an absolute path (file:///data/x.parquet)");
                }
                let decoded = percent_encoding::percent_decode_str(path)
                    .decode_utf8()
                    .with_context(|| format!("{s}: the path is not valid UTF-8 once decoded"))?;
                return Ok(Location::Local(PathBuf::from(decoded.as_ref())));
            }
            "s3" | "s3a" => Cloud::S3,
            "gs" => Cloud::Gcs,
            _ => Cloud::Azure,
        };
        let (host, key) = rest.split_once('/').unwrap_or((rest, ""));
        let (bucket, account) = match scheme.to_ascii_lowercase().as_str() {
            "abfs" | "abfss" => {
                let Some((container, host)) = host.split_once('@') else {
                    bail!("{s}: write Azure paths as abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/KEY or az://CONTAINER/KEY");
                };
                let account = host.split('.').next().unwrap_or_default();
                (container.to_string(), Some(account.to_string()))
            }
            _ => (host.to_string(), None),
        };
        if bucket.is_empty() {
            bail!("{s}: the URL names no bucket; write {scheme}://BUCKET/KEY");
        }
        if key.split('/').any(|seg| seg == "." || seg == "..") {
            bail!("{s}: object keys with . or .. segments are not supported");
        }
        Ok(Location::Object(ObjectUrl {
            cloud,
            bucket,
            account,
            key: key.trim_start_matches('/').to_string(),
        }))
    }

    pub fn object(&self) -> Option<&ObjectUrl> {
        match self {
            Location::Object(o) => Some(o),
            Location::Local(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(s: &str) -> ObjectUrl {
        Location::parse(s).unwrap().object().unwrap().clone()
    }

    #[test]
    fn urls_of_each_cloud_are_read() {
        let o = object("s3://bucket/events/date=2024-01-01/a.parquet");
        assert_eq!((o.cloud, o.bucket.as_str()), (Cloud::S3, "bucket"));
        assert_eq!(o.key, "events/date=2024-01-01/a.parquet");
        assert_eq!(o.name(), "a.parquet");
        assert_eq!(o.parent_prefix(), "events/date=2024-01-01/");
        assert_eq!(
            o.to_string(),
            "s3://bucket/events/date=2024-01-01/a.parquet"
        );
        assert_eq!(object("s3a://b/k").cloud, Cloud::S3);
        let g = object("gs://my-bucket/scores/");
        assert_eq!((g.cloud, g.key.as_str()), (Cloud::Gcs, "scores/"));
        assert_eq!(g.name(), "scores");
        let a = object("az://container/dir/x.csv");
        assert_eq!(
            (a.cloud, a.bucket.as_str(), a.account.as_deref()),
            (Cloud::Azure, "container", None)
        );
        let abfss = object("abfss://data@myaccount.dfs.core.windows.net/in/x.parquet");
        assert_eq!(abfss.cloud, Cloud::Azure);
        assert_eq!(abfss.bucket, "data");
        assert_eq!(abfss.account.as_deref(), Some("myaccount"));
        assert_eq!(abfss.key, "in/x.parquet");
        assert_eq!(
            abfss.to_string(),
            "abfss://data@myaccount.dfs.core.windows.net/in/x.parquet"
        );
        assert_eq!(object("s3://b").key, "");
        assert_eq!(object("s3://b").parent_prefix(), "");
    }

    #[test]
    fn file_urls_and_plain_paths_are_local() {
        assert_eq!(
            Location::parse("file:///data/a%20b.parquet").unwrap(),
            Location::Local("/data/a b.parquet".into())
        );
        assert_eq!(
            Location::parse("data/x.csv").unwrap(),
            Location::Local("data/x.csv".into())
        );
        assert_eq!(Location::parse("-").unwrap(), Location::Local("-".into()));
        assert!(!is_url("data/x.csv") && is_url("S3://b/k") && is_url("file:///x"));
    }

    #[test]
    fn malformed_and_unknown_urls_are_refused_by_name() {
        for (url, says) in [
            ("s3:///key", "names no bucket"),
            ("file://relative/x", "absolute path"),
            (
                "abfss://account.dfs.core.windows.net/x",
                "CONTAINER@ACCOUNT",
            ),
            ("http://example.com/x.parquet", "http:// is not supported"),
            ("hdfs://nn/x", "hdfs:// is not supported"),
            ("s3://b/a/../x", ". or .. segments"),
        ] {
            let e = Location::parse(url).unwrap_err().to_string();
            assert!(e.contains(says), "{url}: {e}");
        }
    }
}
