//! One bench per model family: scoring a 1,024-row batch of the committed test data
//! with one session (tensor building, the model, output conversion), one thread.
//! `cargo bench --bench models`; CI compiles it and runs each once in test mode
//! (`cargo test --all-targets`). Side-by-side numbers against onnxruntime come from
//! `benches/models_vs_onnxruntime.py`.

use std::path::Path;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use batchinfer::mapping::{self, MappingRequest};
use batchinfer::model::{Model, ModelFile};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const ROWS: usize = 1024;

fn testdata(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

/// The input file repeated to at least `ROWS` rows, as one batch.
fn batch(input: &str) -> RecordBatch {
    let file = std::fs::File::open(testdata(input)).expect("test data");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    let schema = batches[0].schema();
    let mut all = vec![];
    while all
        .iter()
        .map(|b: &RecordBatch| b.num_rows())
        .sum::<usize>()
        < ROWS
    {
        all.extend(batches.iter().cloned());
    }
    concat_batches(&schema, &all)
        .expect("concat")
        .slice(0, ROWS)
}

fn family(c: &mut Criterion, name: &str, model: &str, input: &str, features: Option<&str>) {
    let data = batch(input);
    let file = ModelFile::open(&testdata(model)).expect("model");
    let request = MappingRequest {
        features: features.map(|f| f.split(',').map(String::from).collect()),
        ..Default::default()
    };
    let plan = mapping::plan(&data.schema(), &file.signature, &request).expect("mapping");
    let model: Model = file
        .compile(&plan.widths(file.signature.inputs.len()))
        .expect("compile");
    let feeds = plan.feeds(&data.schema());
    let mut session = model.session().expect("session");
    let mut group = c.benchmark_group("models");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function(name, |b| {
        b.iter_batched(
            || (),
            |_| session.score(&model, &data, &feeds).expect("score"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

const F8: Option<&str> = Some("f0,f1,f2,f3,f4,f5,f6,f7");

fn models(c: &mut Criterion) {
    family(
        c,
        "random_forest_binary",
        "models/rf_binary.onnx",
        "data/numeric.parquet",
        F8,
    );
    family(
        c,
        "gradient_boosting_regressor",
        "models/gb_regressor.onnx",
        "data/numeric.parquet",
        F8,
    );
    family(
        c,
        "hist_gradient_boosting_nan",
        "models/hgb_binary_nan.onnx",
        "data/numeric_nan.parquet",
        F8,
    );
    family(
        c,
        "xgboost_multiclass",
        "models/xgb_multiclass.onnx",
        "data/numeric_nan.parquet",
        F8,
    );
    family(
        c,
        "lightgbm_regressor",
        "models/lgbm_regressor.onnx",
        "data/numeric_nan.parquet",
        F8,
    );
    family(
        c,
        "logistic_regression_multiclass",
        "models/logreg_multiclass.onnx",
        "data/numeric.parquet",
        F8,
    );
    family(
        c,
        "svc_rbf_probabilities",
        "models/svc_rbf_proba.onnx",
        "data/numeric.parquet",
        F8,
    );
    family(
        c,
        "mlp_classifier",
        "models/mlp_classifier.onnx",
        "data/numeric.parquet",
        F8,
    );
    family(
        c,
        "onnx_mlp",
        "models/onnx_mlp.onnx",
        "data/numeric.parquet",
        F8,
    );
    family(
        c,
        "column_transformer_pipeline",
        "models/pipeline_mixed.onnx",
        "data/mixed.parquet",
        None,
    );
}

criterion_group!(benches, models);
criterion_main!(benches);
