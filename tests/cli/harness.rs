//! Runs the real binary in a temporary directory and reads its Parquet output back.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// One invocation's result, printed in full when an assertion fails.
pub struct Run {
    pub cmd: String,
    pub output: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn context(&self) -> String {
        format!(
            "command: {}\nexit: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.cmd,
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }

    /// Asserts the exit code and returns self.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit code\n{}",
            self.context()
        );
        self
    }

    #[track_caller]
    pub fn expect_stdout(&self, needle: &str) -> &Run {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.context()
        );
        self
    }

    pub fn expect_stderr(&self, needle: &str) -> &Run {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.context()
        );
        self
    }
}

/// A temporary working directory for one test.
/// An argument with `TD/` at its start or after `=` (`--model NAME=TD/…`) pointing
/// into testdata. Only there: a temp dir's random name may hold "TD/" too.
fn with_testdata(arg: &str, td: &Path) -> String {
    let td = format!("{}/", td.display());
    match arg.strip_prefix("TD/") {
        Some(rest) => format!("{td}{rest}"),
        None => arg.replace("=TD/", &format!("={td}")),
    }
}

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `batchinfer ARGS` with the test directory as working directory and
    /// testdata reachable as `TD` in arguments.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        self.run_with(args, stdin, &[])
    }

    /// Runs with extra environment variables (all other BATCHINFER_* are removed).
    pub fn run_with(&self, args: &[&str], stdin: Option<&[u8]>, vars: &[(&str, &str)]) -> Run {
        let td = testdata();
        let args: Vec<String> = args.iter().map(|a| with_testdata(a, &td)).collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_batchinfer"));
        cmd.args(&args).current_dir(self.dir.path());
        for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("BATCHINFER_")) {
            cmd.env_remove(name);
        }
        cmd.envs(vars.iter().copied());
        let output = match stdin {
            None => cmd
                .stdin(std::process::Stdio::null())
                .output()
                .expect("run batchinfer"),
            Some(bytes) => {
                use std::io::Write;
                let mut child = cmd
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn batchinfer");
                // A run may stop before reading all of its input (a refusal).
                match child.stdin.take().expect("stdin").write_all(bytes) {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                    other => other.expect("write stdin"),
                }
                child.wait_with_output().expect("wait batchinfer")
            }
        };
        Run {
            cmd: format!("batchinfer {}", args.join(" ")),
            output,
        }
    }

    /// Files in the test directory (to check that nothing partial is left).
    pub fn files(&self) -> Vec<String> {
        self.files_in(".")
    }

    /// Files in a directory under the test directory, sorted.
    pub fn files_in(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path().join(sub))
            .expect("list temp dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// Writes batches (all of one schema) as a Parquet file, with at most
/// `rows_per_group` rows per row group when given.
pub fn write_parquet(
    path: &Path,
    batches: impl IntoIterator<Item = RecordBatch>,
    rows_per_group: Option<usize>,
) {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(rows_per_group)
        .build();
    let mut batches = batches.into_iter().peekable();
    let schema = batches.peek().expect("at least one batch").schema();
    let file = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut w =
        parquet::arrow::ArrowWriter::try_new(file, schema, Some(props)).expect("parquet writer");
    for b in batches {
        w.write(&b).expect("write batch");
    }
    w.close().expect("close parquet");
}

/// Reads a JSON file (a summary) written by a run.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Reads a whole Parquet file as one batch.
pub fn read_parquet(path: &Path) -> RecordBatch {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    let schema = batches
        .first()
        .map(|b| b.schema())
        .expect("at least one batch");
    concat_batches(&schema, &batches).expect("concat")
}

pub fn parquet_metadata(path: &Path) -> Vec<(String, String)> {
    let file = File::open(path).expect("open");
    let b = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet");
    b.metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

/// The `id` column (int64) of a batch.
pub fn ids(batch: &RecordBatch) -> Vec<i64> {
    use arrow::array::AsArray;
    batch
        .column_by_name("id")
        .expect("an id column")
        .as_primitive::<arrow::datatypes::Int64Type>()
        .values()
        .to_vec()
}

#[test]
fn testdata_is_substituted_at_the_start_or_after_equals_only() {
    let td = Path::new("/td");
    assert_eq!(with_testdata("TD/m.onnx", td), "/td/m.onnx");
    assert_eq!(with_testdata("a=TD/m.onnx", td), "a=/td/m.onnx");
    // A temp dir whose random name ends in TD stays as it is.
    assert_eq!(
        with_testdata("/tmp/.tmpQhwTD/out", td),
        "/tmp/.tmpQhwTD/out"
    );
}
