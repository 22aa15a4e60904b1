//! What people read, as snapshots (`cargo insta review` after a deliberate change):
//! `--help`, `inspect`, `status` and the text summary. Times, rates, memory and
//! temporary paths are redacted, so the snapshots hold only what is deterministic.

use super::harness::{testdata, Env};

/// Runs `body` with the redactions every snapshot here shares.
fn redacted(env: &Env, body: impl FnOnce()) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    let tmp = regex_escape(&env.dir.path().display().to_string());
    let td = regex_escape(&testdata().display().to_string());
    settings.add_filter(&tmp, "[TMP]");
    settings.add_filter(&td, "[TD]");
    // Measured values: seconds, rates, latencies, memory, CPU, dates and times.
    settings.add_filter(r"\d+(\.\d+)? (s|ms|MiB)\b", "[n $2]");
    settings.add_filter(r"\d+(\.\d+)? rows/s", "[n] rows/s");
    settings.add_filter(r"\d+% of", "[n]% of");
    settings.add_filter(r"\$\d+(\.\d+)?", "$[n]");
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[time]");
    settings.add_filter(r"batchinfer \d+\.\d+\.\d+", "batchinfer [version]");
    settings.bind(body);
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn score_help() {
    let env = Env::new();
    // The width clap wraps at, whatever the terminal of whoever runs the tests.
    let run = env.run_with(&["score", "--help"], None, &[("COLUMNS", "100")]);
    run.expect_code(0);
    redacted(&env, || insta::assert_snapshot!("score_help", run.stdout()));
}

#[test]
fn inspect_with_a_mapping_plan() {
    let env = Env::new();
    let run = env.run(&[
        "inspect",
        "TD/models/pipeline_mixed.onnx",
        "--input",
        "TD/data/mixed.parquet",
        "--keep",
        "id",
    ]);
    run.expect_code(0);
    redacted(&env, || insta::assert_snapshot!("inspect", run.stdout()));
}

#[test]
fn text_summary_of_a_run() {
    let env = Env::new();
    let run = env.run(&[
        "score",
        "-m",
        "TD/models/pipeline_mixed.onnx",
        "-i",
        "TD/data/mixed.parquet",
        "-o",
        "scored.parquet",
        "--keep",
        "id",
        "--threads",
        "2",
        "--price-per-hour",
        "0.10",
        "-q",
        "--summary",
        "-",
    ]);
    run.expect_code(0);
    redacted(&env, || insta::assert_snapshot!("summary", run.stdout()));
}

#[test]
fn status_of_a_sharded_directory_output() {
    let env = Env::new();
    for shard in ["0/3", "2/3"] {
        env.run(&[
            "score",
            "-m",
            "TD/models/rf_binary.onnx",
            "-i",
            "TD/data/numeric_parts",
            "-o",
            "scores/",
            "--features",
            "f0,f1,f2,f3,f4,f5,f6,f7",
            "--shard",
            shard,
            "-q",
        ])
        .expect_code(0);
    }
    let run = env.run(&["status", "scores"]);
    run.expect_code(1);
    redacted(&env, || insta::assert_snapshot!("status", run.stdout()));
}

#[test]
fn mapping_log_collapses_runs_of_like_columns() {
    let env = Env::new();
    let run = env.run(&[
        "score",
        "-m",
        "TD/models/logreg_multiclass.onnx",
        "-i",
        "TD/data/numeric.parquet",
        "-o",
        "scored.parquet",
        "--keep",
        "id",
        "--summary",
        "none",
    ]);
    run.expect_code(0);
    redacted(&env, || {
        insta::assert_snapshot!("mapping_log", run.stderr())
    });
}
