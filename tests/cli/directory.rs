//! Directory outputs: part files, a manifest and `_SUCCESS`; shards that together
//! score every row exactly once; `--resume` after a kill; a completed job rerun
//! changes nothing; a changed model refuses to resume; `batchinfer status`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Float32Array, Int64Array, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema};

use super::harness::{ids, read_json, read_parquet, testdata, write_parquet, Env};

const RF: &str = "TD/models/rf_binary.onnx";
const GB: &str = "TD/models/gb_binary.onnx";
const FEATURES: &str = "f0,f1,f2,f3,f4,f5,f6,f7";

/// `rows` rows of id (from `first_id`) and f0..f7, in row groups of `group` rows.
fn table(path: &Path, first_id: i64, rows: i64, group: usize) {
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    fields.extend((0..8).map(|i| Field::new(format!("f{i}"), DataType::Float32, false)));
    let schema = Arc::new(Schema::new(fields));
    let ids = first_id..first_id + rows;
    let mut cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(ids.clone()))];
    for f in 0..8 {
        cols.push(Arc::new(Float32Array::from_iter_values(
            ids.clone()
                .map(|i| ((i * 37 + f * 11) % 997) as f32 / 250.0 - 2.0),
        )));
    }
    write_parquet(
        path,
        [RecordBatch::try_new(schema, cols).unwrap()],
        Some(group),
    );
}

/// Four files with uneven sizes and row groups (one file of one small group).
fn uneven_inputs(env: &Env) {
    std::fs::create_dir(env.path("in")).unwrap();
    table(&env.path("in/a.parquet"), 0, 1000, 128);
    table(&env.path("in/b.parquet"), 1000, 37, 10);
    table(&env.path("in/c.parquet"), 1037, 2500, 700);
    table(&env.path("in/d.parquet"), 3537, 5, 5);
}

/// The part files of a directory output, in name order, as one batch.
pub fn read_parts(dir: &Path) -> RecordBatch {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("part-") && n.ends_with(".parquet"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no parts in {}", dir.display());
    let batches: Vec<RecordBatch> = names.iter().map(|n| read_parquet(&dir.join(n))).collect();
    concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn score<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "score",
        "-m",
        RF,
        "-i",
        "in",
        "--keep",
        "id",
        "--features",
        FEATURES,
        "-q",
        "--batch-size",
        "100",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn shards_together_equal_the_unsharded_output_for_1_2_3_7_and_20_shards() {
    let env = Env::new();
    uneven_inputs(&env);
    env.run(&score(&["-o", "whole.parquet"])).expect_code(0);
    let whole = read_parquet(&env.path("whole.parquet"));
    assert_eq!(ids(&whole), (0..3542).collect::<Vec<_>>());
    // 20 shards are more than the 17 row groups: some shards have nothing to do.
    for n in [1, 2, 3, 7, 20] {
        let out = format!("out{n}/");
        for i in 0..n {
            let shard = format!("{i}/{n}");
            let json = format!("s{n}-{i}.json");
            env.run(&score(&[
                "-o",
                &out,
                "--shard",
                &shard,
                "--summary-json",
                &json,
            ]))
            .expect_code(0);
            let s = read_json(&env.path(&json));
            if n > 1 {
                assert_eq!(s["shard"], shard);
            }
            assert_eq!(s["status"], "ok");
        }
        let dir = env.path(&format!("out{n}"));
        let parts = read_parts(&dir);
        assert_eq!(
            parts, whole,
            "{n} shards: every row once, in input order, same predictions"
        );
        let suffix = |i: i32| {
            if n == 1 {
                String::new()
            } else {
                format!("-shard-{i:04}-of-{n:04}")
            }
        };
        for i in 0..n {
            assert!(dir.join(format!("_SUCCESS{}", suffix(i))).exists());
            let manifest = read_json(&dir.join(format!("_manifest{}.json", suffix(i))));
            assert_eq!(manifest["complete"], true);
            let sha = manifest["job"]["models"][0]["sha256"].as_str().unwrap();
            assert_eq!(sha.len(), 64);
            assert_eq!(manifest["job"]["inputs"].as_array().unwrap().len(), 4);
            for p in manifest["parts"].as_array().unwrap() {
                assert_eq!(p["done"], true);
                assert_eq!(p["rows_written"], p["rows"], "{p}");
            }
        }
        let status = env.run(&["status", &out, "--json"]);
        status.expect_code(0);
        let st: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap();
        assert_eq!(st["complete"], true);
        assert_eq!(st["shards"], n);
    }
    // Parts can be capped in rows; a part never splits a row group.
    env.run(&score(&["-o", "capped/", "--rows-per-file", "300"]))
        .expect_code(0);
    assert_eq!(read_parts(&env.path("capped")), whole);
    let manifest = read_json(&env.path("capped/_manifest.json"));
    for p in manifest["parts"].as_array().unwrap() {
        let rows = p["rows"].as_u64().unwrap();
        assert!(
            rows <= 300 || p["row_groups"].as_array().unwrap().len() == 1,
            "{p}"
        );
    }
}

#[test]
fn csv_files_are_units_too() {
    let env = Env::new();
    std::fs::create_dir(env.path("in")).unwrap();
    let numeric = std::fs::read_to_string(testdata().join("data/numeric.csv")).unwrap();
    let lines: Vec<&str> = numeric.lines().collect();
    for (i, chunk) in lines[1..].chunks(400).enumerate() {
        let body = format!("{}\n{}\n", lines[0], chunk.join("\n"));
        std::fs::write(env.path(&format!("in/{i}.csv")), body).unwrap();
    }
    let args = |out: &str, shard: Option<&str>| {
        let mut a = vec![
            "score".to_string(),
            "-m".into(),
            RF.into(),
            "-i".into(),
            "in".into(),
            "--keep".into(),
            "id".into(),
            "--features".into(),
            FEATURES.into(),
            "-q".into(),
            "-o".into(),
            out.into(),
        ];
        if let Some(s) = shard {
            a.extend(["--shard".to_string(), s.to_string()]);
        }
        a
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        env.run(&a).expect_code(0);
    };
    run(args("whole.parquet", None));
    for i in 0..3 {
        run(args("out/", Some(&format!("{i}/3"))));
    }
    assert_eq!(
        read_parts(&env.path("out")),
        read_parquet(&env.path("whole.parquet"))
    );
}

#[test]
fn a_completed_job_rerun_changes_nothing_and_overwrite_redoes_it() {
    let env = Env::new();
    uneven_inputs(&env);
    env.run(&score(&["-o", "out/"])).expect_code(0);
    let stamp = |name: &str| {
        std::fs::metadata(env.path("out").join(name))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = (
        stamp("part-00000-00000.parquet"),
        stamp("_manifest.json"),
        stamp("_SUCCESS"),
    );
    std::thread::sleep(Duration::from_millis(20));
    // Without -q: a rerun says it is complete, without the mapping plan.
    let mut loud = score(&["-o", "out/", "--summary-json", "again.json"]);
    loud.retain(|a| *a != "-q");
    let again = env.run(&loud);
    again.expect_code(0).expect_stderr("already complete");
    assert!(
        !again.stderr().contains("batchinfer: mapping"),
        "no mapping plan on a rerun:\n{}",
        again.stderr()
    );
    let after = (
        stamp("part-00000-00000.parquet"),
        stamp("_manifest.json"),
        stamp("_SUCCESS"),
    );
    assert_eq!(before, after, "nothing was rewritten");
    let s = read_json(&env.path("again.json"));
    assert_eq!(s["status"], "already complete");
    assert_eq!(s["rows_scored"], 0);
    // The same directory with another model is a different job.
    let mut other = score(&["-o", "out/"]);
    other[2] = GB;
    env.run(&other)
        .expect_code(2)
        .expect_stderr("completed run of another job")
        .expect_stderr("--overwrite");
    other.push("--overwrite");
    env.run(&other).expect_code(0);
    let manifest = read_json(&env.path("out/_manifest.json"));
    assert!(manifest["job"]["models"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with("gb_binary.onnx"));
}

/// Marks parts of a finished run as not done and deletes their files, as a crash
/// between parts leaves them; returns how many parts there are.
fn unfinish(dir: &Path, undone: &[usize]) -> usize {
    let path = dir.join("_manifest.json");
    let mut m = read_json(&path);
    m["complete"] = false.into();
    m["finished"] = serde_json::Value::Null;
    let parts = m["parts"].as_array_mut().unwrap();
    for &i in undone {
        parts[i]["done"] = false.into();
        let name = parts[i]["name"].as_str().unwrap().to_string();
        std::fs::remove_file(dir.join(&name)).unwrap();
        // A temporary file a killed run leaves behind.
        std::fs::write(
            dir.join(format!(".{name}.x1y2z3.batchinfer-tmp")),
            b"partial",
        )
        .unwrap();
    }
    let n = parts.len();
    std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
    std::fs::remove_file(dir.join("_SUCCESS")).unwrap();
    n
}

#[test]
fn resume_scores_only_unfinished_parts_and_refuses_a_changed_job() {
    let env = Env::new();
    uneven_inputs(&env);
    env.run(&score(&["-o", "whole.parquet"])).expect_code(0);
    let whole = read_parquet(&env.path("whole.parquet"));
    env.run(&score(&["-o", "out/", "--rows-per-file", "256"]))
        .expect_code(0);
    let n = unfinish(&env.path("out"), &[1, 4]);
    assert!(n > 5);
    // Without --resume the unfinished run is named, and nothing happens.
    env.run(&score(&["-o", "out/", "--rows-per-file", "256"]))
        .expect_code(2)
        .expect_stderr("unfinished run")
        .expect_stderr("--resume");
    // Another model, or other options, cannot resume it.
    let mut other = score(&["-o", "out/", "--rows-per-file", "256", "--resume"]);
    other[2] = GB;
    env.run(&other)
        .expect_code(3)
        .expect_stderr("cannot resume")
        .expect_stderr("gb_binary.onnx changed");
    env.run(&score(&[
        "-o",
        "out/",
        "--rows-per-file",
        "512",
        "--resume",
    ]))
    .expect_code(3)
    .expect_stderr("it was written with --rows-per-file 256, this run has --rows-per-file 512");
    let resumed = score(&[
        "-o",
        "out/",
        "--rows-per-file",
        "256",
        "--resume",
        "--summary-json",
        "r.json",
    ]);
    env.run(&resumed).expect_code(0);
    let s = read_json(&env.path("r.json"));
    assert_eq!(s["parts"]["written"], 2);
    assert_eq!(s["parts"]["already_done"], n - 2);
    assert_eq!(read_parts(&env.path("out")), whole);
    assert!(
        !env.files_in("out")
            .iter()
            .any(|f| f.ends_with(".batchinfer-tmp")),
        "leftovers removed: {:?}",
        env.files_in("out")
    );
    // A changed input cannot resume either.
    unfinish(&env.path("out"), &[0]);
    table(&env.path("in/d.parquet"), 3537, 6, 5);
    env.run(&resumed)
        .expect_code(3)
        .expect_stderr("input")
        .expect_stderr("d.parquet changed");
}

fn done_parts(manifest: &Path) -> usize {
    std::fs::read_to_string(manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|m| {
            m["parts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["done"] == true)
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_run_stopped_then_killed_midway_then_resumed_gives_every_row_once() {
    let env = Env::new();
    table(&env.path("slow.parquet"), 0, 200_000, 1000);
    let model = testdata()
        .join("models/svc_rbf_proba.onnx")
        .display()
        .to_string();
    // One row per batch on one thread: slow enough to stop midway.
    let args = |batch: &'static str, resume: bool| {
        let mut a = vec![
            "score",
            "-m",
            &model,
            "-i",
            "slow.parquet",
            "--keep",
            "id",
            "--features",
            FEATURES,
            "--threads",
            "1",
            "--batch-size",
            batch,
            "--rows-per-file",
            "1000",
            "-q",
            "-o",
            "out/",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        if resume {
            a.push("--resume".into());
        }
        a
    };
    let manifest = env.path("out/_manifest.json");
    // Starts a run and stops it with `signal` once `parts` parts are done.
    let stop_after = |parts: usize, resume: bool, signal: i32| {
        let child = Command::new(env!("CARGO_BIN_EXE_batchinfer"))
            .args(args("1", resume))
            .current_dir(env.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn batchinfer");
        let started = Instant::now();
        while done_parts(&manifest) < parts {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{parts} parts not done in 60 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait_with_output().unwrap()
    };
    let stopped = stop_after(5, false, libc::SIGTERM);
    assert_eq!(stopped.status.code(), Some(143), "SIGTERM: exit 143");
    // The message says what is there: the parts committed before stay.
    let said = String::from_utf8_lossy(&stopped.stderr);
    assert!(
        said.contains("stopped by SIGTERM")
            && said.contains("part(s) committed before stay in out/"),
        "{said}"
    );
    assert!(!said.contains("nothing was written"), "{said}");
    let m = read_json(&manifest);
    assert_eq!(m["complete"], false, "stopped before the end");
    assert!(!env.path("out/_SUCCESS").exists());
    assert!(
        !env.files_in("out")
            .iter()
            .any(|f| f.ends_with(".batchinfer-tmp")),
        "a stopped run removes its temporary part: {:?}",
        env.files_in("out")
    );
    let done_then = done_parts(&manifest);
    let killed = stop_after(done_then + 5, true, libc::SIGKILL);
    assert_eq!(killed.status.code(), None, "killed by a signal");
    let done_before = done_parts(&manifest);
    assert!(done_before >= done_then + 5 && done_before < 200);

    let mut resume = args("256", true);
    resume.extend(["--summary-json".into(), "r.json".into()]);
    let resume: Vec<&str> = resume.iter().map(String::as_str).collect();
    env.run(&resume).expect_code(0);
    let s = read_json(&env.path("r.json"));
    assert_eq!(s["parts"]["already_done"], done_before);
    assert_eq!(s["parts"]["written"], 200 - done_before);
    assert_eq!(s["parts"]["total"], 200);
    let parts = read_parts(&env.path("out"));
    assert_eq!(
        ids(&parts),
        (0..200_000).collect::<Vec<_>>(),
        "each row once"
    );
    assert!(!env
        .files_in("out")
        .iter()
        .any(|f| f.ends_with(".batchinfer-tmp")));
    env.run(&["status", "out"]).expect_code(0);
}

#[test]
fn shards_come_from_scheduler_variables_and_are_checked() {
    let env = Env::new();
    uneven_inputs(&env);
    env.run_with(
        &score(&["-o", "out/", "--shard", "auto", "--summary-json", "s.json"]),
        None,
        &[
            ("AWS_BATCH_JOB_ARRAY_INDEX", "1"),
            ("AWS_BATCH_JOB_ARRAY_SIZE", "2"),
        ],
    )
    .expect_code(0);
    assert_eq!(read_json(&env.path("s.json"))["shard"], "1/2");
    env.run_with(
        &score(&["-o", "out/", "--shard", "auto/2"]),
        None,
        &[("JOB_COMPLETION_INDEX", "0")],
    )
    .expect_code(0);
    env.run(&["status", "out"])
        .expect_code(0)
        .expect_stdout("2 of 2 shard(s) complete");
    // Another split into the same directory would overlap its parts.
    env.run(&score(&["-o", "out/", "--shard", "0/3"]))
        .expect_code(2)
        .expect_stderr("2-way split");
    env.run(&score(&["-o", "out/", "--shard", "auto"]))
        .expect_code(2)
        .expect_stderr("none of AWS_BATCH_JOB_ARRAY_INDEX");
    // Shards and resuming are for directory outputs; stdin cannot be resumed.
    env.run(&score(&["-o", "x.parquet", "--shard", "0/2"]))
        .expect_code(2)
        .expect_stderr("--shard is for directory outputs");
    env.run(&[
        "score",
        "-m",
        RF,
        "-i",
        "-",
        "-o",
        "o/",
        "--features",
        FEATURES,
    ])
    .expect_code(2)
    .expect_stderr("standard input");
    env.run(&["status", "in"]).expect_code(2);
    // One shard missing: status says so and exits 1.
    env.run(&score(&["-o", "half/", "--shard", "1/2"]))
        .expect_code(0);
    env.run(&["status", "half"])
        .expect_code(1)
        .expect_stdout("not started");
}

#[test]
fn rejected_rows_of_a_directory_output_go_to_its_errors_directory() {
    let env = Env::new();
    super::jobs::mixed_with_null_at_700(&env.path("in.parquet"));
    env.run(&[
        "score",
        "-m",
        "TD/models/pipeline_mixed.onnx",
        "-i",
        "in.parquet",
        "-o",
        "out/",
        "--keep",
        "id",
        "--on-error",
        "skip",
        "--rows-per-file",
        "200",
        "-q",
    ])
    .expect_code(0)
    .expect_stderr("1 rejected");
    let out = env.path("out");
    let parts = read_parts(&out);
    assert_eq!(parts.num_rows(), 999);
    let errors: Vec<String> = env.files_in("out/_errors");
    assert_eq!(
        errors,
        ["part-00000-00006.parquet"],
        "only the part with a rejection"
    );
    let e = read_parquet(&out.join("_errors").join(&errors[0]));
    assert_eq!(ids(&e), [700]);
    let manifest = read_json(&out.join("_manifest.json"));
    let rejected: u64 = manifest["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rows_rejected"].as_u64().unwrap())
        .sum();
    assert_eq!(rejected, 1);
}

#[test]
fn outputs_get_the_permissions_of_any_new_file() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    uneven_inputs(&env);
    env.run(&score(&["-o", "one.parquet"])).expect_code(0);
    env.run(&score(&["-o", "dir/"])).expect_code(0);
    // What the umask gives a file created the ordinary way (not 0600 as a
    // temporary file would be).
    std::fs::write(env.path("reference"), b"").unwrap();
    let mode = |name: &str| {
        std::fs::metadata(env.path(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    let expected = mode("reference");
    for name in [
        "one.parquet",
        "dir/part-00000-00000.parquet",
        "dir/_manifest.json",
        "dir/_SUCCESS",
    ] {
        assert_eq!(mode(name), expected, "{name}");
    }
}
