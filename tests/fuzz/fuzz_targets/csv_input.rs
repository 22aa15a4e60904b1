//! Any bytes as a CSV input: schema inference, then every batch. Errors are fine;
//! a panic or a hang is a finding.
#![no_main]

mod common;

use batchinfer::source::{CsvOptions, Dataset, Format, InputFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch("in.csv", data);
    let files = vec![InputFile {
        path,
        format: Format::Csv,
        size: data.len() as u64,
    }];
    let options =
        CsvOptions::new(b',', b'"', &["".to_string(), "NA".to_string()]).expect("options");
    if let Ok(mut dataset) = Dataset::open(files, options) {
        let projection: Vec<usize> = (0..dataset.schema.fields().len()).collect();
        if let Ok(batches) = dataset.read_file(0, &projection, 64) {
            for batch in batches {
                if batch.is_err() {
                    break;
                }
            }
        }
    }
});
