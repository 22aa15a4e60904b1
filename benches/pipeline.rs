//! The hot paths around the model, on a batch of 8,192 rows × 30 float32 features:
//! Arrow columns → input tensor (exact and narrowing casts), output tensor →
//! Arrow columns, Parquet encoding of a scored batch, and projected Parquet
//! decoding, and the polars selection (`--filter`, `--with`) of a batch.
//! `cargo bench --bench pipeline`; CI compiles it and runs each once.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use batchinfer::model::tensors::{input_tensor, output_arrays};
use batchinfer::model::{Dim, ElemType, Feed, InputSpec, OutputColumn};
use batchinfer::sink::OutputTarget;
use batchinfer::source::{CsvOptions, Dataset, Format, InputFile};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tract_onnx::prelude::{IntoTValue, Tensor};

const ROWS: usize = 8192;
const FEATURES: usize = 30;

/// id + 30 features, as float32 or float64 columns.
fn batch(float64: bool) -> RecordBatch {
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(0..ROWS as i64))];
    for f in 0..FEATURES {
        let values = (0..ROWS).map(|i| ((i * 31 + f * 7) % 1000) as f32 / 250.0 - 2.0);
        if float64 {
            fields.push(Field::new(format!("f{f}"), DataType::Float64, false));
            cols.push(Arc::new(Float64Array::from_iter_values(
                values.map(f64::from),
            )));
        } else {
            fields.push(Field::new(format!("f{f}"), DataType::Float32, false));
            cols.push(Arc::new(Float32Array::from_iter_values(values)));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("batch")
}

fn arrow_to_tensor(c: &mut Criterion) {
    let spec = InputSpec {
        feature_names: vec![],
        categories: vec![],
        map: None,
        name: "input".into(),
        elem: ElemType::F32,
        shape: vec![Dim::Symbolic("N".into()), Dim::Fixed(FEATURES)],
    };
    let feed = Feed {
        input: 0,
        columns: (1..=FEATURES).collect(),
    };
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(ROWS as u64));
    for (name, data) in [
        ("arrow_to_tensor_f32", batch(false)),
        ("arrow_to_tensor_f64_narrowed", batch(true)),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| input_tensor(&data, &feed, &spec).expect("tensor"))
        });
    }
    group.finish();
}

fn tensor_to_arrow(c: &mut Criterion) {
    let k = 4;
    let values: Vec<f32> = (0..ROWS * k).map(|i| i as f32 / 7.0).collect();
    let tensor = Tensor::from_shape(&[ROWS, k], &values).expect("tensor");
    let outputs = [tensor.into_tvalue()];
    let columns: Vec<OutputColumn> = (0..k)
        .map(|index| OutputColumn {
            name: format!("probabilities_{index}"),
            output: 0,
            index,
            data_type: DataType::Float32,
        })
        .collect();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("tensor_to_arrow_4_columns", |b| {
        b.iter(|| output_arrays(&outputs, &columns, ROWS).expect("arrays"))
    });
    group.finish();
}

fn parquet(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    // A scored batch: the id and 4 float32 predictions.
    let data = batch(false);
    let scored = data.project(&[0, 1, 2, 3, 4]).expect("project");
    let target = OutputTarget::parse(&dir.path().join("out.parquet").display().to_string(), true)
        .expect("target");
    let mut sink = target.open(scored.schema(), &[]).expect("sink");
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("parquet_write_id_and_4_floats", |b| {
        b.iter(|| sink.write(&scored).expect("write"))
    });

    // Reading: 8 batches of input, id + 30 features, projected to the features.
    let input = dir.path().join("in.parquet");
    let in_target = OutputTarget::parse(&input.display().to_string(), true).expect("target");
    let mut writer = in_target.open(data.schema(), &[]).expect("sink");
    for _ in 0..8 {
        writer.write(&data).expect("write");
    }
    writer.commit().expect("commit");
    let file = InputFile::local(input.clone(), Format::Parquet);
    let csv = CsvOptions::new(None, b'"', &[]).expect("csv options");
    let mut dataset = Dataset::open(vec![file], csv).expect("dataset");
    let projection: Vec<usize> = (1..=FEATURES).collect();
    group.throughput(Throughput::Elements(8 * ROWS as u64));
    group.bench_function("parquet_read_30_features", |b| {
        b.iter(|| {
            let batches = dataset.read_file(0, &projection, ROWS).expect("read");
            batches.map(|r| r.expect("batch").num_rows()).sum::<usize>()
        })
    });
    group.finish();
}

/// The selection on the workers: a filter keeping about half the rows, and a
/// derived column, each through polars and back (the whole batch crosses twice).
#[cfg(feature = "polars")]
fn selection(c: &mut Criterion) {
    use batchinfer::select::{RowNumbers, SelectSpec, Selection, TransformSpec};
    let data = batch(false);
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(ROWS as u64));
    for (name, transform) in [
        (
            "selection_filter_half",
            TransformSpec {
                filter: Some("f0 > 0".into()),
                ..TransformSpec::default()
            },
        ),
        (
            "selection_with_log1p",
            TransformSpec {
                with: vec![("g".into(), "log1p(abs(f1))".into())],
                ..TransformSpec::default()
            },
        ),
    ] {
        let spec = SelectSpec {
            transform,
            ..SelectSpec::default()
        };
        let mut selection = Selection::new(&spec).expect("selection");
        selection.plan(&data.schema(), &[]).expect("plan");
        group.bench_function(name, |b| {
            b.iter(|| {
                selection
                    .apply(0, data.clone(), RowNumbers::From(0))
                    .expect("apply")
            })
        });
    }
    group.finish();
}

#[cfg(not(feature = "polars"))]
fn selection(_: &mut Criterion) {}

criterion_group!(
    benches,
    arrow_to_tensor,
    tensor_to_arrow,
    parquet,
    selection
);
criterion_main!(benches);
