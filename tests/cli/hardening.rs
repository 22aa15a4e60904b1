//! Odd but ordinary inputs and paths: each either scores exactly the rows it
//! should, or fails with a clear message and the documented exit code; a run
//! never writes over what it reads.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float32Array, Int64Array, ListArray, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema};

use super::harness::{ids, read_json, read_parquet, testdata, write_parquet, Env};

const MODEL: &str = "TD/models/logreg_multiclass.onnx";
const FEATURES: &str = "f0,f1,f2,f3,f4,f5,f6,f7";

/// `score` with the logistic regression on `input` into `output`, plus `extra`.
fn score<'a>(input: &'a str, output: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    score_with(MODEL, input, output, extra)
}

/// `score` with `model` (fed f0..f7) on `input` into `output`, plus `extra`.
fn score_with<'a>(
    model: &'a str,
    input: &'a str,
    output: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "score",
        "-m",
        model,
        "-i",
        input,
        "-o",
        output,
        "--features",
        FEATURES,
        "-q",
    ];
    args.extend_from_slice(extra);
    args
}

/// A CSV of `rows` rows: id, f0..f7, then a free-text `note` (last).
fn csv_text(rows: usize, note: impl Fn(usize) -> String) -> String {
    let mut s = String::from("id,f0,f1,f2,f3,f4,f5,f6,f7,note\n");
    for r in 0..rows {
        s.push_str(&format!("{r}"));
        for f in 0..8 {
            s.push_str(&format!(",{}", ((r * 7 + f * 3) % 100) as f32 / 25.0 - 2.0));
        }
        s.push_str(&format!(",{}\n", note(r)));
    }
    s
}

fn rows_in(path: &Path) -> usize {
    read_parquet(path).num_rows()
}

// 1. Bad quoting -------------------------------------------------------------

#[test]
fn a_stray_quote_in_a_csv_is_an_error_naming_file_and_line_not_a_swallowed_file() {
    let env = Env::new();
    // Row 100 (line 101) opens a quote that never closes: csv-core alone would read
    // rows 100..2000 as one field of one row and score 101 rows.
    let text = csv_text(2000, |r| {
        if r == 100 {
            "\"Bob".into()
        } else {
            "ok".into()
        }
    });
    std::fs::write(env.path("in.csv"), &text).unwrap();
    for extra in [
        &[][..],
        &["--on-error", "skip"][..],
        &["--keep", "id,note"][..],
    ] {
        env.run(&score("in.csv", "out.parquet", extra))
            .expect_code(4)
            .expect_stderr("bad quoting in in.csv at line 102")
            .expect_stderr("never closed");
        assert!(!env.path("out.parquet").exists());
    }
    // An unterminated quote in the last row, with no line end after it.
    let mut text = csv_text(50, |_| "ok".into());
    text.push_str("50,1,1,1,1,1,1,1,1,\"open");
    std::fs::write(env.path("last.csv"), &text).unwrap();
    env.run(&score("last.csv", "out.parquet", &[]))
        .expect_code(4)
        .expect_stderr("bad quoting in last.csv at line 52");
    // Text after a closing quote.
    let text = csv_text(30, |r| {
        if r == 20 {
            "\"a\"b".into()
        } else {
            "ok".into()
        }
    });
    std::fs::write(env.path("after.csv"), &text).unwrap();
    env.run(&score("after.csv", "out.parquet", &[]))
        .expect_code(4)
        .expect_stderr("at line 22")
        .expect_stderr("follows the closing quote");
    // Under --on-error skip such a row can still be delimited: it is set aside.
    let mut text = csv_text(3000, |r| {
        if r == 2500 {
            "\"a\"b".into()
        } else {
            "ok".into()
        }
    });
    text = text.replace("\n2501,", "\n\n2501,"); // a blank line after it
    std::fs::write(env.path("after.csv"), &text).unwrap();
    for batch in ["8192", "100", "7"] {
        env.run(&score(
            "after.csv",
            "skip.parquet",
            &[
                "--on-error",
                "skip",
                "--keep",
                "id,note",
                "--batch-size",
                batch,
                "--overwrite",
            ],
        ))
        .expect_code(0);
        let out = read_parquet(&env.path("skip.parquet"));
        assert_eq!(out.num_rows(), 2999, "batch {batch}");
        assert!(!ids(&out).contains(&2500));
        let errors = read_parquet(&env.path("skip.errors.parquet"));
        assert_eq!(ids(&errors), [2500], "batch {batch}");
    }
    // Quoted fields with delimiters, doubled quotes and line ends are fine.
    let text = csv_text(30, |r| format!("\"a,\"\"b\"\"\n{r}\""));
    std::fs::write(env.path("good.csv"), &text).unwrap();
    env.run(&score("good.csv", "out.parquet", &["--keep", "id,note"]))
        .expect_code(0);
    let out = read_parquet(&env.path("out.parquet"));
    assert_eq!(out.num_rows(), 30);
    let note = out
        .column_by_name("note")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(note.value(7), "a,\"b\"\n7");
}

// 2. Inputs that can be read only once -----------------------------------------

#[test]
fn dev_stdin_and_pipes_are_read_once_with_every_row() {
    let env = Env::new();
    let text = csv_text(30_000, |_| "x".into());
    let run = env.run_with_stdin(
        &score("/dev/stdin", "out.parquet", &["--summary-json", "s.json"]),
        Some(text.as_bytes()),
    );
    run.expect_code(0);
    assert_eq!(rows_in(&env.path("out.parquet")), 30_000);
    assert_eq!(read_json(&env.path("s.json"))["rows_read"], 30_000);
    // Fewer rows than type inference reads.
    let small = csv_text(100, |_| "x".into());
    env.run_with_stdin(
        &score("/dev/stdin", "small.parquet", &[]),
        Some(small.as_bytes()),
    )
    .expect_code(0);
    assert_eq!(rows_in(&env.path("small.parquet")), 100);

    // A named pipe, as `<(cmd)` gives.
    let fifo = env.path("pipe.csv");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let writer = {
        let fifo = fifo.clone();
        let text = text.clone();
        std::thread::spawn(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&fifo)
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        })
    };
    env.run(&score("pipe.csv", "fifo.parquet", &[]))
        .expect_code(0);
    writer.join().unwrap();
    assert_eq!(rows_in(&env.path("fifo.parquet")), 30_000);
}

#[test]
fn parquet_from_a_stream_is_refused_saying_why() {
    let env = Env::new();
    let bytes = std::fs::read(testdata().join("data/numeric.parquet")).unwrap();
    env.run_with_stdin(
        &score("-", "out.parquet", &["--input-format", "parquet"]),
        Some(&bytes),
    )
    .expect_code(2)
    .expect_stderr("Parquet cannot be read from one");
}

// 3. Glob characters in real file names -----------------------------------------

#[test]
fn a_file_name_with_brackets_is_that_file_not_a_glob() {
    let env = Env::new();
    std::fs::create_dir(env.path("dir")).unwrap();
    std::fs::copy(
        testdata().join("data/numeric.parquet"),
        env.path("dir/day[1].parquet"),
    )
    .unwrap();
    std::fs::copy(
        testdata().join("data/numeric_parts/part-000.parquet"),
        env.path("dir/day1.parquet"),
    )
    .unwrap();
    env.run(&score(
        "dir/day[1].parquet",
        "out.parquet",
        &["--keep", "id"],
    ))
    .expect_code(0);
    let expected = read_parquet(&testdata().join("data/numeric.parquet"));
    assert_eq!(ids(&read_parquet(&env.path("out.parquet"))), ids(&expected));
    // A pattern that names no file is still a glob.
    env.run(&score(
        "dir/day?.parquet",
        "glob.parquet",
        &["--keep", "id"],
    ))
    .expect_code(0);
    let part = read_parquet(&testdata().join("data/numeric_parts/part-000.parquet"));
    assert_eq!(ids(&read_parquet(&env.path("glob.parquet"))), ids(&part));
}

// 4 and 5. Paths a run writes never clash with what it reads --------------------

#[test]
fn a_run_never_writes_over_its_inputs_model_or_job_file_even_with_overwrite() {
    let env = Env::new();
    std::fs::create_dir_all(env.path("sub")).unwrap();
    std::fs::create_dir_all(env.path("dir")).unwrap();
    std::fs::copy(
        testdata().join("data/numeric.parquet"),
        env.path("in.parquet"),
    )
    .unwrap();
    std::fs::copy(testdata().join("data/numeric.csv"), env.path("in.csv")).unwrap();
    std::fs::copy(
        testdata().join("data/numeric.parquet"),
        env.path("dir/a.parquet"),
    )
    .unwrap();
    std::fs::copy(testdata().join(&MODEL[3..]), env.path("model.onnx")).unwrap();
    let before = |p: &str| std::fs::read(env.path(p)).unwrap();
    let (parquet, csv, model) = (before("in.parquet"), before("in.csv"), before("model.onnx"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            score("in.parquet", "in.parquet", &["--overwrite"]),
            "--output",
        ),
        (
            score("in.parquet", "sub/../in.parquet", &["--overwrite"]),
            "--output",
        ),
        (score("in.csv", "in.csv", &["--overwrite"]), "--output"),
        (score("dir", "dir/a.parquet", &["--overwrite"]), "--output"),
        (
            score("in.parquet", "model.onnx", &["--overwrite"]),
            "--output",
        ),
        (
            score(
                "in.parquet",
                "out.parquet",
                &["--summary-json", "in.parquet"],
            ),
            "--summary-json",
        ),
        (
            score(
                "in.parquet",
                "out.parquet",
                &["--summary-json", "model.onnx", "--overwrite"],
            ),
            "--summary-json",
        ),
        (
            score(
                "in.parquet",
                "out.parquet",
                &[
                    "--on-error",
                    "skip",
                    "--errors",
                    "in.parquet",
                    "--overwrite",
                ],
            ),
            "--errors",
        ),
    ];
    for (mut args, role) in cases {
        // The model given as a copy, so that writing over it is a clash too.
        args[2] = "model.onnx";
        env.run(&args)
            .expect_code(2)
            .expect_stderr(role)
            .expect_stderr("the run would overwrite what it reads");
    }
    assert_eq!(before("in.parquet"), parquet);
    assert_eq!(before("in.csv"), csv);
    assert_eq!(before("model.onnx"), model);
    assert_eq!(
        std::fs::read(env.path("dir/a.parquet")).unwrap(),
        parquet,
        "one file of a directory input"
    );

    // Two outputs at one path, spelled differently.
    env.run(&score(
        "in.parquet",
        "out.parquet",
        &["--on-error", "skip", "--errors", "sub/../out.parquet"],
    ))
    .expect_code(2)
    .expect_stderr("are the same path");
    env.run(&score(
        "in.parquet",
        "out.parquet",
        &["--summary-json", "./out.parquet"],
    ))
    .expect_code(2)
    .expect_stderr("are the same path");
    // An input inside a directory output.
    env.run(&score("dir/a.parquet", "dir/", &[]))
        .expect_code(2)
        .expect_stderr("is inside the directory output");
    // The job file.
    std::fs::write(
        env.path("job.toml"),
        format!(
            "model = \"{}\"\ninput = \"in.parquet\"\noutput = \"job.toml\"\nfeatures = \"{FEATURES}\"\noverwrite = true\n",
            testdata().join(&MODEL[3..]).display()
        ),
    )
    .unwrap();
    let job = before("job.toml");
    env.run(&["run", "job.toml", "-q"])
        .expect_code(2)
        .expect_stderr("job file");
    assert_eq!(before("job.toml"), job);
    assert!(!env.path("out.parquet").exists());
}

#[test]
fn the_summary_json_is_an_output_checked_before_scoring_and_never_hides_the_exit_code() {
    let env = Env::new();
    std::fs::write(env.path("old.json"), b"keep me").unwrap();
    env.run(&score(
        "TD/data/numeric.parquet",
        "out.parquet",
        &["--summary-json", "old.json"],
    ))
    .expect_code(2)
    .expect_stderr("old.json exists and is not a batchinfer summary");
    assert_eq!(std::fs::read(env.path("old.json")).unwrap(), b"keep me");
    assert!(!env.path("out.parquet").exists(), "refused before scoring");
    // An unwritable summary path is refused before scoring (a file is in the way).
    env.run(&score(
        "TD/data/numeric.parquet",
        "out.parquet",
        &["--summary-json", "old.json/summary.json"],
    ))
    .expect_code(2)
    .expect_stderr("--summary-json");
    assert!(!env.path("out.parquet").exists());
    // A failed run writes its summary and keeps its own exit code.
    std::fs::write(env.path("bad.csv"), mixed_with_null_visits(20_000, 15_000)).unwrap();
    env.run(&[
        "score",
        "-m",
        "TD/models/pipeline_mixed.onnx",
        "-i",
        "bad.csv",
        "-o",
        "out.parquet",
        "--batch-size",
        "1000",
        "-q",
        "--summary-json",
        "s/failed.json",
    ])
    .expect_code(4);
    assert_eq!(read_json(&env.path("s/failed.json"))["status"], "failed");
    // An earlier run's summary is replaced: retries and reruns write theirs.
    env.run(&score(
        "TD/data/numeric.parquet",
        "out.parquet",
        &["--summary-json", "s/failed.json"],
    ))
    .expect_code(0);
    assert_eq!(read_json(&env.path("s/failed.json"))["status"], "ok");
}

// 6. A stage that dies fails the run ----------------------------------------------

#[test]
fn a_reader_or_writer_that_crashes_fails_the_run_and_commits_nothing() {
    for stage in ["reader", "writer"] {
        let env = Env::new();
        for (output, extra) in [
            ("out.parquet", &["--filter", "f0 > -10"][..]),
            ("out.parquet", &["--sample", "0.9"][..]),
            ("dir/", &[][..]),
        ] {
            let mut args = score("TD/data/numeric.parquet", output, extra);
            args.extend(["--batch-size", "100"]);
            let run = env.run_with(&args, None, &[("BATCHINFER_TEST_FAULT", stage)]);
            run.expect_code(1)
                .expect_stderr(&format!("the {stage} thread crashed"));
            assert!(!env.path("out.parquet").exists(), "{}", run.context());
            assert!(!env.path("dir/_SUCCESS").exists(), "{}", run.context());
        }
    }
}

// 7 and 9. Directory outputs that were damaged by hand ------------------------------

fn directory_run(env: &Env, extra: &[&str]) -> super::harness::Run {
    let mut args = score(
        "TD/data/numeric_parts",
        "scores/",
        &["--keep", "id", "--rows-per-file", "100000"],
    );
    args.extend_from_slice(extra);
    env.run(&args)
}

#[test]
fn a_damaged_manifest_is_an_error_naming_it_never_a_crash() {
    let env = Env::new();
    directory_run(&env, &[]).expect_code(0);
    let path = env.path("scores/_manifest.json");
    let mut m = read_json(&path);
    m["complete"] = false.into();
    m["job"]["inputs"][0]["fingerprint"] = "abc".into();
    std::fs::write(&path, m.to_string()).unwrap();
    for extra in [&["--resume"][..], &[][..]] {
        let run = directory_run(&env, extra);
        assert!(run.code() == 1 || run.code() == 2, "{}", run.context());
        run.expect_stderr("_manifest.json is damaged")
            .expect_stderr("remove the directory");
        assert!(
            !run.stderr().contains("internal error"),
            "{}",
            run.context()
        );
    }
    // A part name that is a path, and a manifest that is not JSON.
    m["job"]["inputs"][0]["fingerprint"] = "0".repeat(64).into();
    m["parts"][0]["name"] = "../../escape.parquet".into();
    std::fs::write(&path, m.to_string()).unwrap();
    directory_run(&env, &["--resume"]).expect_stderr("is not a plain file name");
    std::fs::write(&path, b"{ not json").unwrap();
    directory_run(&env, &["--resume"]).expect_stderr("is not a batchinfer manifest");
    env.run(&["status", "scores"])
        .expect_stderr("is not a batchinfer manifest");
}

#[test]
fn a_finished_directory_with_a_part_deleted_is_damaged_not_complete() {
    let env = Env::new();
    directory_run(&env, &[]).expect_code(0);
    let whole = super::directory::read_parts(&env.path("scores"));
    std::fs::remove_file(env.path("scores/part-00001-00000.parquet")).unwrap();
    env.run(&["status", "scores"])
        .expect_code(1)
        .expect_stdout("damaged")
        .expect_stdout("part-00001-00000.parquet (500 rows) is listed as done but is missing");
    directory_run(&env, &[])
        .expect_code(2)
        .expect_stderr("is complete by its manifest but damaged")
        .expect_stderr("part-00001-00000.parquet")
        .expect_stderr("--resume");
    // A part of another size is damaged too.
    let part = env.path("scores/part-00002-00000.parquet");
    let bytes = std::fs::read(&part).unwrap();
    std::fs::write(&part, &bytes[..bytes.len() - 1]).unwrap();
    directory_run(&env, &["--resume"]).expect_code(0);
    assert_eq!(super::directory::read_parts(&env.path("scores")), whole);
    assert!(env.path("scores/_SUCCESS").exists());
    directory_run(&env, &[])
        .expect_code(0)
        .expect_stderr("already complete");
}

// 10. A closed stdout -----------------------------------------------------------------

/// Runs batchinfer with stdout read for `bytes` bytes and then closed.
fn run_closing_stdout(args: &[&str], bytes: usize) -> (i32, String) {
    let td = testdata();
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("TD/", &format!("{}/", td.display())))
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_batchinfer"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // 0 bytes: closed at once, before the command prints anything.
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; bytes];
    out.read_exact(&mut buf).unwrap();
    drop(out);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap().code().unwrap_or(-1), err)
}

#[test]
fn a_reader_that_closes_stdout_is_not_an_error() {
    let env = Env::new();
    super::interrupt::big_input(&env.path("big.parquet"), 300_000);
    let big = env.path("big.parquet").display().to_string();
    let scores = env.path("scores.parquet").display().to_string();
    let cases: Vec<Vec<&str>> = vec![
        score(&big, "-", &["--keep", "id"]),
        vec!["inspect", "TD/models/rf_multiclass_strlabels.onnx"],
        vec![
            "score",
            "-m",
            MODEL,
            "-i",
            &big,
            "-o",
            &scores,
            "--overwrite",
            "--features",
            FEATURES,
            "-q",
            "--summary",
            "-",
        ],
    ];
    for (i, args) in cases.into_iter().enumerate() {
        // The scores are read a little first; the others are closed at once.
        let (code, err) = run_closing_stdout(&args, if i == 0 { 20 } else { 0 });
        assert_eq!(code, 0, "{args:?}\n{err}");
        assert!(
            !err.contains("error") && !err.contains("panicked"),
            "{args:?}\n{err}"
        );
    }
}

#[test]
fn an_output_path_that_is_a_device_or_pipe_is_refused_not_replaced() {
    // A device or a pipe at an output path would be replaced by the rename that
    // commits a file (as root, even /dev/null): refused before anything is written.
    let env = Env::new();
    assert!(Command::new("mkfifo")
        .arg(env.path("pipe.parquet"))
        .status()
        .unwrap()
        .success());
    for flag in ["-o", "--summary-json", "--errors"] {
        let mut args = score("TD/data/numeric.parquet", "out.parquet", &["--overwrite"]);
        if flag == "-o" {
            args[6] = "pipe.parquet";
        } else {
            args.extend([flag, "pipe.parquet"]);
            if flag == "--errors" {
                args.extend(["--on-error", "skip"]);
            }
        }
        env.run(&args)
            .expect_code(2)
            .expect_stderr("is not a regular file");
        use std::os::unix::fs::FileTypeExt;
        let kind = std::fs::symlink_metadata(env.path("pipe.parquet"))
            .unwrap()
            .file_type();
        assert!(kind.is_fifo(), "{flag}: the pipe is still a pipe");
    }
}

// 11. Kept columns CSV cannot or can hold ------------------------------------------

fn with_extra_column(path: &Path, name: &str, column: ArrayRef) {
    let base = read_parquet(&testdata().join("data/numeric.parquet"));
    let mut fields: Vec<Field> = base
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(name, column.data_type().clone(), true));
    let mut columns = base.columns().to_vec();
    columns.push(column);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    write_parquet(path, [batch], None);
}

#[test]
fn named_time_zones_are_written_as_csv_and_list_columns_refused_before_scoring() {
    let env = Env::new();
    for tz in ["UTC", "Europe/Paris"] {
        let ts = TimestampMicrosecondArray::from_iter_values(
            (0..1500).map(|i| 1_700_000_000_000_000 + i * 1_000_000),
        )
        .with_timezone(tz);
        with_extra_column(&env.path("tz.parquet"), "when", Arc::new(ts));
        for output in ["out.csv", "-"] {
            let run = env.run(&score(
                "tz.parquet",
                output,
                &["--keep", "id,when", "--overwrite"],
            ));
            run.expect_code(0);
            let text = if output == "-" {
                run.stdout()
            } else {
                std::fs::read_to_string(env.path("out.csv")).unwrap()
            };
            let first = text.lines().nth(1).unwrap();
            let expected = if tz == "UTC" {
                "2023-11-14T22:13:20Z"
            } else {
                "2023-11-14T23:13:20+01:00"
            };
            assert!(first.contains(expected), "{tz}: {first}");
        }
    }
    let lists = ListArray::from_iter_primitive::<Int32Type, _, _>(
        (0..1500).map(|i| Some(vec![Some(i), Some(i + 1)])),
    );
    with_extra_column(&env.path("list.parquet"), "tags", Arc::new(lists));
    env.run(&score("list.parquet", "list.csv", &["--keep", "id,tags"]))
        .expect_code(2)
        .expect_stderr("column `tags`")
        .expect_stderr("cannot be written as CSV");
    assert!(!env.path("list.csv").exists());
}

// 12 and 19. Model inputs batchinfer refuses, and weights beside the model -----------

#[test]
fn a_rank_3_model_input_is_refused_before_scoring_in_batchinfers_words() {
    let env = Env::new();
    env.run(&score_with(
        "TD/models/rank3_input.onnx",
        "TD/data/numeric.parquet",
        "out.parquet",
        &[],
    ))
    .expect_code(3)
    .expect_stderr("input `x` has shape [N, 2, 4]")
    .expect_stderr("[N] or [N, F]");
    assert!(!env.path("out.parquet").exists());
}

#[test]
fn a_model_with_external_weights_is_loaded_and_matches_onnxruntime() {
    let env = Env::new();
    for model in [
        "TD/models/linear_external.onnx",
        "TD/models/linear_embedded.onnx",
    ] {
        env.run(&score_with(
            model,
            "TD/data/numeric.parquet",
            "out.parquet",
            &["--keep", "id", "--overwrite"],
        ))
        .expect_code(0);
        let out = read_parquet(&env.path("out.parquet"));
        let expected = read_parquet(&testdata().join("expected/linear_external.parquet"));
        assert_eq!(ids(&out), ids(&expected));
        let ours = out.column_by_name("score").unwrap();
        let theirs = expected.column_by_name("score").unwrap();
        let (ours, theirs) = (
            ours.as_any().downcast_ref::<Float32Array>().unwrap(),
            theirs.as_any().downcast_ref::<Float32Array>().unwrap(),
        );
        for (a, b) in ours.values().iter().zip(theirs.values()) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{model}: {a} vs {b}"
            );
        }
    }
}

// 13. Messages that say what the output holds -------------------------------------

/// Rows for the pipeline_mixed model; row `bad` has no n_visits (a bad row: the
/// input is int64).
fn mixed_with_null_visits(rows: usize, bad: usize) -> String {
    let mut text = String::from("id,age,income,plan,n_visits\n");
    for i in 0..rows {
        let visits = if i == bad {
            String::new()
        } else {
            (i % 9).to_string()
        };
        text.push_str(&format!(
            "{i},{},{},basic,{visits}\n",
            20 + i % 50,
            1000 + i
        ));
    }
    text
}

#[test]
fn after_a_bad_row_on_stdout_the_message_says_rows_were_already_written() {
    let env = Env::new();
    std::fs::write(env.path("in.csv"), mixed_with_null_visits(20_000, 15_000)).unwrap();
    let run = env.run(&[
        "score",
        "-m",
        "TD/models/pipeline_mixed.onnx",
        "-i",
        "in.csv",
        "-o",
        "-",
        "--keep",
        "id",
        "--batch-size",
        "1000",
        "--threads",
        "1",
        "-q",
    ]);
    run.expect_code(4)
        .expect_stderr("were already written to standard output");
    assert!(
        !run.stderr().contains("nothing was written"),
        "{}",
        run.context()
    );
    assert!(run.stdout().lines().count() > 1000);
}

// 14. Missing parent directories are created ----------------------------------------

#[test]
fn templated_output_error_and_summary_directories_are_created() {
    let env = Env::new();
    env.run(&score(
        "TD/data/numeric.parquet",
        "scores/{date}/run.parquet",
        &[
            "--date",
            "2024-01-02",
            "--on-error",
            "skip",
            "--errors",
            "errors/{date}/bad.parquet",
            "--summary-json",
            "summaries/{date}.json",
        ],
    ))
    .expect_code(0);
    assert_eq!(rows_in(&env.path("scores/2024-01-02/run.parquet")), 1500);
    assert!(env.path("summaries/2024-01-02.json").exists());
    env.run(&score(
        "TD/data/numeric.parquet",
        "parts/{date}/",
        &["--date", "2024-01-02"],
    ))
    .expect_code(0);
    assert!(env.path("parts/2024-01-02/_SUCCESS").exists());
}

// 15. Type inference limits ---------------------------------------------------------

#[test]
fn a_value_past_type_inference_names_row_and_column_and_says_what_to_do() {
    let env = Env::new();
    let mut text = String::from("id,f0,f1,f2,f3,f4,f5,f6,f7\n");
    for r in 0..13_000 {
        let f3 = if r == 12_000 {
            "1.5".to_string()
        } else {
            (r % 7).to_string()
        };
        text.push_str(&format!("{r},0.1,0.2,0.3,{f3},0.5,0.6,0.7,0.8\n"));
    }
    std::fs::write(env.path("in.csv"), text).unwrap();
    env.run(&score("in.csv", "out.parquet", &[]))
        .expect_code(4)
        .expect_stderr("in.csv, row 12000 (0-based, header excluded), column `f3`")
        .expect_stderr("\"1.5\"")
        .expect_stderr("the first 10000 rows")
        .expect_stderr("--infer-rows 0")
        .expect_stderr("--column-type f3=float64");
    // Under --on-error skip the row is set aside with its kept columns, whatever
    // the batch size and thread count, and every other row is scored.
    for (batch, threads) in [("8192", "2"), ("1000", "1"), ("7", "2")] {
        env.run(&score(
            "in.csv",
            "skip.parquet",
            &[
                "--on-error",
                "skip",
                "--keep",
                "id",
                "--batch-size",
                batch,
                "--threads",
                threads,
                "--overwrite",
                "--summary-json",
                "skip.json",
            ],
        ))
        .expect_code(0);
        let out = read_parquet(&env.path("skip.parquet"));
        assert_eq!(out.num_rows(), 12_999);
        assert!(!ids(&out).contains(&12_000));
        let errors = read_parquet(&env.path("skip.errors.parquet"));
        assert_eq!(ids(&errors), [12_000]);
        let col = |name: &str| {
            errors
                .column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(0)
                .to_string()
        };
        assert_eq!(col("_column"), "f3");
        assert!(
            col("_reason").contains("\"1.5\" is not a Int64"),
            "{}",
            col("_reason")
        );
        assert_eq!(read_json(&env.path("skip.json"))["rows_rejected"], 1);
    }
    for extra in [
        &["--infer-rows", "0"][..],
        &["--column-type", "f3=float64"][..],
    ] {
        env.run(&score("in.csv", "out.parquet", extra))
            .expect_code(0);
        assert_eq!(rows_in(&env.path("out.parquet")), 13_000);
        std::fs::remove_file(env.path("out.parquet")).unwrap();
    }
}

// 16. The manifest's options as the user wrote them ---------------------------------

#[test]
fn resume_refused_for_other_options_names_them_as_flags() {
    let env = Env::new();
    directory_run(&env, &[]).expect_code(0);
    let path = env.path("scores/_manifest.json");
    let mut m = read_json(&path);
    m["complete"] = false.into();
    m["parts"][1]["done"] = false.into();
    std::fs::write(&path, m.to_string()).unwrap();
    std::fs::remove_file(env.path("scores/_SUCCESS")).unwrap();
    let mut args = score(
        "TD/data/numeric_parts",
        "scores/",
        &[
            "--keep",
            "id,segment",
            "--rows-per-file",
            "100000",
            "--resume",
        ],
    );
    let run = env.run(&args);
    run.expect_code(3)
        .expect_stderr("it was written with --keep id, this run has --keep id,segment");
    assert!(!run.stderr().contains("MappingRequest") && !run.stderr().contains("Some("));
    args[11] = "id";
    args[13] = "500";
    env.run(&args)
        .expect_code(3)
        .expect_stderr("--rows-per-file 100000, this run has --rows-per-file 500");
}

// 17. Messages that name what they are about ------------------------------------

#[test]
fn a_parquet_file_without_row_groups_is_named() {
    let env = Env::new();
    let schema = read_parquet(&testdata().join("data/numeric.parquet")).schema();
    let file = std::fs::File::create(env.path("empty.parquet")).unwrap();
    parquet::arrow::ArrowWriter::try_new(file, schema, None)
        .unwrap()
        .close()
        .unwrap();
    env.run(&score("empty.parquet", "out.parquet", &[]))
        .expect_code(3)
        .expect_stderr("the input (empty.parquet) has no rows");
}

#[test]
fn negative_numbers_for_numeric_flags_name_the_flag() {
    let env = Env::new();
    for (flag, value) in [
        ("--batch-size", "-1"),
        ("--threads", "-1"),
        ("--price-per-hour", "-1"),
        ("--rows-per-file", "-5"),
    ] {
        env.run(&score(
            "TD/data/numeric.parquet",
            "out.parquet",
            &[flag, value],
        ))
        .expect_code(2)
        .expect_stderr(flag);
    }
    env.run(&score(
        "TD/data/numeric.parquet",
        "out.parquet",
        &["--on-error", "skip", "--max-errors", "-1"],
    ))
    .expect_code(2)
    .expect_stderr("--max-errors");
}

// 18. Duplicate column names ------------------------------------------------------------

#[test]
fn a_duplicate_column_the_run_uses_is_refused_by_name() {
    let env = Env::new();
    let mut text = String::from("id,f0,f1,f2,f3,f4,f5,f6,f7,f3\n");
    for r in 0..20 {
        text.push_str(&format!("{r},1,2,3,4,5,6,7,8,9\n"));
    }
    std::fs::write(env.path("dup.csv"), &text).unwrap();
    env.run(&score("dup.csv", "out.parquet", &[]))
        .expect_code(3)
        .expect_stderr("column `f3` appears 2 times");
    // A duplicate the run does not use is fine.
    let text = text
        .replacen("f7,f3", "f7,note", 1)
        .replacen("id,", "note,", 1);
    std::fs::write(env.path("unused.csv"), &text).unwrap();
    env.run(&score("unused.csv", "ok.parquet", &[]))
        .expect_code(0);
    // In a Parquet schema too.
    let base = read_parquet(&testdata().join("data/numeric.parquet"));
    let mut fields: Vec<Field> = base
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("id", DataType::Int64, true));
    let mut columns = base.columns().to_vec();
    columns.push(Arc::new(Int64Array::from_iter_values(0..1500)));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    write_parquet(&env.path("dup.parquet"), [batch], None);
    env.run(&score("dup.parquet", "out.parquet", &["--keep", "id"]))
        .expect_code(3)
        .expect_stderr("column `id` appears 2 times");
}

// 20. Tab-separated files -------------------------------------------------------------

#[test]
fn tsv_files_are_read_with_tabs() {
    let env = Env::new();
    let text = std::fs::read_to_string(testdata().join("data/numeric.csv"))
        .unwrap()
        .replace(',', "\t");
    std::fs::write(env.path("in.tsv"), text).unwrap();
    env.run(&score("in.tsv", "out.parquet", &["--keep", "id"]))
        .expect_code(0);
    assert_eq!(rows_in(&env.path("out.parquet")), 1500);
}

#[test]
fn peak_memory_in_the_summary_is_the_runs_own_not_its_parents() {
    // Linux keeps ru_maxrss across exec: a run started by a large process (an
    // Airflow worker) reported the parent's peak. This test process grows by
    // 512 MiB first; the run's peak must not include it.
    let ballast: Vec<u8> = vec![1; 512 << 20];
    let env = Env::new();
    env.run(&score(
        "TD/data/numeric.parquet",
        "out.parquet",
        &["--summary-json", "s.json"],
    ))
    .expect_code(0);
    let peak = read_json(&env.path("s.json"))["peak_rss_mib"]
        .as_f64()
        .unwrap();
    assert!(peak > 1.0 && peak < 400.0, "peak {peak} MiB");
    assert_eq!(
        ballast
            .iter()
            .step_by(4096)
            .map(|&b| b as usize)
            .sum::<usize>(),
        128 << 10
    );
}
