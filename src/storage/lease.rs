//! One run per output in a bucket at a time. There is no `flock` in object
//! storage: the lock is an object, `<prefix>_batchinfer/<name>.lock`, created only
//! if absent (a conditional write), naming its holder, host, start time and the
//! end of its lease. The holder renews the lease every third of its length
//! (`--lock-lease`, default 60 s). A second run exits 5 naming the holder while the
//! lease runs; a lock whose lease ran out (its holder died) is taken over with a
//! write conditional on the version read, so that only one run takes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::errors::{self, Failure};
use super::read::path;
use super::store::{block_on, bucket, Bucket};
use super::upload::{bookkeeping, random_suffix};
use super::url::ObjectUrl;
use crate::sink::lock::LockError;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Record {
    holder: String,
    host: String,
    pid: u32,
    started: String,
    /// Seconds since the Unix epoch at which the lease ends unless renewed.
    expires: u64,
    lease_seconds: u64,
}

/// Set when a renewal found this process's lock taken by another run: nothing
/// may be committed after that ([`super::upload::Upload::commit`] checks).
static LOST: AtomicBool = AtomicBool::new(false);

/// Whether a lock this process held was taken over by another run.
pub fn lost() -> bool {
    LOST.load(Ordering::SeqCst)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A held lock object; released (deleted) when dropped. A renewal that finds the
/// lock taken by another run sets [`lost`].
pub struct Lease {
    url: ObjectUrl,
    bucket: Bucket,
    version: Arc<Mutex<UpdateVersion>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

/// The lock object of output `url`.
pub fn lock_url(url: &ObjectUrl) -> ObjectUrl {
    bookkeeping(url, ".lock")
}

/// Takes the lock on output `url` for `lease` (renewed while held).
pub fn acquire(url: &ObjectUrl, lease: Duration) -> Result<Lease, LockError> {
    let lock = lock_url(url);
    let bucket = bucket(&lock)?;
    let record = Record {
        holder: random_suffix(),
        host: crate::sink::lock::hostname(),
        pid: std::process::id(),
        started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        expires: now() + lease.as_secs().max(1),
        lease_seconds: lease.as_secs().max(1),
    };
    let version = Arc::new(Mutex::new(claim(url, &lock, &bucket, &record)?));
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let renewer = Renewal {
        bucket: bucket.clone(),
        lock: lock.clone(),
        version: version.clone(),
        stop: stop.clone(),
        record,
        every: lease / 3,
    }
    .start()?;
    Ok(Lease {
        url: lock,
        bucket,
        version,
        stop,
        renewer: Some(renewer),
    })
}

fn put(
    bucket: &Bucket,
    lock: &ObjectUrl,
    mode: PutMode,
    r: &Record,
) -> object_store::Result<UpdateVersion> {
    let body = serde_json::to_vec(r).expect("a record serializes");
    let opts = PutOptions {
        mode,
        ..Default::default()
    };
    let done = block_on(
        bucket
            .store
            .put_opts(&path(lock), PutPayload::from(body), opts),
    )?;
    Ok(UpdateVersion {
        e_tag: done.e_tag,
        version: done.version,
    })
}

/// Creates the lock object, or takes over one whose lease ran out; the version
/// written.
fn claim(
    url: &ObjectUrl,
    lock: &ObjectUrl,
    bucket: &Bucket,
    record: &Record,
) -> Result<UpdateVersion, LockError> {
    let held = |current: &Record| LockError::Held {
        output: url.to_string(),
        holder: format!(
            "pid {} on {} since {}, lease until {}s from now",
            current.pid,
            current.host,
            current.started,
            current.expires.saturating_sub(now())
        ),
        lock: lock.to_string(),
    };
    match put(bucket, lock, PutMode::Create, record) {
        Ok(v) => Ok(v),
        Err(e) if errors::failure(&e) == Failure::Conflict => {
            let (current, version) = read(bucket, lock)?;
            if current.expires > now() {
                return Err(held(&current));
            }
            // The holder stopped renewing: take the lock over, if no one else does first.
            match put(bucket, lock, PutMode::Update(version), record) {
                Ok(v) => Ok(v),
                Err(e) if errors::failure(&e) == Failure::Conflict => {
                    let (current, _) = read(bucket, lock)?;
                    Err(held(&current))
                }
                Err(e) => Err(LockError::Io(errors::explain(
                    "taking over the lock",
                    lock,
                    &e,
                ))),
            }
        }
        Err(e) => Err(LockError::Io(errors::explain("locking", lock, &e))),
    }
}

/// The thread that renews a held lease every third of its length.
struct Renewal {
    bucket: Bucket,
    lock: ObjectUrl,
    version: Arc<Mutex<UpdateVersion>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    record: Record,
    every: Duration,
}

impl Renewal {
    fn start(mut self) -> Result<std::thread::JoinHandle<()>, LockError> {
        std::thread::Builder::new()
            .name("batchinfer-lease".into())
            .spawn(move || while self.wait() && self.renew() {})
            .map_err(|e| LockError::Io(anyhow::anyhow!("starting the lease renewal: {e}")))
    }

    /// Waits a renewal period; false when the lease is being released.
    fn wait(&self) -> bool {
        let (flag, wake) = &*self.stop;
        let stopped = flag.lock().unwrap_or_else(|p| p.into_inner());
        let (stopped, _) = wake
            .wait_timeout_while(stopped, self.every, |s| !*s)
            .unwrap_or_else(|p| p.into_inner());
        !*stopped
    }

    /// Renews the lease; false when another run took the lock.
    fn renew(&mut self) -> bool {
        self.record.expires = now() + self.record.lease_seconds;
        let current = self
            .version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match put(
            &self.bucket,
            &self.lock,
            PutMode::Update(current),
            &self.record,
        ) {
            Ok(written) => {
                *self.version.lock().unwrap_or_else(|p| p.into_inner()) = written;
                true
            }
            Err(e) if errors::failure(&e) == Failure::Conflict => {
                LOST.store(true, Ordering::SeqCst);
                false
            }
            // A failed renewal is tried again at the next tick.
            Err(_) => true,
        }
    }
}

fn read(bucket: &Bucket, lock: &ObjectUrl) -> Result<(Record, UpdateVersion), LockError> {
    let got = block_on(async {
        let got = bucket.store.get(&path(lock)).await?;
        let meta = got.meta.clone();
        Ok::<_, object_store::Error>((got.bytes().await?, meta))
    });
    let (bytes, meta) =
        got.map_err(|e| LockError::Io(errors::explain("reading the lock", lock, &e)))?;
    let record = serde_json::from_slice(&bytes).map_err(|e| {
        LockError::Io(anyhow::anyhow!(
            "the lock {lock} is not one batchinfer wrote ({e}); remove it if no run is writing this output"
        ))
    })?;
    Ok((
        record,
        UpdateVersion {
            e_tag: meta.e_tag,
            version: meta.version,
        },
    ))
}

impl Drop for Lease {
    fn drop(&mut self) {
        {
            let (flag, wake) = &*self.stop;
            *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
            wake.notify_all();
        }
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
        if lost() {
            return;
        }
        // Deleted only while it is still this run's lock.
        let ours = self
            .version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let location = path(&self.url);
        let still =
            block_on(self.bucket.store.head(&location)).is_ok_and(|m| m.e_tag == ours.e_tag);
        if still {
            let _ = block_on(self.bucket.store.delete(&location));
        }
    }
}
