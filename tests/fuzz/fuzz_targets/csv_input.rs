//! Any bytes as a CSV input: schema inference, then every batch.
#![no_main]

mod common;

use batchinfer::source::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::read_input("in.csv", data, Format::Csv));
