//! The one way batchinfer writes a file: under a temporary name in the
//! destination directory, synced, then renamed onto the path. After any failure
//! or kill the path holds nothing new or the complete file. Missing parent
//! directories are created (as Spark and pandas writers do). A temporary file a
//! killed run leaves is named `.<name>.<random>.batchinfer-tmp`, which
//! `lock::remove_leftovers` cleans and input listings skip (hidden).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tempfile::NamedTempFile;

/// Outputs get the permissions of any new file (0666 less the umask), not the
/// owner-only 0600 of a temporary file: other users and jobs read them.
fn output_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o666)
}

/// A file being written; visible at its path only after [`AtomicFile::commit`].
/// Dropped without committing, it removes its temporary file.
pub struct AtomicFile {
    temp: NamedTempFile,
    path: PathBuf,
    overwrite: bool,
}

impl AtomicFile {
    /// Creates the temporary file beside `path` (and any missing parent
    /// directory). With `overwrite` false, an existing `path` is refused now and
    /// again, race-free, at commit.
    pub fn create(path: &Path, overwrite: bool) -> Result<AtomicFile> {
        refuse_special(path)?;
        if !overwrite && path.exists() {
            bail!(
                "{} already exists; pass --overwrite to replace it",
                path.display()
            );
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).with_context(|| {
            format!(
                "cannot create the directory {} for {}; check the path and its permissions",
                dir.display(),
                path.display()
            )
        })?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("output");
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".batchinfer-tmp")
            .permissions(output_permissions())
            .tempfile_in(&dir)
            .with_context(|| {
                format!(
                    "cannot create a file in {} for {}; check that the directory is writable",
                    dir.display(),
                    path.display()
                )
            })?;
        Ok(AtomicFile {
            temp,
            path: path.to_path_buf(),
            overwrite,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A second handle on the temporary file, for writers that own theirs.
    pub fn reopen(&self) -> Result<File> {
        Ok(self.temp.reopen()?)
    }

    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// Syncs the file and renames it onto its path.
    pub fn commit(self) -> Result<()> {
        let AtomicFile {
            temp,
            path,
            overwrite,
        } = self;
        temp.as_file()
            .sync_all()
            .with_context(|| format!("syncing {}", path.display()))?;
        let result = if overwrite {
            temp.persist(&path).map(|_| ())
        } else {
            temp.persist_noclobber(&path).map(|_| ())
        };
        result.map_err(|e| {
            anyhow::anyhow!(
                "cannot move the finished file to {}: {}",
                path.display(),
                e.error
            )
        })
    }
}

/// Refuses a path that exists and is not a regular file: a device, a pipe or a
/// socket would be replaced by the rename that commits the file (as root, even
/// `/dev/null`).
pub fn refuse_special(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() && !m.is_dir() => bail!(
            "{} exists and is not a regular file (a device, pipe or socket): batchinfer commits a file by renaming it onto its path, which would replace it; write to a file, or to standard output with -",
            path.display()
        ),
        _ => Ok(()),
    }
}

/// Writes `body` to `path` atomically, replacing what is there.
pub fn write(path: &Path, body: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path, true)?;
    file.file()
        .write_all(body)
        .with_context(|| format!("writing {}", path.display()))?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appears_only_when_committed_and_parents_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/out.json");
        let mut f = AtomicFile::create(&path, false).unwrap();
        f.file().write_all(b"{}").unwrap();
        assert!(!path.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        // Not replaced without overwrite, also when the path appears meanwhile.
        assert!(AtomicFile::create(&path, false).is_err());
        let other = dir.path().join("a/b/late.json");
        let late = AtomicFile::create(&other, false).unwrap();
        std::fs::write(&other, b"first").unwrap();
        assert!(late.commit().is_err());
        assert_eq!(std::fs::read(&other).unwrap(), b"first");
        // A dropped file leaves nothing behind.
        drop(AtomicFile::create(&dir.path().join("a/gone.json"), false).unwrap());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("a")).unwrap().collect();
        assert_eq!(left.len(), 1, "only b/ is left: {left:?}");
        write(&path, b"[]").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"[]");
    }
}
