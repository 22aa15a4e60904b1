//! What a failed request says to the person who reads the log: the bucket and
//! key, what was attempted, and what to check. No secret reaches a message: the
//! query string of any URL in the store's own text (where SAS tokens and
//! presigned signatures live) is cut off.

use std::sync::OnceLock;

use regex::Regex;

use super::url::{Cloud, ObjectUrl};

/// Why a request failed, as far as batchinfer acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No such object or bucket.
    NotFound,
    /// Credentials missing, wrong or without the permission.
    Denied,
    /// A conditional request lost: the object exists or changed.
    Conflict,
    /// Anything else (network, server, after the retries).
    Other,
}

/// How `e` failed.
pub fn failure(e: &object_store::Error) -> Failure {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => Failure::NotFound,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => Failure::Denied,
        E::AlreadyExists { .. } | E::Precondition { .. } => Failure::Conflict,
        _ => Failure::Other,
    }
}

/// A request to an object store that failed, explained.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub message: String,
    pub failure: Failure,
}

/// Whether a store request failing is (part of) why `e` happened: also through
/// the I/O and Parquet errors readers wrap it in.
pub fn is_store_failure(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<StoreError>()
            || c.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<StoreError>())
    })
}

/// `doing` (`reading`, `listing`, `writing`…) `url` failed with `e`: a message
/// naming them, with what to check.
pub fn explain(doing: &str, url: &ObjectUrl, e: &object_store::Error) -> anyhow::Error {
    anyhow::Error::new(store_error(doing, url, e))
}

/// [`explain`] as a typed error, for readers that wrap it.
pub fn store_error(doing: &str, url: &ObjectUrl, e: &object_store::Error) -> StoreError {
    let advice = match failure(e) {
        Failure::NotFound => format!(
            "no such object; check the bucket {} and the key {:?}",
            url.bucket, url.key
        ),
        Failure::Denied => format!(
            "access denied; check the credentials ({}) and that they may {doing} in bucket {}",
            credentials_hint(url.cloud),
            url.bucket
        ),
        Failure::Conflict => "another writer changed the object at the same time".into(),
        Failure::Other => "the store did not answer as expected (after retries)".into(),
    };
    StoreError {
        message: format!("{doing} {url}: {advice} ({})", redact(&e.to_string())),
        failure: failure(e),
    }
}

fn credentials_hint(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::S3 => "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, a web identity or the instance role",
        Cloud::Gcs => "GOOGLE_APPLICATION_CREDENTIALS or the instance's service account",
        Cloud::Azure => "AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY or a managed identity",
    }
}

/// `text` with the query string of every URL in it replaced by `?…`.
pub fn redact(text: &str) -> String {
    static QUERY: OnceLock<Regex> = OnceLock::new();
    let query = QUERY.get_or_init(|| {
        Regex::new(r#"(?i)(https?://[^\s?"'()<>]*)\?[^\s"'()<>]*"#).expect("valid regex")
    });
    let text = query.replace_all(text, "$1?…");
    // Signatures quoted outside a URL (a header echoed back in an error body).
    static SIG: OnceLock<Regex> = OnceLock::new();
    let sig = SIG.get_or_init(|| {
        Regex::new(r"(?i)(sig|signature|x-amz-signature|x-amz-security-token|token)=[^&\s]+")
            .expect("valid regex")
    });
    sig.replace_all(&text, "$1=…").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_and_signatures_never_reach_a_message() {
        let text = "error sending request for url (https://acct.blob.core.windows.net/c/k.parquet?sv=2022&sig=SECRET123&se=x): timed out; X-Amz-Signature=abcdef";
        let r = redact(text);
        assert!(!r.contains("SECRET123") && !r.contains("abcdef"), "{r}");
        assert!(
            r.contains("https://acct.blob.core.windows.net/c/k.parquet?…"),
            "{r}"
        );
        assert_eq!(redact("plain text, no url"), "plain text, no url");
    }

    #[test]
    fn a_missing_object_names_the_bucket_and_key() {
        let url = ObjectUrl {
            cloud: Cloud::S3,
            bucket: "b".into(),
            account: None,
            key: "in/x.parquet".into(),
        };
        let e = object_store::Error::NotFound {
            path: "in/x.parquet".into(),
            source: "404".into(),
        };
        let m = explain("reading", &url, &e).to_string();
        assert!(
            m.starts_with("reading s3://b/in/x.parquet: no such object"),
            "{m}"
        );
        assert!(
            m.contains("bucket b") && m.contains("\"in/x.parquet\""),
            "{m}"
        );
        let denied = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "403".into(),
        };
        let m = explain("writing", &url, &denied).to_string();
        assert!(
            m.contains("access denied") && m.contains("AWS_ACCESS_KEY_ID"),
            "{m}"
        );
    }
}
