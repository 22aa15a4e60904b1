//! One run per output at a time. A run holds an exclusive lock on
//! `.<output name>.batchinfer-lock` beside the output, written with who holds it.
//! A second run exits 5 at once, naming the holder. The operating system drops the
//! lock when its holder dies, so a lock left by a killed run is simply taken over.
//! A run that ends removes the lock file while still holding the lock; a run that
//! locked a file just unlinked that way sees that the path no longer names it and
//! tries again.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};

/// A held lock; the file is removed and the lock released when dropped (the OS
/// releases it if the process ends first).
#[derive(Debug)]
pub struct OutputLock {
    _file: File,
    pub path: PathBuf,
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another batchinfer run is writing {output}: {holder} (lock file {lock}); wait for it to finish, or choose another output")]
    Held {
        output: String,
        holder: String,
        lock: String,
    },
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

pub fn lock_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("output");
    output.with_file_name(format!(".{name}.batchinfer-lock"))
}

pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return "unknown host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Takes the lock for `output`, or says who holds it.
pub fn acquire(output: &Path) -> Result<OutputLock, LockError> {
    use std::os::unix::fs::MetadataExt;
    let path = lock_path(output);
    for _ in 0..10 {
        let file = try_acquire(&path, output)?;
        let locked = file.metadata().map(|m| (m.dev(), m.ino())).ok();
        let current = std::fs::metadata(&path).map(|m| (m.dev(), m.ino())).ok();
        if locked.is_some() && locked == current {
            return Ok(OutputLock { _file: file, path });
        }
        // The previous holder removed the file between our open and our lock:
        // closing it releases the lock on the unlinked file; try the path again.
    }
    Err(LockError::Io(anyhow::anyhow!(
        "could not settle the lock file {}",
        path.display()
    )))
}

/// Opens and locks the lock file, writing who holds it.
fn try_acquire(path: &Path, output: &Path) -> Result<File, LockError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot create the lock file {}; check that the output directory exists and is writable", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = if holder.trim().is_empty() {
                "holder unknown".to_string()
            } else {
                holder.trim().to_string()
            };
            return Err(LockError::Held {
                output: output.display().to_string(),
                holder,
                lock: path.display().to_string(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(LockError::Io(
                anyhow::Error::new(e).context(format!("locking {}", path.display())),
            ));
        }
    }
    let since = humantime::format_rfc3339_seconds(SystemTime::now());
    let who = format!("pid {} on {} since {since}", std::process::id(), hostname());
    let mut write = || -> std::io::Result<()> {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(who.as_bytes())?;
        file.flush()
    };
    write().with_context(|| format!("writing {}", path.display()))?;
    Ok(file)
}

/// Removes temporary files a killed run left beside `output`: `.<name>.<random>.batchinfer-tmp`,
/// the random part without a dot, so that the temporary file of another output
/// whose name starts with this one's (a summary `<name>.json` this run is about
/// to write) is left alone. Only called while holding the lock, so none of them
/// belongs to a live run.
pub fn remove_leftovers(output: &Path) {
    let (Some(dir), Some(name)) = (output.parent(), output.file_name().and_then(|n| n.to_str()))
    else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(f) = file_name.to_str() else {
            continue;
        };
        let random = f
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".batchinfer-tmp"));
        if random.is_some_and(|r| !r.is_empty() && !r.contains('.')) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("scores.parquet");
        let first = acquire(&out).unwrap();
        match acquire(&out) {
            Err(LockError::Held { holder, .. }) => assert!(
                holder.contains(&format!("pid {}", std::process::id())),
                "{holder}"
            ),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        acquire(&out).expect("free again once the holder is gone");
    }

    #[test]
    fn leftovers_of_this_output_only_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("scores.parquet");
        std::fs::write(
            dir.path().join(".scores.parquet.abc123.batchinfer-tmp"),
            b"x",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".other.parquet.abc123.batchinfer-tmp"),
            b"x",
        )
        .unwrap();
        // Another output's, whose name starts with this one's.
        std::fs::write(
            dir.path()
                .join(".scores.parquet.json.abc123.batchinfer-tmp"),
            b"x",
        )
        .unwrap();
        remove_leftovers(&out);
        assert!(dir
            .path()
            .join(".scores.parquet.json.abc123.batchinfer-tmp")
            .exists());
        assert!(!dir
            .path()
            .join(".scores.parquet.abc123.batchinfer-tmp")
            .exists());
        assert!(dir
            .path()
            .join(".other.parquet.abc123.batchinfer-tmp")
            .exists());
    }
}
