//! Clients for the buckets a run touches, built once per bucket from the standard
//! environment of each cloud, and the small runtime their requests run on.
//!
//! Every call here blocks the calling thread until the store answers: the
//! pipeline's threads are plain threads, and the requests themselves run on a
//! two-thread tokio runtime shared by the whole process.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::multipart::MultipartStore;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};

use super::url::{Cloud, ObjectUrl};

/// A bucket's client, with the multipart calls its uploads use.
#[derive(Clone)]
pub struct Bucket {
    pub store: Arc<dyn ObjectStore>,
    pub multipart: Arc<dyn MultipartStore>,
}

/// The runtime every request runs on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("batchinfer-store")
            .enable_all()
            .build()
            .expect("starting the object-store runtime")
    })
}

/// Runs `f` to completion on the store runtime, blocking this thread.
pub fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// The client for `url`'s bucket (built on first use).
pub fn bucket(url: &ObjectUrl) -> Result<Bucket> {
    type Key = (Cloud, String, Option<String>);
    static CLIENTS: OnceLock<Mutex<HashMap<Key, Bucket>>> = OnceLock::new();
    let key = (url.cloud, url.bucket.clone(), url.account.clone());
    let mut clients = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(b) = clients.get(&key) {
        return Ok(b.clone());
    }
    let b = build(url).with_context(|| {
        format!(
            "cannot set up a client for {}://{} from the environment",
            match url.cloud {
                Cloud::S3 => "s3",
                Cloud::Gcs => "gs",
                Cloud::Azure => "az",
            },
            url.bucket
        )
    })?;
    clients.insert(key, b.clone());
    Ok(b)
}

fn retry_config() -> RetryConfig {
    let r = super::settings().retries;
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: r.max_retries,
        retry_timeout: r.timeout,
    }
}

/// Loopback endpoints (test servers, MinIO on the node) are plain HTTP: an
/// `http://` endpoint in the environment allows it, as `AWS_ALLOW_HTTP=true` does.
fn plain_http(vars: &[&str]) -> bool {
    vars.iter()
        .any(|v| std::env::var(v).is_ok_and(|e| e.starts_with("http://")))
}

fn build(url: &ObjectUrl) -> Result<Bucket> {
    Ok(match url.cloud {
        Cloud::S3 => {
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(&url.bucket)
                .with_retry(retry_config());
            if plain_http(&["AWS_ENDPOINT_URL", "AWS_ENDPOINT", "AWS_ENDPOINT_URL_S3"]) {
                builder = builder.with_allow_http(true);
            }
            let s3 = Arc::new(builder.build()?);
            Bucket {
                store: s3.clone(),
                multipart: s3,
            }
        }
        Cloud::Gcs => {
            let gcs = Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&url.bucket)
                    .with_retry(retry_config())
                    .build()?,
            );
            Bucket {
                store: gcs.clone(),
                multipart: gcs,
            }
        }
        Cloud::Azure => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_container_name(&url.bucket)
                .with_retry(retry_config());
            if plain_http(&["AZURE_STORAGE_ENDPOINT"]) {
                builder = builder.with_allow_http(true);
            }
            if let Some(account) = &url.account {
                builder = builder.with_account(account);
            }
            let az = Arc::new(builder.build()?);
            Bucket {
                store: az.clone(),
                multipart: az,
            }
        }
    })
}
