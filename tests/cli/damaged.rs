//! Damaged and unusual inputs: a clear error naming the file, a non-zero exit,
//! never a panic, and nothing at the output path.

use super::harness::{read_parquet, testdata, write_parquet, Env};

const MODEL: &str = "TD/models/logreg_multiclass.onnx";
const FEATURES: &str = "f0,f1,f2,f3,f4,f5,f6,f7";

/// Runs the model on `input` (in the test directory) and checks code and message.
/// Runs on one thread and on two: both fail alike.
fn expect(env: &Env, input: &str, code: i32, needles: &[&str]) {
    for threads in ["1", "2"] {
        let run = env.run(&[
            "score",
            "-m",
            MODEL,
            "-i",
            input,
            "-o",
            "out.parquet",
            "--features",
            FEATURES,
            "--threads",
            threads,
            "-q",
        ]);
        run.expect_code(code);
        for n in needles {
            run.expect_stderr(n);
        }
        assert!(!run.stderr().contains("panicked"), "{}", run.context());
        assert!(
            !env.path("out.parquet").exists(),
            "nothing at the output path\n{}",
            run.context()
        );
    }
}

fn numeric_bytes() -> Vec<u8> {
    std::fs::read(testdata().join("data/numeric.parquet")).unwrap()
}

#[test]
fn truncated_parquet() {
    let env = Env::new();
    std::fs::write(env.path("in.parquet"), &numeric_bytes()[..20_000]).unwrap();
    expect(
        &env,
        "in.parquet",
        3,
        &[
            "in.parquet is not a readable Parquet file",
            "Corrupt footer",
        ],
    );
}

#[test]
fn corrupt_parquet_pages() {
    let env = Env::new();
    let mut bytes = numeric_bytes();
    for i in (5_000..30_000).step_by(7) {
        bytes[i] ^= 0xFF;
    }
    std::fs::write(env.path("in.parquet"), bytes).unwrap();
    expect(
        &env,
        "in.parquet",
        1,
        &["cannot read in.parquet at row 0", "truncated, corrupt"],
    );
}

#[test]
fn empty_files_and_header_only_csv() {
    let env = Env::new();
    std::fs::write(env.path("in.csv"), b"").unwrap();
    expect(
        &env,
        "in.csv",
        3,
        &["CSV file in.csv is empty: it has no header"],
    );
    std::fs::write(env.path("in.parquet"), b"").unwrap();
    expect(
        &env,
        "in.parquet",
        3,
        &["in.parquet is not a readable Parquet file"],
    );
    std::fs::write(env.path("head.csv"), format!("{}\n", FEATURES)).unwrap();
    expect(&env, "head.csv", 3, &["head.csv has a header but no rows"]);
}

#[test]
fn parquet_with_no_rows_writes_nothing() {
    let env = Env::new();
    let input = read_parquet(&testdata().join("data/numeric.parquet"));
    write_parquet(&env.path("in.parquet"), [input.slice(0, 0)], None);
    expect(
        &env,
        "in.parquet",
        3,
        &["the input (in.parquet) has no rows"],
    );
}

#[test]
fn ragged_rows_bad_quoting_and_invalid_utf8_in_csv() {
    let env = Env::new();
    let header = format!("{FEATURES}\n");
    std::fs::write(
        env.path("ragged.csv"),
        format!("{header}1,2,3,4,5,6,7,8\n1,2,3\n"),
    )
    .unwrap();
    expect(
        &env,
        "ragged.csv",
        3,
        &[
            "ragged.csv",
            "Expected 8 records, found 3 records at line 3",
        ],
    );
    std::fs::write(
        env.path("quote.csv"),
        format!("{header}1,2,3,4,5,6,7,8\n\"1,2,3,4,5,6,7,8\n"),
    )
    .unwrap();
    expect(
        &env,
        "quote.csv",
        4,
        &["bad quoting in quote.csv at line 3"],
    );
    let mut bytes = format!("{header}1,2,3,4,5,6,7,8\n1,2,3,4,5,6,7,").into_bytes();
    bytes.extend([0xFF, 0xFE, b'\n']);
    std::fs::write(env.path("utf8.csv"), bytes).unwrap();
    expect(
        &env,
        "utf8.csv",
        3,
        &["utf8.csv", "invalid utf-8", "line 3"],
    );
}

#[test]
fn a_ragged_row_past_type_inference_names_file_and_row() {
    // 12,000 good rows, then a short one: past the 10,000 rows read to infer types.
    let env = Env::new();
    let mut text = format!("{FEATURES}\n");
    for i in 0..12_000 {
        text.push_str(&format!("{i},1,2,3,4,5,6,7\n"));
    }
    text.push_str("1,2,3\n");
    std::fs::write(env.path("in.csv"), text).unwrap();
    expect(
        &env,
        "in.csv",
        1,
        &[
            "cannot read in.csv at row",
            "incorrect number of fields for line 12002",
        ],
    );
}

#[test]
fn text_in_a_numeric_csv_column_is_a_bad_row() {
    let env = Env::new();
    std::fs::write(
        env.path("in.csv"),
        format!("{FEATURES}\n1,2,3,4,5,6,7,8\n1,2,x,4,5,6,7,8\n"),
    )
    .unwrap();
    expect(
        &env,
        "in.csv",
        4,
        &[
            "bad row in in.csv, row 1",
            "column `f2`",
            "value \"x\" is not a number",
        ],
    );
}

#[test]
fn a_missing_input_or_model_is_named() {
    let env = Env::new();
    env.run(&[
        "score",
        "-m",
        MODEL,
        "-i",
        "nope.parquet",
        "-o",
        "out.parquet",
        "-q",
    ])
    .expect_code(2)
    .expect_stderr("cannot open input nope.parquet");
    env.run(&[
        "score",
        "-m",
        "nope.onnx",
        "-i",
        "TD/data/numeric.parquet",
        "-o",
        "out.parquet",
        "-q",
    ])
    .expect_code(3)
    .expect_stderr("cannot read model nope.onnx");
    assert!(env.files().is_empty());
}

#[test]
fn an_unwritable_output_directory_is_named_before_scoring() {
    // Tests run as root, for whom permission bits do not apply: /proc takes no new files.
    let env = Env::new();
    env.run(&[
        "score",
        "-m",
        MODEL,
        "-i",
        "TD/data/numeric.parquet",
        "-o",
        "/proc/scores.parquet",
        "--features",
        FEATURES,
        "-q",
    ])
    .expect_code(2)
    .expect_stderr("/proc/.scores.parquet.batchinfer-lock")
    .expect_stderr("check that the output directory exists and is writable");
}

#[test]
fn a_full_disk_is_named_and_leaves_nothing() {
    let env = Env::new();
    // About 8 MB of predictions for a 256 KiB file system.
    let input = read_parquet(&testdata().join("data/numeric.parquet"));
    write_parquet(
        &env.path("in.parquet"),
        std::iter::repeat_n(input, 200),
        None,
    );
    let disk = env.path("small");
    std::fs::create_dir(&disk).unwrap();
    let out = disk.join("scores.parquet");
    // A private mount namespace (`unshare`, no root needed): a 256 KiB tmpfs that
    // only this run sees; what is left on it is listed before the namespace ends.
    let script = r#"mount -t tmpfs -o size=256k tmpfs "$DISK" || exit 99
"$@"; code=$?
ls -A "$DISK" > "$LEFT"
exit $code"#;
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "--map-root-user", "sh", "-c", script, "sh"])
        .arg(env!("CARGO_BIN_EXE_batchinfer"))
        .args(["score", "-m"])
        .arg(testdata().join("models/rf_binary.onnx"))
        .args(["-i", "in.parquet", "-o"])
        .arg(&out)
        .args(["--keep-all", "--features", FEATURES, "-q"])
        .env("DISK", &disk)
        .env("LEFT", env.path("left.txt"))
        .current_dir(env.dir.path())
        .stdin(std::process::Stdio::null());
    let run = super::harness::Run {
        cmd: format!("{cmd:?}"),
        output: cmd.output().expect("run unshare (util-linux)"),
    };
    assert_ne!(
        run.code(),
        99,
        "could not mount a tmpfs in a user namespace\n{}",
        run.context()
    );
    run.expect_code(1)
        .expect_stderr("is full; free space there or write the output elsewhere");
    let left = std::fs::read_to_string(env.path("left.txt")).unwrap();
    assert!(
        left.trim().is_empty(),
        "nothing may remain on the full disk: {left:?}"
    );
}

#[test]
fn a_reader_panic_on_a_damaged_parquet_file_is_an_error_not_a_crash() {
    // Found by the parquet_input fuzz target: arrow-buffer 60.1 panics ("offset + len
    // out of bounds") decoding this file's int64 column in batches of 64.
    for threads in ["1", "2"] {
        let env = Env::new();
        let run = env.run(&[
            "score",
            "-m",
            "TD/models/rf_binary.onnx",
            "-i",
            "TD/damaged/reader-panic.parquet",
            "-o",
            "out.parquet",
            "--keep-all",
            "--features",
            FEATURES,
            "--batch-size",
            "64",
            "--threads",
            threads,
            "-q",
        ]);
        run.expect_code(1)
            .expect_stderr("cannot read")
            .expect_stderr("reader-panic.parquet at row 0")
            .expect_stderr("the reader crashed on damaged data");
        assert!(
            !run.stderr().contains("panicked") && !run.stderr().contains("internal error"),
            "{}",
            run.context()
        );
        assert!(env.files().is_empty());
    }
}

#[test]
fn a_damaged_page_header_fails_at_once_instead_of_spinning() {
    // Found by the parquet_input fuzz target: parquet 60.1's thrift decoder skips a
    // huge declared list at end of file one read at a time (59 s and over 170 s for
    // these files). batchinfer's reader stops after a few reads past the end.
    let runs = ["spin-page-header-1.parquet", "spin-page-header-2.parquet"]
        .into_iter()
        .flat_map(|name| ["1", "2"].map(|threads| (name, threads)));
    for (name, threads) in runs {
        let env = Env::new();
        let input = format!("TD/damaged/{name}");
        env.run(&[
            "score",
            "-m",
            "TD/models/pipeline_mixed.onnx",
            "-i",
            &input,
            "-o",
            "out.parquet",
            "--keep-all",
            "--batch-size",
            "64",
            "--threads",
            threads,
            "-q",
        ])
        .expect_code(1)
        .expect_stderr(name)
        .expect_stderr("read past its end: its metadata is damaged");
        assert!(env.files().is_empty());
    }
}
