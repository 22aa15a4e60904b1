//! Shared by the fuzz targets: a scratch file in memory for the bytes under test,
//! since batchinfer reads inputs and models by path.

use std::path::PathBuf;

pub fn scratch(name: &str, data: &[u8]) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("batchinfer-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&path, data).expect("write scratch file");
    path
}
