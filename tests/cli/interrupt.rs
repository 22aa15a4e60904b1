//! Interruptions and overlapping runs: SIGTERM stops cleanly, SIGKILL at any moment
//! leaves nothing at the output path, a second run on the same output exits 5.

use std::fs::OpenOptions;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Float32Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};

use super::harness::{read_parquet, testdata, write_parquet, Env};

const RF: &str = "TD/models/rf_binary.onnx";
const FEATURES: &str = "f0,f1,f2,f3,f4,f5,f6,f7";

/// `rows` rows of id + f0..f7, written in batches (and row groups) of 100k.
pub fn big_input(path: &std::path::Path, rows: i64) {
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    fields.extend((0..8).map(|i| Field::new(format!("f{i}"), DataType::Float32, false)));
    let schema = Arc::new(Schema::new(fields));
    let batches = (0..rows).step_by(100_000).map(|start| {
        let n = (rows - start).min(100_000);
        let mut cols: Vec<ArrayRef> =
            vec![Arc::new(Int64Array::from_iter_values(start..start + n))];
        for f in 0..8 {
            cols.push(Arc::new(Float32Array::from_iter_values(
                (start..start + n).map(|i| ((i * 31 + f * 7) % 1000) as f32 / 250.0 - 2.0),
            )));
        }
        RecordBatch::try_new(schema.clone(), cols).unwrap()
    });
    write_parquet(path, batches, Some(100_000));
}

/// A slow scoring run over `in.parquet`: an RBF SVM with probabilities, one thread.
fn spawn_slow_run(env: &Env, output: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_batchinfer"))
        .args([
            "score",
            "-m",
            &testdata()
                .join("models/svc_rbf_proba.onnx")
                .display()
                .to_string(),
            "-i",
            "in.parquet",
            "-o",
            output,
        ])
        .args([
            "--features",
            FEATURES,
            "--keep",
            "id",
            "--threads",
            "1",
            "--batch-size",
            "256",
            "-q",
        ])
        .current_dir(env.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn batchinfer")
}

/// Waits until the run has opened its temporary output, i.e. is scoring.
fn wait_until_scoring(env: &Env, child: &mut Child) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if env.files().iter().any(|f| f.ends_with(".batchinfer-tmp")) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended ({status}) before it started scoring");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the run did not start scoring within 20 s");
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill only sends a signal to the child we spawned.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// Files other than the input and the lock file.
fn outputs(env: &Env) -> Vec<String> {
    env.files()
        .into_iter()
        .filter(|f| f != "in.parquet" && !f.ends_with(".batchinfer-lock"))
        .collect()
}

#[test]
fn sigterm_stops_cleanly_with_a_summary_and_nothing_written() {
    let env = Env::new();
    big_input(&env.path("in.parquet"), 2_000_000);
    let mut child = spawn_slow_run(&env, "out.parquet");
    wait_until_scoring(&env, &mut child);
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, libc::SIGTERM);
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the run must stop promptly"
    );
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    assert!(stderr.contains("summary (interrupted)"), "{stderr}");
    assert_eq!(
        outputs(&env),
        Vec::<String>::new(),
        "no output and no temporary file may remain"
    );
}

#[test]
fn sigkill_at_any_moment_leaves_nothing_at_the_output_path() {
    let env = Env::new();
    big_input(&env.path("in.parquet"), 400_000);
    let mut mid_run = 0;
    for delay_ms in [0, 20, 150, 400] {
        let mut child = spawn_slow_run(&env, "out.parquet");
        wait_until_scoring(&env, &mut child);
        std::thread::sleep(Duration::from_millis(delay_ms));
        signal(&child, libc::SIGKILL);
        let _ = child.wait();
        let out = env.path("out.parquet");
        if out.exists() {
            // The run finished before the kill: then the file must be complete.
            assert_eq!(
                read_parquet(&out).num_rows(),
                400_000,
                "killed after {delay_ms} ms"
            );
            std::fs::remove_file(&out).unwrap();
        } else {
            assert!(
                env.files().iter().any(|f| f.ends_with(".batchinfer-tmp")),
                "a run killed while scoring leaves its temporary file, not an output"
            );
            mid_run += 1;
        }
    }
    assert!(mid_run > 0, "no kill landed while the run was scoring");
    // A later run removes what killed runs left and completes.
    let run = env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        "in.parquet",
        "-o",
        "out.parquet",
        "--features",
        FEATURES,
        "--keep",
        "id",
        "-q",
    ]);
    run.expect_code(0);
    assert_eq!(outputs(&env), vec!["out.parquet"]);
    assert_eq!(read_parquet(&env.path("out.parquet")).num_rows(), 400_000);
}

#[test]
fn a_second_run_on_the_same_output_exits_5_naming_the_holder() {
    let env = Env::new();
    // Hold the lock as a running batchinfer would.
    let mut held = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(env.path(".out.parquet.batchinfer-lock"))
        .unwrap();
    held.try_lock().unwrap();
    held.write_all(b"pid 4242 on cron-host since 2026-11-27T02:00:00Z")
        .unwrap();
    env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        "TD/data/numeric.parquet",
        "-o",
        "out.parquet",
        "--features",
        FEATURES,
        "-q",
    ])
    .expect_code(5)
    .expect_stderr("pid 4242 on cron-host since 2026-11-27T02:00:00Z");
    assert!(!env.path("out.parquet").exists());
    // Once the holder is gone (the OS drops the lock), its lock file is taken over.
    drop(held);
    env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        "TD/data/numeric.parquet",
        "-o",
        "out.parquet",
        "--features",
        FEATURES,
        "-q",
    ])
    .expect_code(0);
}

#[test]
fn a_signal_while_a_stream_is_read_stops_the_run_even_when_the_stream_then_ends() {
    let env = Env::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_batchinfer"))
        .args(["score", "--model"])
        .arg(testdata().join("models/logreg_multiclass.onnx"))
        .args([
            "--input",
            "-",
            "-o",
            "out.parquet",
            "--keep",
            "id",
            "--quiet",
            "--infer-rows",
            "100",
            "--batch-size",
            "10",
        ])
        .current_dir(env.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let csv = std::fs::read_to_string(testdata().join("data/numeric.csv")).unwrap();
    let head: String = csv.lines().take(201).map(|l| format!("{l}\n")).collect();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(head.as_bytes()).unwrap();
    // 200 rows, 20 whole batches: the run has yielded every batch and is blocked
    // reading the rest of standard input when the signal comes.
    let lock = env.path(".out.parquet.batchinfer-lock");
    let start = std::time::Instant::now();
    while !lock.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the run did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    // Then the stream ends: the reader sees its end, not the signal.
    drop(stdin);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert!(
        !env.path("out.parquet").exists(),
        "an interrupted run commits nothing"
    );
}
