//! Any bytes as a Parquet input: footer and schema, then every batch.
#![no_main]

mod common;

use batchinfer::source::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::read_input("in.parquet", data, Format::Parquet));
