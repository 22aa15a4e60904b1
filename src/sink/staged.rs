//! The bytes of one output file on their way to its path or key: a local
//! temporary file renamed at commit ([`AtomicFile`]), or an object's multipart
//! upload completed at commit ([`Upload`]). Dropped without committing, either
//! leaves nothing at the output.

use std::fs::File;
use std::io::Write;

use anyhow::Result;

use super::atomic::AtomicFile;
use super::OutputTarget;
use crate::storage::upload::Upload;

pub enum Staged {
    Local { temp: AtomicFile, file: File },
    Object(Upload),
}

impl Staged {
    /// Starts writing `target` (a file or one object), refusing an existing one
    /// unless `--overwrite`.
    pub fn create(target: &OutputTarget) -> Result<Staged> {
        Ok(match &target.remote {
            Some(url) => Staged::Object(Upload::create(url, target.overwrite)?),
            None => {
                let temp = AtomicFile::create(&target.path, target.overwrite)?;
                let file = temp.reopen()?;
                Staged::Local { temp, file }
            }
        })
    }

    /// Makes the output visible, complete, at its path or key.
    pub fn commit(self) -> Result<()> {
        match self {
            Staged::Local { temp, file } => {
                drop(file);
                temp.commit()
            }
            Staged::Object(upload) => upload.commit(),
        }
    }
}

impl Write for Staged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Staged::Local { file, .. } => file.write(buf),
            Staged::Object(upload) => upload.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Staged::Local { file, .. } => file.write_all(buf),
            Staged::Object(upload) => upload.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Staged::Local { file, .. } => file.flush(),
            Staged::Object(upload) => upload.flush(),
        }
    }
}
