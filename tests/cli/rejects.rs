//! `--on-error skip`: bad rows are set aside in the error file with the reason, the
//! rest is scored in order; `--max-errors` turns too many into exit 4.

use arrow::array::{Array, AsArray};
use arrow::datatypes::UInt64Type;

use super::harness::{ids, read_json, read_parquet, testdata, Env};
use super::jobs::mixed_with_null_at_700;

const PIPELINE: &str = "TD/models/pipeline_mixed.onnx";

#[test]
fn skip_sets_bad_rows_aside_with_file_row_column_and_reason() {
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
        "--keep",
        "id",
        "--on-error",
        "skip",
        "--batch-size",
        "64",
        "--summary-json",
        "s.json",
        "-q",
    ]);
    run.expect_code(0)
        .expect_stderr("1,000 read, 999 scored, 1 rejected")
        .expect_stderr("rejected rows    out.errors.parquet");
    let out = read_parquet(&env.path("out.parquet"));
    let expected: Vec<i64> = (0..1000).filter(|&i| i != 700).collect();
    assert_eq!(ids(&out), expected, "all other rows, in input order");
    let errors = read_parquet(&env.path("out.errors.parquet"));
    assert_eq!(errors.num_rows(), 1);
    assert_eq!(ids(&errors), vec![700]);
    assert!(errors
        .column_by_name("_source_file")
        .unwrap()
        .as_string::<i32>()
        .value(0)
        .ends_with("in.parquet"));
    assert_eq!(
        errors
            .column_by_name("_row")
            .unwrap()
            .as_primitive::<UInt64Type>()
            .value(0),
        700
    );
    assert_eq!(
        errors
            .column_by_name("_column")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "n_visits"
    );
    assert!(errors
        .column_by_name("_reason")
        .unwrap()
        .as_string::<i32>()
        .value(0)
        .contains("null"));
    let s: serde_json::Value = read_json(&env.path("s.json"));
    assert_eq!(
        (
            s["rows_read"].as_u64(),
            s["rows_scored"].as_u64(),
            s["rows_rejected"].as_u64()
        ),
        (Some(1000), Some(999), Some(1))
    );
}

#[test]
fn max_errors_turns_too_many_rejections_into_exit_4_with_nothing_committed() {
    for limit in ["0", "0.05%"] {
        let env = Env::new();
        mixed_with_null_at_700(&env.path("in.parquet"));
        env.run(&[
            "score",
            "-m",
            PIPELINE,
            "-i",
            "in.parquet",
            "-o",
            "out.parquet",
            "--on-error",
            "skip",
            "--max-errors",
            limit,
            "-q",
        ])
        .expect_code(4)
        .expect_stderr("more than --max-errors");
        assert!(
            !env.path("out.parquet").exists(),
            "--max-errors {limit}: nothing committed"
        );
        // The rejected rows are kept for diagnosis.
        assert_eq!(read_parquet(&env.path("out.errors.parquet")).num_rows(), 1);
    }
    let env = Env::new();
    mixed_with_null_at_700(&env.path("in.parquet"));
    env.run(&[
        "score",
        "-m",
        PIPELINE,
        "-i",
        "in.parquet",
        "-o",
        "out.parquet",
        "--on-error",
        "skip",
        "--max-errors",
        "1%",
        "-q",
    ])
    .expect_code(0);
    assert_eq!(read_parquet(&env.path("out.parquet")).num_rows(), 999);
}

#[test]
fn a_batch_the_model_fails_on_is_retried_row_by_row() {
    let env = Env::new();
    let args = [
        "score",
        "-m",
        "TD/models/strict_one_hot.onnx",
        "-i",
        "TD/data/numeric.parquet",
        "-o",
        "out.parquet",
        "--keep",
        "id,segment",
        "--batch-size",
        "100",
        "-q",
    ];
    // Failing: the batch is named.
    env.run(&args)
        .expect_code(1)
        .expect_stderr("numeric.parquet, rows 0..100")
        .expect_stderr("unknown category c");
    assert!(env.files().is_empty());
    // Skipping: only the rows with the unknown category are rejected.
    let mut skip = args.to_vec();
    skip.extend(["--on-error", "skip"]);
    env.run(&skip).expect_code(0);
    let input = read_parquet(&testdata().join("data/numeric.parquet"));
    let segments = input.column_by_name("segment").unwrap().as_string::<i32>();
    let all_ids = ids(&input);
    let good: Vec<i64> = (0..input.num_rows())
        .filter(|&i| segments.value(i) != "c")
        .map(|i| all_ids[i])
        .collect();
    let bad: Vec<i64> = (0..input.num_rows())
        .filter(|&i| segments.value(i) == "c")
        .map(|i| all_ids[i])
        .collect();
    assert!(!bad.is_empty() && !good.is_empty());
    let out = read_parquet(&env.path("out.parquet"));
    assert_eq!(ids(&out), good);
    let hot = out
        .column_by_name("onehot_0")
        .unwrap()
        .as_primitive::<arrow::datatypes::Float32Type>();
    let out_segments = out.column_by_name("segment").unwrap().as_string::<i32>();
    for i in 0..out.num_rows() {
        assert_eq!(
            hot.value(i),
            if out_segments.value(i) == "a" {
                1.0
            } else {
                0.0
            },
            "row {i}"
        );
    }
    let errors = read_parquet(&env.path("out.errors.parquet"));
    assert_eq!(ids(&errors), bad);
    let reasons = errors.column_by_name("_reason").unwrap().as_string::<i32>();
    assert!((0..errors.num_rows()).all(|i| reasons.value(i).contains("unknown category c")));
    assert_eq!(
        errors.column_by_name("_column").unwrap().null_count(),
        errors.num_rows(),
        "no column is to blame for a model failure"
    );
}

#[test]
fn nan_predictions_are_counted_in_the_summary() {
    // A linear regression has no imputer: NaN inputs give NaN outputs, and the run says so.
    let env = Env::new();
    env.run(&[
        "score",
        "-m",
        "TD/models/linreg.onnx",
        "-i",
        "TD/data/numeric_nan.parquet",
        "-o",
        "out.parquet",
        "--keep",
        "id",
        "--summary-json",
        "s.json",
        "-q",
    ])
    .expect_code(0)
    .expect_stderr("NaN predictions");
    let s: serde_json::Value = read_json(&env.path("s.json"));
    let out = read_parquet(&env.path("out.parquet"));
    let nan = out
        .column_by_name("variable")
        .unwrap()
        .as_primitive::<arrow::datatypes::Float32Type>()
        .values()
        .iter()
        .filter(|v| v.is_nan())
        .count();
    assert!(nan > 0);
    assert_eq!(s["nan_predictions"].as_u64(), Some(nan as u64));
}
