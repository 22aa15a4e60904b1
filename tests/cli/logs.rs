//! `--log-format json`: every stderr line is one JSON object for log collectors.

use super::harness::Env;

fn lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn json_logs_have_one_object_per_line_for_each_event() {
    let env = Env::new();
    let run = env.run_with(
        &[
            "score",
            "-m",
            "TD/models/rf_binary.onnx",
            "-i",
            "TD/data/numeric.parquet",
            "--keep",
            "id,ts,segment",
            "-o",
            "out.parquet",
            "--batch-size",
            "100",
            "--progress-every",
            "0.000001",
        ],
        None,
        &[("BATCHINFER_LOG_FORMAT", "json")],
    );
    run.expect_code(0);
    let events = lines(&run.stderr());
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"mapping"));
    assert_eq!(kinds.last(), Some(&"summary"));
    assert!(kinds.contains(&"progress"), "{kinds:?}");
    let progress = events.iter().find(|e| e["event"] == "progress").unwrap();
    assert_eq!(progress["total_rows"], 1500);
    assert!(progress["rows"].as_u64().unwrap() > 0);
    let summary = events.last().unwrap();
    assert_eq!(summary["status"], "ok");
    assert_eq!(summary["rows_scored"], 1500);
    assert!(events
        .iter()
        .all(|e| e["time"].is_string() && e["level"].is_string()));

    let failed = env.run(&[
        "score",
        "-m",
        "missing.onnx",
        "-i",
        "TD/data/numeric.parquet",
        "-o",
        "x.parquet",
        "--log-format",
        "json",
    ]);
    failed.expect_code(3);
    let events = lines(&failed.stderr());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"], "error");
    assert_eq!(events[0]["level"], "error");
    assert_eq!(events[0]["exit_code"], 3);
    assert!(events[0]["message"]
        .as_str()
        .unwrap()
        .contains("missing.onnx"));
}
