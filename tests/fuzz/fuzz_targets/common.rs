//! Shared by the fuzz targets: a scratch file in memory for the bytes under test
//! (batchinfer reads inputs and models by path), and reading an input to its end.

use std::path::PathBuf;

use batchinfer::source::{CsvOptions, Dataset, Format, InputFile};

/// batchinfer's panic hook, as the binary installs it (libfuzzer-sys installs one
/// that aborts even on panics batchinfer catches and reports as errors). A panic
/// batchinfer does not catch still reaches libFuzzer, which reports a crash.
pub fn setup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(batchinfer::sys::panics::install_hook);
}

pub fn scratch(name: &str, data: &[u8]) -> PathBuf {
    setup();
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("batchinfer-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&path, data).expect("write scratch file");
    path
}

/// Opens `data` as an input of `format` and reads every column of every batch.
/// Errors are expected; a panic or a hang is a finding.
pub fn read_input(name: &str, data: &[u8], format: Format) {
    let path = scratch(name, data);
    let files = vec![InputFile {
        path,
        format,
        size: data.len() as u64,
        partitions: vec![],
    }];
    let options =
        CsvOptions::new(b',', b'"', &["".to_string(), "NA".to_string()]).expect("options");
    let Ok(mut dataset) = Dataset::open(files, options) else {
        return;
    };
    let projection: Vec<usize> = (0..dataset.schema.fields().len()).collect();
    let Ok(batches) = dataset.read_file(0, &projection, 64) else {
        return;
    };
    for batch in batches {
        if batch.is_err() {
            break;
        }
    }
}
