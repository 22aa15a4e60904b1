//! Any bytes as an ONNX model: parsing, the operator check, batchinfer's ONNX-ML
//! builders (tree, SVM, linear attributes), typing and optimisation.
#![no_main]

#[allow(dead_code)]
mod common;

use batchinfer::model::ModelFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch("model.onnx", data);
    if let Ok(model) = ModelFile::open(&path) {
        let widths = vec![Some(8); model.signature.inputs.len()];
        if let Ok(compiled) = model.compile(&widths) {
            let _ = compiled.session();
        }
    }
});
