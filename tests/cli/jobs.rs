//! Behaviour of whole jobs: kept columns, outputs, failures, summaries, inspect.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use sha2::{Digest, Sha256};

use super::golden::assert_matches;
use super::harness::{parquet_metadata, read_json, read_parquet, testdata, write_parquet, Env};

const RF: &str = "TD/models/rf_binary.onnx";
const NUMERIC: &str = "TD/data/numeric.parquet";
const PIPELINE: &str = "TD/models/pipeline_mixed.onnx";

#[test]
fn kept_columns_come_first_with_their_types_and_values() {
    let env = Env::new();
    env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        NUMERIC,
        "-o",
        "out.parquet",
        "--keep",
        "segment,id,ts",
        "-q",
    ])
    .expect_code(0);
    let out = read_parquet(&env.path("out.parquet"));
    let input = read_parquet(&testdata().join("data/numeric.parquet"));
    let names: Vec<String> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(&names[..4], ["segment", "id", "ts", "output_label"]);
    for kept in ["segment", "id", "ts"] {
        let (a, b) = (
            out.column_by_name(kept).unwrap(),
            input.column_by_name(kept).unwrap(),
        );
        assert_eq!(a.data_type(), b.data_type(), "type of kept column {kept}");
        assert_eq!(a, b, "values of kept column {kept}");
    }
}

#[test]
fn model_sha256_version_and_start_time_are_in_the_parquet_metadata() {
    let env = Env::new();
    env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        NUMERIC,
        "-o",
        "out.parquet",
        "--keep",
        "id",
        "-q",
    ])
    .expect_code(0);
    let meta = parquet_metadata(&env.path("out.parquet"));
    let get = |k: &str| {
        meta.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k} in {meta:?}"))
    };
    let bytes = std::fs::read(testdata().join("models/rf_binary.onnx")).unwrap();
    assert_eq!(
        get("batchinfer.model_sha256"),
        format!("{:x}", Sha256::digest(&bytes))
    );
    assert_eq!(get("batchinfer.version"), env!("CARGO_PKG_VERSION"));
    assert!(
        get("batchinfer.run_start").starts_with("20"),
        "{}",
        get("batchinfer.run_start")
    );
}

#[test]
fn existing_output_is_refused_without_overwrite() {
    let env = Env::new();
    std::fs::write(env.path("out.parquet"), b"precious").unwrap();
    env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        NUMERIC,
        "-o",
        "out.parquet",
        "--keep",
        "id",
        "-q",
    ])
    .expect_code(2)
    .expect_stderr("already exists; pass --overwrite");
    assert_eq!(std::fs::read(env.path("out.parquet")).unwrap(), b"precious");
    env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        NUMERIC,
        "-o",
        "out.parquet",
        "--keep",
        "id",
        "--overwrite",
        "-q",
    ])
    .expect_code(0);
    assert_eq!(read_parquet(&env.path("out.parquet")).num_rows(), 1500);
}

/// 1,000 rows for the pipeline model, with a null int64 `n_visits` at row 700.
pub fn mixed_with_null_at_700(path: &std::path::Path) {
    mixed_with_nulls(path, None, Some(700));
}

/// 1,000 rows for the pipeline model, with a null `plan` and a null `n_visits`
/// at the rows given.
pub fn mixed_with_nulls(path: &std::path::Path, plan_null: Option<i64>, visits_null: Option<i64>) {
    let n = 1000;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("age", DataType::Float32, true),
        Field::new("income", DataType::Float32, true),
        Field::new("n_visits", DataType::Int64, true),
        Field::new("plan", DataType::Utf8, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..n)),
        Arc::new(Float32Array::from_iter_values(
            (0..n).map(|i| 20.0 + (i % 50) as f32),
        )),
        Arc::new(Float32Array::from_iter_values(
            (0..n).map(|i| 1000.0 * (1 + i % 7) as f32),
        )),
        Arc::new(Int64Array::from_iter(
            (0..n).map(|i| (Some(i) != visits_null).then_some(i % 9)),
        )),
        Arc::new(StringArray::from_iter((0..n).map(|i| {
            (Some(i) != plan_null).then_some(["basic", "plus", "pro"][i as usize % 3])
        }))),
    ];
    let batch = RecordBatch::try_new(schema, cols).unwrap();
    write_parquet(path, [batch], Some(100));
}

#[test]
fn a_bad_row_midway_names_file_row_and_column_and_leaves_nothing() {
    let env = Env::new();
    mixed_with_null_at_700(&env.path("in.parquet"));
    let run = env.run(&[
        "score",
        "-m",
        PIPELINE,
        "-i",
        "in.parquet",
        "-o",
        "out.parquet",
        "--batch-size",
        "50",
        "--threads",
        "2",
        "-q",
    ]);
    run.expect_code(4)
        .expect_stderr("in.parquet, row 700")
        .expect_stderr("column `n_visits`")
        .expect_stderr("null");
    assert_eq!(
        env.files(),
        vec!["in.parquet"],
        "nothing may be left next to the input, partial or temporary"
    );
    // The summary still reports the failed run.
    run.expect_stderr("summary (failed)");
}

#[test]
fn a_failure_never_replaces_an_existing_output() {
    let env = Env::new();
    mixed_with_null_at_700(&env.path("in.parquet"));
    std::fs::write(env.path("out.parquet"), b"yesterday").unwrap();
    env.run(&[
        "score",
        "-m",
        PIPELINE,
        "-i",
        "in.parquet",
        "-o",
        "out.parquet",
        "--overwrite",
        "--batch-size",
        "50",
        "-q",
    ])
    .expect_code(4);
    assert_eq!(
        std::fs::read(env.path("out.parquet")).unwrap(),
        b"yesterday"
    );
    assert_eq!(env.files(), vec!["in.parquet", "out.parquet"]);
}

#[test]
fn summary_json_has_the_measured_fields_and_cost() {
    let env = Env::new();
    env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        NUMERIC,
        "-o",
        "out.parquet",
        "--keep",
        "id",
        "--price-per-hour",
        "0.36",
        "--summary-json",
        "s.json",
        "--batch-size",
        "100",
        "--threads",
        "2",
        "-q",
    ])
    .expect_code(0)
    .expect_stderr("rows             1,500 read, 1,500 scored, 0 rejected");
    let s: serde_json::Value = read_json(&env.path("s.json"));
    assert_eq!(s["status"], "ok");
    assert_eq!(s["rows_read"], 1500);
    assert_eq!(s["rows_scored"], 1500);
    assert_eq!(s["rows_rejected"], 0);
    assert_eq!(s["threads"], 2);
    assert_eq!(s["batch_size"], 100);
    for key in [
        "wall_s",
        "rows_per_s",
        "read_s",
        "score_s",
        "write_s",
        "model_load_s",
        "cpu_s",
        "cpu_utilisation",
        "peak_rss_mib",
    ] {
        assert!(
            s[key].as_f64().is_some_and(|v| v >= 0.0),
            "{key} = {}",
            s[key]
        );
    }
    for key in ["p50_ms", "p95_ms", "p99_ms"] {
        assert!(
            s["batch_latency"][key].as_f64().is_some_and(|v| v > 0.0),
            "{key}"
        );
    }
    assert!(s["batch_latency"]["p50_ms"].as_f64() <= s["batch_latency"]["p99_ms"].as_f64());
    let wall = s["wall_s"].as_f64().unwrap();
    let run_usd = s["cost"]["run_usd"].as_f64().unwrap();
    assert!(
        (run_usd - 0.36 * wall / 3600.0).abs() < 1e-12,
        "cost follows price and wall time"
    );
    let per_m = s["cost"]["usd_per_million_rows"].as_f64().unwrap();
    assert!((per_m - run_usd * 1e6 / 1500.0).abs() < 1e-12);
    assert_eq!(s["model_sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn summary_goes_to_stdout_on_request_and_stdout_is_otherwise_empty() {
    let env = Env::new();
    let run = env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        NUMERIC,
        "-o",
        "a.parquet",
        "--keep",
        "id",
        "-q",
    ]);
    run.expect_code(0);
    assert_eq!(run.stdout(), "", "stdout carries only what was asked for");
    let run = env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        NUMERIC,
        "-o",
        "b.parquet",
        "--keep",
        "id",
        "-q",
        "--summary",
        "-",
    ]);
    run.expect_code(0);
    assert!(run.stdout().contains("rows/s"), "{}", run.context());
}

#[test]
fn csv_from_stdin_to_csv_on_stdout() {
    let env = Env::new();
    let csv = std::fs::read(testdata().join("data/numeric.csv")).unwrap();
    let run = env.run_with_stdin(
        &[
            "score",
            "-m",
            "TD/models/logreg_multiclass.onnx",
            "-i",
            "-",
            "-o",
            "-",
            "--keep",
            "id",
            "--features",
            "f0,f1,f2,f3,f4,f5,f6,f7",
            "-q",
        ],
        Some(&csv),
    );
    run.expect_code(0);
    let out = run.stdout();
    let mut lines = out.lines();
    assert_eq!(lines.next().unwrap(), "id,output_label,output_probability_0,output_probability_1,output_probability_2,output_probability_3");
    assert_eq!(out.lines().count(), 1501);
    // Same labels as onnxruntime, in input order.
    let expected = read_parquet(&testdata().join("expected/logreg_multiclass.parquet"));
    let labels = expected
        .column_by_name("output_label")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .clone();
    for (i, line) in out.lines().skip(1).enumerate() {
        let mut f = line.split(',');
        assert_eq!(f.next().unwrap(), (i + 1).to_string());
        assert_eq!(f.next().unwrap(), labels.value(i).to_string(), "row {i}");
    }
}

#[test]
fn csv_output_file_and_na_spellings() {
    let env = Env::new();
    std::fs::write(
        env.path("in.csv"),
        "id;f0;f1;f2;f3;f4;f5;f6;f7\n1;NA;0.5;0;0;0;0;0;0\n2;1;-;0;0;0;0;0;0\n",
    )
    .unwrap();
    env.run(&[
        "score",
        "-m",
        "TD/models/hgb_binary_nan.onnx",
        "-i",
        "in.csv",
        "-o",
        "out.csv",
        "--delimiter",
        ";",
        "--null-values",
        "NA,-",
        "--keep",
        "id",
        "-q",
    ])
    .expect_code(0);
    let text = std::fs::read_to_string(env.path("out.csv")).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.starts_with("id,output_label,output_probability_0,output_probability_1\n1,"),
        "{text}"
    );
}

#[test]
fn several_files_a_directory_and_a_glob_are_one_dataset() {
    let env = Env::new();
    let reference = read_parquet(&testdata().join("expected/onnx_mlp.parquet"));
    for (i, input) in [
        "TD/data/numeric_parts",
        "TD/data/numeric_parts/part-*.parquet",
    ]
    .iter()
    .enumerate()
    {
        let out = format!("out{i}.parquet");
        env.run(&[
            "score",
            "-m",
            "TD/models/onnx_mlp.onnx",
            "-i",
            input,
            "-o",
            &out,
            "--keep",
            "id",
            "-q",
            "--batch-size",
            "64",
        ])
        .expect_code(0);
        assert_matches(&read_parquet(&env.path(&out)), &reference, 1e-5, input);
    }
    let parts = testdata().join("data/numeric_parts");
    let (p0, p1, p2) = (
        parts.join("part-000.parquet"),
        parts.join("part-001.parquet"),
        parts.join("part-002.parquet"),
    );
    env.run(&[
        "score",
        "-m",
        "TD/models/onnx_mlp.onnx",
        "-i",
        p0.to_str().unwrap(),
        p1.to_str().unwrap(),
        "-i",
        p2.to_str().unwrap(),
        "-o",
        "out2.parquet",
        "--keep",
        "id",
        "-q",
    ])
    .expect_code(0);
    assert_matches(
        &read_parquet(&env.path("out2.parquet")),
        &reference,
        1e-5,
        "three files",
    );
}

#[test]
fn a_file_with_another_schema_is_named() {
    let env = Env::new();
    env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        NUMERIC,
        "TD/data/mixed.parquet",
        "-o",
        "out.parquet",
        "-q",
    ])
    .expect_code(3)
    .expect_stderr("mixed.parquet has columns [id, age, income, plan, n_visits]");
    assert!(env.files().is_empty());
}

#[test]
fn validation_errors_exit_3_before_anything_is_written() {
    let env = Env::new();
    env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        NUMERIC,
        "-o",
        "out.parquet",
        "--features",
        "f0,f1,f2,f3,f4,f5,f6,nope",
        "-q",
    ])
    .expect_code(3)
    .expect_stderr("column `nope` is not in the input");
    env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        NUMERIC,
        "-o",
        "out.parquet",
        "--features",
        "f0,f1,f2,f3,f4,f5,f6,ts",
        "-q",
    ])
    .expect_code(3)
    .expect_stderr("column `ts` is Timestamp(µs), which cannot feed model input `input`");
    env.run(&["score", "-m", RF, "-i", NUMERIC, "-o", "out.parquet", "-q"])
        .expect_code(3)
        .expect_stderr("the input has 9 numeric columns that are not kept: id, f0");
    std::fs::write(env.path("model.onnx"), b"this is not a model").unwrap();
    env.run(&[
        "score",
        "-m",
        "model.onnx",
        "-i",
        NUMERIC,
        "-o",
        "out.parquet",
        "-q",
    ])
    .expect_code(3)
    .expect_stderr("model.onnx is not an ONNX model");
    assert_eq!(env.files(), vec!["model.onnx"]);
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        "TD/data/nothing-*.parquet",
        "-o",
        "out.parquet",
    ])
    .expect_code(2)
    .expect_stderr("no file matches");
    env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        NUMERIC,
        "-o",
        "out.parquet",
        "--threads",
        "0",
    ])
    .expect_code(2);
    env.run(&["score", "-m", RF, "-i", NUMERIC]).expect_code(2);
    // An output under a file cannot be created: its "directory" is a file.
    std::fs::write(env.path("a-file"), b"x").unwrap();
    env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        NUMERIC,
        "-o",
        "a-file/out.parquet",
        "-q",
        "--keep",
        "id",
        "--features",
        "f0,f1,f2,f3,f4,f5,f6,f7",
    ])
    .expect_code(2)
    .expect_stderr("cannot create the output directory a-file");
}

#[test]
fn help_documents_the_exit_codes() {
    let run = Env::new().run(&["score", "--help"]);
    run.expect_code(0);
    for line in [
        "0  success",
        "3  validation failed before scoring",
        "4  too many bad rows",
        "5  another run holds the lock",
    ] {
        assert!(
            run.stdout().contains(line),
            "--help lacks {line:?}\n{}",
            run.context()
        );
    }
}

#[test]
fn inspect_prints_signature_operators_and_mapping_plan() {
    let env = Env::new();
    let run = env.run(&[
        "inspect",
        PIPELINE,
        "--input",
        "TD/data/mixed.parquet",
        "--keep",
        "id",
    ]);
    run.expect_code(0);
    let out = run.stdout();
    for needle in [
        "  age float32 [?, 1]",
        "  plan string [?, 1]",
        "  n_visits int64 [?, 1]",
        "output_label → columns: output_label (Int64)",
        "output_probability → columns: output_probability_0 (Float32), output_probability_1 (Float32)",
        "batchinfer's own: Imputer, LinearClassifier, OneHotEncoder, Scaler, ZipMap",
        "input `age` float32 [?, 1] ← 1 column(s) by same name:",
        "age (Float64) → float32 [narrowing: float64 rounded to float32]",
        "kept columns: id",
    ] {
        assert!(out.contains(needle), "inspect lacks {needle:?}\n{}", run.context());
    }
}

#[test]
fn without_a_terminal_progress_comes_as_plain_lines() {
    let env = Env::new();
    super::interrupt::big_input(&env.path("in.parquet"), 200_000);
    let args = [
        "score",
        "-m",
        "TD/models/svc_rbf_proba.onnx",
        "-i",
        "in.parquet",
        "-o",
        "out.parquet",
        "--features",
        "f0,f1,f2,f3,f4,f5,f6,f7",
        "--threads",
        "1",
        "--batch-size",
        "1000",
    ];
    let mut with_progress = args.to_vec();
    with_progress.extend(["--progress-every", "0.05"]);
    let run = env.run(&with_progress);
    run.expect_code(0)
        .expect_stderr("batchinfer: progress ")
        .expect_stderr(" of 200000 rows, ");
    assert!(
        !run.stderr().contains('\r'),
        "no terminal control characters in logs"
    );
    let mut quiet = args.to_vec();
    quiet.extend(["--progress-every", "0.05", "--overwrite", "-q"]);
    let run = env.run(&quiet);
    run.expect_code(0);
    assert!(
        !run.stderr().contains("batchinfer: progress"),
        "--quiet silences progress\n{}",
        run.context()
    );
}

#[test]
fn bench_measures_each_setting_and_recommends_one() {
    let env = Env::new();
    let run = env.run(&[
        "bench",
        "TD/models/rf_binary.onnx",
        "-i",
        "TD/data/numeric.parquet",
        "--features",
        "f0,f1,f2,f3,f4,f5,f6,f7",
        "--threads",
        "1,2",
        "--batch-size",
        "100,1000",
        "--rows",
        "1200",
        "--repeat",
        "1",
        "--price-per-hour",
        "3.6",
        "--json",
    ]);
    run.expect_code(0);
    let report: serde_json::Value =
        serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", run.context()));
    let results = report["results"].as_array().unwrap();
    let settings: Vec<(u64, u64)> = results
        .iter()
        .map(|r| {
            (
                r["threads"].as_u64().unwrap(),
                r["batch_size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(settings, [(1, 100), (1, 1000), (2, 100), (2, 1000)]);
    for r in results {
        assert_eq!(r["rows"], 1200, "--rows caps the rows scored");
        let (rows_per_s, wall) = (
            r["rows_per_s"].as_f64().unwrap(),
            r["wall_s"].as_f64().unwrap(),
        );
        assert!(
            (rows_per_s * wall - 1200.0).abs() < 1e-6 * 1200.0,
            "rows/s is rows over wall time"
        );
        let usd = r["usd_per_million_rows"].as_f64().unwrap();
        assert!(
            (usd - 3.6 * wall / 3600.0 * 1e6 / 1200.0).abs() < 1e-9,
            "cost follows price and wall time"
        );
    }
    let best = results
        .iter()
        .map(|r| r["rows_per_s"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(
        report["recommended"]["rows_per_s"].as_f64(),
        Some(best),
        "the fastest setting is recommended"
    );
}
