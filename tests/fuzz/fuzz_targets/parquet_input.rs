//! Any bytes as a Parquet input: footer and schema, then every batch.
#![no_main]

mod common;

use batchinfer::source::{CsvOptions, Dataset, Format, InputFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch("in.parquet", data);
    let files = vec![InputFile {
        path,
        format: Format::Parquet,
        size: data.len() as u64,
    }];
    let options = CsvOptions::new(b',', b'"', &[]).expect("options");
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
