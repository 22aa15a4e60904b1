//! s3:// inputs and outputs against a real S3-compatible server: moto's server
//! on 127.0.0.1, started once for this test binary by `tests/servers/s3.py`
//! (which also puts a fault-injecting proxy in front of it). Every run's output is
//! compared with the same run on local files, which the golden tests check
//! against onnxruntime. Needs `pip install "moto[server]"` (.ci/run installs it);
//! without it these tests fail, saying so.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Float32Array, Int64Array};
use arrow::record_batch::RecordBatch;

use super::harness::{read_json, read_parquet, testdata, write_parquet, Env, Run};

const LOGREG: &str = "TD/models/logreg_multiclass.onnx";

struct Server {
    moto: u16,
    proxy: u16,
    faults: tempfile::NamedTempFile,
    _child: Child,
}

/// The server of this test binary (started on first use; it exits when this
/// process does, as its standard input then closes).
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/s3.py");
        let faults = tempfile::NamedTempFile::new().expect("faults file");
        // Its stderr goes to a file: a pipe nobody reads would fill and stop it.
        let log = tempfile::NamedTempFile::new().expect("log file");
        let mut child = Command::new("python3")
            .arg(&script)
            .env("S3_FAULTS", faults.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("log file"))
            .spawn()
            .expect("python3 runs tests/servers/s3.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server prints its ports");
        let ports: Vec<u16> = line.split_whitespace().filter_map(|p| p.parse().ok()).collect();
        if ports.len() != 2 {
            let err = std::fs::read_to_string(log.path()).unwrap_or_default();
            panic!(
                "the S3 test server did not start (install it with: pip install \"moto[server]\"): {err}"
            );
        }
        // Its stdin stays open (held by the Child) until this process ends.
        Server {
            moto: ports[0],
            proxy: ports[1],
            faults,
            _child: child,
        }
    })
}

/// A raw request to moto (bucket creation, which object_store does not do).
fn moto_request(method: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server().moto)).expect("connect moto");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        server().moto
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// A new bucket of its own for one test.
fn bucket(name: &str) -> String {
    let answer = moto_request("PUT", &format!("/{name}"));
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "creating bucket {name}: {answer}"
    );
    name.to_string()
}

fn vars(port: u16) -> Vec<(String, String)> {
    vec![
        (
            "AWS_ENDPOINT_URL".into(),
            format!("http://127.0.0.1:{port}"),
        ),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing-secret".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
    ]
}

/// Runs batchinfer with the server's endpoint and credentials (through the proxy).
fn run_s3(env: &Env, args: &[&str]) -> Run {
    let v = vars(server().proxy);
    let v: Vec<(&str, &str)> = v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    env.run_with(args, None, &v)
}

/// A client of the test's own, straight to moto.
fn store(bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{}", server().moto))
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_access_key_id("testing")
        .with_secret_access_key("testing-secret")
        .with_region("us-east-1")
        .build()
        .expect("client")
}

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn put(bucket: &str, key: &str, bytes: Vec<u8>) {
    use object_store::ObjectStoreExt;
    let s = store(bucket);
    rt().block_on(s.put(&key.into(), bytes.into()))
        .expect("put");
}

/// Uploads a file of testdata/.
fn put_testdata(bucket: &str, key: &str, file: &str) {
    put(bucket, key, std::fs::read(testdata().join(file)).unwrap());
}

fn get(bucket: &str, key: &str) -> Option<Vec<u8>> {
    use object_store::ObjectStoreExt;
    let s = store(bucket);
    match rt().block_on(async { s.get(&key.into()).await?.bytes().await }) {
        Ok(b) => Some(b.to_vec()),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => panic!("get {key}: {e}"),
    }
}

fn keys(bucket: &str) -> Vec<String> {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    let s = store(bucket);
    let listed: Vec<object_store::ObjectMeta> =
        rt().block_on(s.list(None).try_collect()).expect("list");
    let mut k: Vec<String> = listed.into_iter().map(|m| m.location.to_string()).collect();
    k.sort();
    k
}

/// Uploads a local directory tree under `prefix`.
fn upload_dir(bucket: &str, dir: &Path, prefix: &str) {
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.expect("walk");
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(dir).expect("under dir");
            let key = format!("{prefix}{}", rel.display());
            put(bucket, &key, std::fs::read(entry.path()).expect("read"));
        }
    }
}

/// An object read back as one batch.
fn read_object(env: &Env, bucket: &str, key: &str) -> RecordBatch {
    let bytes = get(bucket, key).unwrap_or_else(|| panic!("no object at {key}"));
    let local = env.path("downloaded.parquet");
    std::fs::write(&local, bytes).expect("write");
    read_parquet(&local)
}

/// The multipart uploads moto holds for a bucket (none once every upload was
/// completed or aborted), asked through boto3 (moto's own dependency).
fn pending_uploads(bucket: &str) -> usize {
    let code = format!(
        "import boto3; c = boto3.client('s3', endpoint_url='http://127.0.0.1:{}', aws_access_key_id='testing', aws_secret_access_key='x', region_name='us-east-1'); print(len(c.list_multipart_uploads(Bucket='{bucket}').get('Uploads', [])))",
        server().moto
    );
    let out = Command::new("python3")
        .args(["-c", &code])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count")
}

/// Scores `input` (local) with `extra` as a run on local files, and checks that
/// object `key` holds the same table.
fn assert_like_local(env: &Env, bucket: &str, key: &str, input: &str, extra: &[&str]) {
    let local = format!("local-{}.parquet", key.replace('/', "-"));
    env.run(&score_args(input, &local, extra)).expect_code(0);
    assert_eq!(
        read_object(env, bucket, key),
        read_parquet(&env.path(&local)),
        "{key}"
    );
}

fn score_args<'a>(input: &'a str, output: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "score",
        "--model",
        LOGREG,
        "--input",
        input,
        "-o",
        output,
        "--keep",
        "id",
        "--quiet",
        "--features",
        "f0,f1,f2,f3,f4,f5,f6,f7",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn a_prefix_a_glob_and_one_object_are_read_as_the_same_local_files_are() {
    let b = bucket("inputs");
    let env = Env::new();
    upload_dir(&b, &testdata().join("data/events"), "events/");
    // Bookkeeping objects a directory listing skips.
    put(&b, "events/_SUCCESS", vec![]);
    put(
        &b,
        "events/year=2024/.part-9.parquet.tmp",
        b"not parquet".to_vec(),
    );
    let cases = [
        (
            "s3://inputs/events/",
            "TD/data/events",
            &["--filter", "month = 1 OR year = 2023"][..],
        ),
        ("s3://inputs/events", "TD/data/events", &[][..]),
        (
            "s3://inputs/events/year=2024/*/part-*.parquet",
            "TD/data/events/year=2024/*/part-*.parquet",
            &[][..],
        ),
        (
            "s3://inputs/events/year=2024/month=01/part-0.parquet",
            "TD/data/events/year=2024/month=01/part-0.parquet",
            &[][..],
        ),
    ];
    for (i, (remote, local, extra)) in cases.into_iter().enumerate() {
        let out_key = format!("out/{i}.parquet");
        let out_url = format!("s3://inputs/{out_key}");
        let mut args = score_args(remote, &out_url, extra);
        args.extend([
            "--summary-json",
            "s3://inputs/summaries/s.json",
            "--overwrite",
        ]);
        run_s3(&env, &args).expect_code(0);
        let local_out = format!("local{i}.parquet");
        run_s3(&env, &score_args(local, &local_out, extra)).expect_code(0);
        let expected = read_parquet(&env.path(&local_out));
        let got = read_object(&env, &b, &out_key);
        assert_eq!(got, expected, "{remote}");
        let summary: serde_json::Value =
            serde_json::from_slice(&get(&b, "summaries/s.json").expect("summary object")).unwrap();
        assert_eq!(
            summary["rows_scored"],
            expected.num_rows() as u64,
            "{remote}"
        );
        assert!(summary["fetched_bytes"].as_u64().unwrap() > 0, "{remote}");
    }
    // No bookkeeping object is left once the runs ended.
    assert!(
        keys(&b).iter().all(|k| !k.contains("_batchinfer")),
        "{:?}",
        keys(&b)
    );
}

/// 200,000 rows sorted by id in 20 row groups of 10,000.
fn sorted_rows(path: &Path) {
    sorted_rows_in(path, 10_000);
}

/// 200,000 rows sorted by id in row groups of `group` rows.
fn sorted_rows_in(path: &Path, group: usize) {
    let n = 200_000i64;
    let mut columns: Vec<(&str, ArrayRef)> = vec![(
        "id",
        std::sync::Arc::new(Int64Array::from_iter_values(0..n)),
    )];
    let names = ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"];
    for (k, name) in names.iter().enumerate() {
        let values = (0..n).map(|i| ((i * (k as i64 + 7)) % 1000) as f32 / 100.0 - 5.0);
        columns.push((
            name,
            std::sync::Arc::new(Float32Array::from_iter_values(values)),
        ));
    }
    let batch = RecordBatch::try_from_iter(columns).expect("batch");
    write_parquet(path, [batch], Some(group));
}

#[test]
fn a_one_percent_filter_on_sorted_data_fetches_a_small_fraction_of_the_object() {
    let b = bucket("pushdown");
    let env = Env::new();
    sorted_rows(&env.path("sorted.parquet"));
    let size = std::fs::metadata(env.path("sorted.parquet")).unwrap().len();
    put(
        &b,
        "sorted.parquet",
        std::fs::read(env.path("sorted.parquet")).unwrap(),
    );
    let filter = ["--filter", "id < 2000", "--summary-json", "s.json"];
    run_s3(
        &env,
        &score_args(
            "s3://pushdown/sorted.parquet",
            "s3://pushdown/out.parquet",
            &filter,
        ),
    )
    .expect_code(0);
    let summary = read_json(&env.path("s.json"));
    assert_eq!(summary["rows_scored"], 2000);
    let fetched = summary["fetched_bytes"].as_u64().unwrap();
    // One row group of twenty, and the footer.
    assert!(fetched * 10 < size, "fetched {fetched} of {size} bytes");
    assert_like_local(&env, &b, "out.parquet", "sorted.parquet", &filter[..2]);
    // Without the filter every row group is fetched, several at a time.
    run_s3(
        &env,
        &score_args(
            "s3://pushdown/sorted.parquet",
            "s3://pushdown/all.parquet",
            &["--summary-json", "all.json", "--read-ahead", "1"],
        ),
    )
    .expect_code(0);
    let all = read_json(&env.path("all.json"));
    assert_eq!(all["rows_scored"], 200_000);
    assert!(all["fetched_bytes"].as_u64().unwrap() > size / 2);
    assert_like_local(&env, &b, "all.parquet", "sorted.parquet", &[]);
}

#[test]
fn csv_objects_are_streamed_and_an_existing_output_needs_overwrite() {
    let b = bucket("csvs");
    let env = Env::new();
    put_testdata(&b, "in/numeric.csv", "data/numeric.csv");
    let args = score_args(
        "s3://csvs/in/numeric.csv",
        "s3://csvs/out/scores.parquet",
        &[],
    );
    run_s3(&env, &args).expect_code(0);
    run_s3(
        &env,
        &score_args("TD/data/numeric.csv", "local.parquet", &[]),
    )
    .expect_code(0);
    let expected = read_parquet(&env.path("local.parquet"));
    assert_eq!(read_object(&env, &b, "out/scores.parquet"), expected);
    // A second run is refused before scoring, and leaves the object as it was.
    let before = get(&b, "out/scores.parquet");
    run_s3(&env, &args)
        .expect_code(2)
        .expect_stderr("s3://csvs/out/scores.parquet already exists; pass --overwrite");
    assert_eq!(get(&b, "out/scores.parquet"), before);
    let mut again = args.clone();
    again.push("--overwrite");
    run_s3(&env, &again).expect_code(0);
    assert_eq!(read_object(&env, &b, "out/scores.parquet"), expected);
    // A CSV output object too.
    run_s3(
        &env,
        &score_args("s3://csvs/in/numeric.csv", "s3://csvs/out/scores.csv", &[]),
    )
    .expect_code(0);
    let text = String::from_utf8(get(&b, "out/scores.csv").unwrap()).unwrap();
    assert_eq!(text.lines().count(), 1 + expected.num_rows());
}

#[test]
fn missing_keys_missing_buckets_and_forbidden_buckets_are_refused_before_scoring() {
    let b = bucket("errors");
    let env = Env::new();
    put_testdata(&b, "in/numeric.parquet", "data/numeric.parquet");
    run_s3(
        &env,
        &score_args("s3://errors/in/nothing.parquet", "out.parquet", &[]),
    )
    .expect_code(2)
    .expect_stderr("s3://errors/in/nothing.parquet: no object has this key")
    .expect_stderr("check the bucket errors and the key \"in/nothing.parquet\"");
    run_s3(
        &env,
        &score_args("s3://no-such-bucket/in/x.parquet", "out.parquet", &[]),
    )
    .expect_code(2)
    .expect_stderr("s3://no-such-bucket/in/x.parquet");
    let denied = run_s3(
        &env,
        &score_args("s3://forbidden/in/x.parquet", "out.parquet", &[]),
    );
    denied
        .expect_code(2)
        .expect_stderr("s3://forbidden/in/x.parquet: access denied")
        .expect_stderr("AWS_ACCESS_KEY_ID");
    assert!(
        !denied.stderr().contains("testing-secret"),
        "{}",
        denied.stderr()
    );
    run_s3(
        &env,
        &score_args(
            "s3://errors/in/numeric.parquet",
            "s3://forbidden/out.parquet",
            &[],
        ),
    )
    .expect_code(2)
    .expect_stderr("s3://forbidden/out.parquet: access denied");
    assert!(!env.path("out.parquet").exists());
}

#[test]
fn throttled_and_failed_requests_are_retried_and_the_output_is_exact() {
    let b = bucket("flaky");
    let env = Env::new();
    sorted_rows(&env.path("sorted.parquet"));
    put(
        &b,
        "sorted.parquet",
        std::fs::read(env.path("sorted.parquet")).unwrap(),
    );
    run_s3(&env, &score_args("sorted.parquet", "local.parquet", &[])).expect_code(0);
    // Every third request through the proxy is answered 503 SlowDown.
    std::fs::write(server().faults.path(), "3").unwrap();
    let run = run_s3(
        &env,
        &score_args("s3://flaky/sorted.parquet", "s3://flaky/out.parquet", &[]),
    );
    std::fs::write(server().faults.path(), "").unwrap();
    run.expect_code(0);
    assert_eq!(
        read_object(&env, &b, "out.parquet"),
        read_parquet(&env.path("local.parquet"))
    );
    // With retries off, the first failure fails the run and commits nothing.
    std::fs::write(server().faults.path(), "2").unwrap();
    let run = run_s3(
        &env,
        &score_args(
            "s3://flaky/sorted.parquet",
            "s3://flaky/none.parquet",
            &["--store-retries", "0"],
        ),
    );
    std::fs::write(server().faults.path(), "").unwrap();
    assert!(matches!(run.code(), 1 | 2), "{}", run.context());
    assert!(get(&b, "none.parquet").is_none());
}

/// Starts `batchinfer ARGS` in the background against the server (`TD/…`
/// arguments resolved), its stderr piped.
fn spawn_s3(env: &Env, args: &[&str]) -> Child {
    let td = testdata().display().to_string();
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("TD/", &format!("{td}/")))
        .collect();
    Command::new(env!("CARGO_BIN_EXE_batchinfer"))
        .args(&args)
        .current_dir(env.dir.path())
        .envs(vars(server().proxy))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn batchinfer")
}

/// A run reading CSV from a pipe it is fed slowly, writing to `output`: it holds
/// its lock and has started its upload until its input ends.
fn slow_run(env: &Env, output: &str, extra: &[&str]) -> Child {
    // A multipart upload from the start (test builds only), so there is one to catch.
    slow_run_env(
        env,
        output,
        extra,
        &[("BATCHINFER_TEST_SINGLE_PUT_BYTES", "0")],
    )
}

fn slow_run_env(env: &Env, output: &str, extra: &[&str], more: &[(&str, &str)]) -> Child {
    let mut v = vars(server().proxy);
    v.extend(more.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_batchinfer"));
    cmd.args([
        "score",
        "--model",
        &testdata()
            .join("models/logreg_multiclass.onnx")
            .display()
            .to_string(),
    ])
    .args([
        "--input",
        "-",
        "-o",
        output,
        "--keep",
        "id",
        "--quiet",
        "--infer-rows",
        "100",
    ])
    .args(extra)
    .current_dir(env.dir.path())
    .envs(v)
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let csv = std::fs::read_to_string(testdata().join("data/numeric.csv")).unwrap();
    let head: String = csv.lines().take(200).map(|l| format!("{l}\n")).collect();
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(head.as_bytes())
        .unwrap();
    child
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_upload_leaves_no_object_and_the_next_run_aborts_it() {
    let b = bucket("killed");
    let env = Env::new();
    let mut first = slow_run(&env, "s3://killed/day/scores.parquet", &[]);
    wait_for("the upload marker", || {
        keys(&b)
            .iter()
            .any(|k| k.starts_with("day/_batchinfer/scores.parquet.upload-"))
    });
    assert_eq!(pending_uploads(&b), 1);
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert!(
        get(&b, "day/scores.parquet").is_none(),
        "nothing at the key"
    );
    // The lock it held has a lease of 60 s: a rerun now is refused, naming it.
    let args = score_args("TD/data/numeric.csv", "s3://killed/day/scores.parquet", &[]);
    run_s3(&env, &args)
        .expect_code(5)
        .expect_stderr("another batchinfer run is writing s3://killed/day/scores.parquet")
        .expect_stderr("s3://killed/day/_batchinfer/scores.parquet.lock");
    // A lock object whose lease ran out is taken over.
    let lock = get(&b, "day/_batchinfer/scores.parquet.lock").expect("the lock object");
    let mut record: serde_json::Value = serde_json::from_slice(&lock).unwrap();
    record["expires"] = serde_json::json!(1);
    put(
        &b,
        "day/_batchinfer/scores.parquet.lock",
        serde_json::to_vec(&record).unwrap(),
    );
    run_s3(&env, &args).expect_code(0);
    assert_eq!(
        pending_uploads(&b),
        0,
        "the killed run's upload was aborted"
    );
    assert_eq!(keys(&b), vec!["day/scores.parquet".to_string()]);
    assert_like_local(&env, &b, "day/scores.parquet", "TD/data/numeric.csv", &[]);
}

#[test]
fn two_runs_on_one_output_object_the_second_exits_5_and_a_dead_holder_is_taken_over() {
    let b = bucket("locks");
    let env = Env::new();
    let mut first = slow_run(&env, "s3://locks/scores.parquet", &["--lock-lease", "3"]);
    wait_for("the lock object", || {
        keys(&b).iter().any(|k| k.ends_with(".lock"))
    });
    let args = score_args("TD/data/numeric.csv", "s3://locks/scores.parquet", &[]);
    // Longer than the lease: the holder renews it.
    std::thread::sleep(Duration::from_secs(4));
    run_s3(&env, &args)
        .expect_code(5)
        .expect_stderr("another batchinfer run is writing s3://locks/scores.parquet: pid ");
    // The first run finishes normally once its input ends, and releases the lock.
    drop(first.stdin.take());
    let status = first.wait().unwrap();
    assert!(status.success());
    assert!(
        keys(&b).iter().all(|k| !k.contains("_batchinfer")),
        "{:?}",
        keys(&b)
    );
    // A holder killed with SIGKILL: its lease runs out, and the lock is taken over.
    let mut second = slow_run(&env, "s3://locks/other.parquet", &["--lock-lease", "3"]);
    wait_for("the lock object", || {
        keys(&b).iter().any(|k| k.ends_with("other.parquet.lock"))
    });
    second.kill().unwrap();
    second.wait().unwrap();
    let other = score_args("TD/data/numeric.csv", "s3://locks/other.parquet", &[]);
    run_s3(&env, &other).expect_code(5);
    std::thread::sleep(Duration::from_secs(4));
    run_s3(&env, &other).expect_code(0);
    assert!(get(&b, "other.parquet").is_some());
}

#[test]
fn a_model_in_a_bucket_and_a_default_error_file_beside_an_output_object() {
    let b = bucket("models");
    let env = Env::new();
    put_testdata(&b, "m/logreg.onnx", "models/logreg_multiclass.onnx");
    let mut csv = std::fs::read_to_string(testdata().join("data/numeric.csv")).unwrap();
    // A bad value in the third row.
    let mut lines: Vec<String> = csv.lines().map(String::from).collect();
    let mut fields: Vec<String> = lines[3].split(',').map(String::from).collect();
    let last = fields.len() - 1;
    fields[last] = "oops".into();
    lines[3] = fields.join(",");
    csv = lines.join("\n") + "\n";
    put(&b, "in/bad.csv", csv.clone().into_bytes());
    let v = vars(server().proxy);
    let v: Vec<(&str, &str)> = v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    env.run_with(
        &[
            "score",
            "--model",
            "s3://models/m/logreg.onnx",
            "--input",
            "s3://models/in/bad.csv",
            "-o",
            "s3://models/out/scores.parquet",
            "--keep",
            "id",
            "--quiet",
            "--on-error",
            "skip",
            "--column-type",
            "f7=float32",
        ],
        None,
        &v,
    )
    .expect_code(0);
    std::fs::write(env.path("bad.csv"), csv).unwrap();
    env.run(&[
        "score",
        "--model",
        LOGREG,
        "--input",
        "bad.csv",
        "-o",
        "local.parquet",
        "--keep",
        "id",
        "--quiet",
        "--on-error",
        "skip",
        "--column-type",
        "f7=float32",
    ])
    .expect_code(0);
    assert_eq!(
        read_object(&env, &b, "out/scores.parquet"),
        read_parquet(&env.path("local.parquet"))
    );
    // The same rejected rows, each naming the object it came from.
    let errors = read_object(&env, &b, "out/scores.errors.parquet");
    let local = read_parquet(&env.path("local.errors.parquet"));
    assert_eq!(errors.num_rows(), 1);
    let others = [0, 2, 3, 4];
    assert_eq!(
        errors.project(&others).unwrap(),
        local.project(&others).unwrap()
    );
    use arrow::array::AsArray;
    assert_eq!(
        errors.column(1).as_string::<i32>().value(0),
        "s3://models/in/bad.csv"
    );
}

#[test]
fn a_run_never_writes_over_an_object_it_reads() {
    let b = bucket("clash");
    let env = Env::new();
    put_testdata(&b, "x.parquet", "data/numeric.parquet");
    run_s3(
        &env,
        &score_args(
            "s3://clash/x.parquet",
            "s3://clash/x.parquet",
            &["--overwrite"],
        ),
    )
    .expect_code(2)
    .expect_stderr("is the same object as input s3://clash/x.parquet");
    put_testdata(&b, "dir/in.parquet", "data/numeric.parquet");
    run_s3(
        &env,
        &score_args("s3://clash/dir/in.parquet", "s3://clash/dir/", &[]),
    )
    .expect_code(2)
    .expect_stderr(
        "input s3://clash/dir/in.parquet is inside the directory output s3://clash/dir/",
    );
}

#[test]
fn the_nightly_s3_example_runs_end_to_end() {
    let env = Env::new();
    for b in ["example-models", "example-lake", "example-scores"] {
        bucket(b);
    }
    put_testdata(
        "example-models",
        "pipeline_mixed.onnx",
        "models/pipeline_mixed.onnx",
    );
    put_testdata(
        "example-lake",
        "mixed/date=2026-11-30/part-0.parquet",
        "data/mixed.parquet",
    );
    let job = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nightly_s3.toml");
    let job = job.display().to_string();
    run_s3(&env, &["run", &job, "--date", "2026-11-30", "--quiet"]).expect_code(0);
    env.run(&[
        "score",
        "--model",
        "TD/models/pipeline_mixed.onnx",
        "--input",
        "TD/data/mixed.parquet",
        "-o",
        "local.parquet",
        "--keep",
        "id",
        "--quiet",
    ])
    .expect_code(0);
    let got = read_object(&env, "example-scores", "mixed/2026-11-30.parquet");
    let expected = read_parquet(&env.path("local.parquet"));
    assert_eq!(got, expected);
    let summary: serde_json::Value =
        serde_json::from_slice(&get("example-scores", "mixed/2026-11-30.summary.json").unwrap())
            .unwrap();
    assert_eq!(summary["status"], "ok");
    assert_eq!(
        summary["output"],
        "s3://example-scores/mixed/2026-11-30.parquet"
    );
}

#[test]
fn sigint_and_sigterm_abort_the_upload_and_leave_no_object() {
    let b = bucket("signals");
    let env = Env::new();
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let key = format!("out-{sig}.parquet");
        let mut run = slow_run(&env, &format!("s3://signals/{key}"), &[]);
        wait_for("the upload marker", || {
            keys(&b).iter().any(|k| k.contains(".upload-"))
        });
        // SAFETY: kill only sends a signal to the child we spawned.
        assert_eq!(unsafe { libc::kill(run.id() as i32, sig) }, 0);
        let status = run.wait().unwrap();
        assert_eq!(status.code(), Some(code), "signal {sig}");
        assert!(get(&b, &key).is_none());
        assert_eq!(pending_uploads(&b), 0, "the upload was aborted");
        assert!(keys(&b).is_empty(), "{:?}", keys(&b));
    }
}

#[test]
fn objects_feed_a_sharded_local_directory_output_and_resume_knows_them_by_etag() {
    let b = bucket("shards");
    let env = Env::new();
    upload_dir(&b, &testdata().join("data/events"), "events/");
    let whole_args = score_args("TD/data/events", "whole.parquet", &[]);
    env.run(&whole_args).expect_code(0);
    for i in 0..2 {
        let shard = format!("{i}/2");
        run_s3(
            &env,
            &score_args("s3://shards/events/", "dir/", &["--shard", &shard]),
        )
        .expect_code(0);
    }
    assert_eq!(
        super::directory::read_parts(&env.path("dir")),
        read_parquet(&env.path("whole.parquet"))
    );
    let manifest = read_json(&env.path("dir/_manifest-shard-0000-of-0002.json"));
    let first = &manifest["job"]["inputs"][0];
    assert_eq!(
        first["path"],
        "s3://shards/events/year=2023/month=11/part-0.parquet"
    );
    // A rerun of a finished shard is a no-op; after an input object changed,
    // --resume refuses to mix old and new parts.
    run_s3(
        &env,
        &score_args(
            "s3://shards/events/",
            "dir/",
            &["--shard", "0/2", "--resume"],
        ),
    )
    .expect_code(0)
    .expect_stderr("already complete");
    put_testdata(
        &b,
        "events/year=2023/month=11/part-0.parquet",
        "data/events/year=2024/month=01/part-0.parquet",
    );
    let changed = run_s3(
        &env,
        &score_args(
            "s3://shards/events/",
            "dir/",
            &["--shard", "0/2", "--resume"],
        ),
    );
    changed
        .expect_code(2)
        .expect_stderr("input s3://shards/events/year=2023/month=11/part-0.parquet changed");
}

/// Azurite's blob service for this test binary: its port.
fn azurite() -> u16 {
    static AZURITE: OnceLock<(u16, Child)> = OnceLock::new();
    AZURITE
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/azurite.py");
            let mut child = Command::new("python3")
                .arg(&script)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 runs tests/servers/azurite.py");
            let mut line = String::new();
            BufReader::new(child.stdout.take().expect("stdout"))
                .read_line(&mut line)
                .expect("azurite.py prints its port");
            let port = line.trim().parse().unwrap_or_else(|_| {
                panic!("Azurite did not start; install it with tests/servers/install.sh ({line:?})")
            });
            (port, child)
        })
        .0
}

fn azure_blob(verb: &str, container: &str, name: &str, file: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/azurite.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([verb, &azurite().to_string(), container, name])
        .arg(file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{verb} {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn azure_blobs_in_and_out_through_azurite() {
    let env = Env::new();
    for month in ["01", "02", "03"] {
        let name = format!("events/year=2024/month={month}/part-0.parquet");
        azure_blob(
            "put",
            "lake",
            &name,
            &testdata().join(format!("data/{name}")),
        );
    }
    let url = format!("http://127.0.0.1:{}", azurite());
    let vars = [
        ("AZURE_STORAGE_USE_EMULATOR", "true"),
        ("AZURITE_BLOB_STORAGE_URL", url.as_str()),
    ];
    let args = score_args(
        "az://lake/events/",
        "az://lake/scores/out.parquet",
        &["--summary-json", "s.json"],
    );
    env.run_with(&args, None, &vars).expect_code(0);
    // The object exists now: refused without --overwrite.
    env.run_with(&args, None, &vars)
        .expect_code(2)
        .expect_stderr("az://lake/scores/out.parquet already exists");
    env.run(&score_args(
        "TD/data/events/year=2024",
        "local.parquet",
        &[],
    ))
    .expect_code(0);
    azure_blob(
        "get",
        "lake",
        "scores/out.parquet",
        &env.path("got.parquet"),
    );
    assert_eq!(
        read_parquet(&env.path("got.parquet")),
        read_parquet(&env.path("local.parquet"))
    );
    assert!(
        read_json(&env.path("s.json"))["fetched_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    // abfss:// names the same container (the account is the emulator's).
    let abfss = score_args(
        "abfss://lake@devstoreaccount1.dfs.core.windows.net/events/year=2024/month=01/part-0.parquet",
        "az://lake/scores/jan.parquet",
        &[],
    );
    env.run_with(&abfss, None, &vars).expect_code(0);
}

/// Sorted rows in row groups of `group` rows, uploaded as `in/sorted.parquet`;
/// what a local run makes of them.
fn sorted_input(env: &Env, b: &str, group: usize) -> RecordBatch {
    sorted_rows_in(&env.path("sorted.parquet"), group);
    put(
        b,
        "in/sorted.parquet",
        std::fs::read(env.path("sorted.parquet")).unwrap(),
    );
    env.run(&score_args("sorted.parquet", "whole.parquet", &[]))
        .expect_code(0);
    read_parquet(&env.path("whole.parquet"))
}

/// The part objects under `prefix`, in key order, as one table.
fn parts_under(
    env: &Env,
    b: &str,
    prefix: &str,
    schema: &arrow::datatypes::SchemaRef,
) -> RecordBatch {
    let parts: Vec<String> = keys(b)
        .into_iter()
        .filter(|k| k.starts_with(prefix))
        .collect();
    assert!(!parts.is_empty(), "no part under {prefix}");
    let batches: Vec<RecordBatch> = parts.iter().map(|k| read_object(env, b, k)).collect();
    arrow::compute::concat_batches(schema, &batches).unwrap()
}

#[test]
fn a_directory_output_on_a_prefix_from_shards_at_once_equals_the_unsharded_output() {
    let b = bucket("dirs");
    let env = Env::new();
    let whole = sorted_input(&env, &b, 10_000);
    // Three shards as three processes at the same time, into one prefix.
    let children: Vec<Child> = (0..3)
        .map(|i| {
            let shard = format!("{i}/3");
            let args = score_args(
                "s3://dirs/in/sorted.parquet",
                "s3://dirs/out/",
                &["--shard", &shard],
            );
            spawn_s3(&env, &args)
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let all = parts_under(&env, &b, "out/part-", &whole.schema());
    assert_eq!(
        all, whole,
        "every row once, in input order, same predictions"
    );
    for i in 0..3 {
        assert!(get(&b, &format!("out/_SUCCESS-shard-{i:04}-of-0003")).is_some());
    }
    assert!(
        keys(&b).iter().all(|k| !k.contains("_batchinfer")),
        "{:?}",
        keys(&b)
    );
    // status reads the prefix; a rerun is a no-op.
    run_s3(&env, &["status", "s3://dirs/out/"])
        .expect_code(0)
        .expect_stdout("complete");
    run_s3(
        &env,
        &score_args(
            "s3://dirs/in/sorted.parquet",
            "s3://dirs/out/",
            &["--shard", "1/3"],
        ),
    )
    .expect_code(0)
    .expect_stderr("already complete");
}

#[test]
fn a_killed_run_into_a_prefix_finishes_with_resume() {
    let b = bucket("resume");
    let env = Env::new();
    let whole = sorted_input(&env, &b, 10_000);
    // A run that stops after its first parts: its writer fails on purpose.
    let args = score_args(
        "s3://resume/in/sorted.parquet",
        "s3://resume/out/",
        &["--rows-per-file", "10000", "--batch-size", "10000"],
    );
    let v = vars(server().proxy);
    let mut with_fault: Vec<(&str, &str)> =
        v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    with_fault.push(("BATCHINFER_TEST_FAULT", "writer"));
    let failed = env.run_with(&args, None, &with_fault);
    assert_ne!(failed.code(), 0, "{}", failed.context());
    assert!(get(&b, "out/_SUCCESS").is_none());
    run_s3(&env, &["status", "s3://resume/out/"]).expect_code(1);
    run_s3(&env, &args)
        .expect_code(2)
        .expect_stderr("pass --resume");
    let mut resume = args.clone();
    resume.push("--resume");
    run_s3(&env, &resume).expect_code(0);
    assert_eq!(parts_under(&env, &b, "out/part-", &whole.schema()), whole);
    run_s3(&env, &["status", "s3://resume/out/"]).expect_code(0);
}

#[test]
fn the_sharded_s3_example_runs_as_four_kubernetes_pods_would() {
    let env = Env::new();
    for b in ["example-models", "example-lake", "example-scores"] {
        bucket(b);
    }
    put_testdata("example-models", "rf_binary.onnx", "models/rf_binary.onnx");
    put_testdata("example-lake", "numeric/a.parquet", "data/numeric.parquet");
    for entry in std::fs::read_dir(testdata().join("data/numeric_parts")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        put(
            "example-lake",
            &format!("numeric/parts/{name}"),
            std::fs::read(entry.path()).unwrap(),
        );
    }
    let job = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/sharded_s3.toml")
        .display()
        .to_string();
    let v = vars(server().proxy);
    for index in ["0", "1", "2", "3"] {
        let mut with_index: Vec<(&str, &str)> =
            v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        with_index.push(("JOB_COMPLETION_INDEX", index));
        env.run_with(
            &[
                "run",
                &job,
                "--shard",
                "auto/4",
                "--date",
                "2026-01-01",
                "--quiet",
            ],
            None,
            &with_index,
        )
        .expect_code(0);
    }
    run_s3(&env, &["status", "s3://example-scores/sharded/2026-01-01/"]).expect_code(0);
    // The union of the shards is the unsharded run over the same objects, in key order.
    let mut args = vec![
        "score",
        "--model",
        "TD/models/rf_binary.onnx",
        "--input",
        "TD/data/numeric.parquet",
    ];
    let mut parts: Vec<String> = std::fs::read_dir(testdata().join("data/numeric_parts"))
        .unwrap()
        .map(|e| {
            format!(
                "TD/data/numeric_parts/{}",
                e.unwrap().file_name().to_string_lossy()
            )
        })
        .collect();
    parts.sort();
    args.extend(parts.iter().map(String::as_str));
    args.extend([
        "-o",
        "whole.parquet",
        "--keep",
        "id",
        "--features",
        "f0,f1,f2,f3,f4,f5,f6,f7",
        "--quiet",
    ]);
    env.run(&args).expect_code(0);
    let whole = read_parquet(&env.path("whole.parquet"));
    let union = parts_under(
        &env,
        "example-scores",
        "sharded/2026-01-01/part-",
        &whole.schema(),
    );
    assert_eq!(union, whole);
}

#[test]
fn a_run_killed_midway_into_a_prefix_records_its_parts_and_resume_finishes_it() {
    let b = bucket("midway");
    let env = Env::new();
    let whole = sorted_input(&env, &b, 5_000);
    // 40 parts, each its own upload: a few seconds of requests.
    let args = score_args(
        "s3://midway/in/sorted.parquet",
        "s3://midway/out/",
        &[
            "--rows-per-file",
            "5000",
            "--threads",
            "1",
            "--lock-lease",
            "3",
        ],
    );
    let mut run = spawn_s3(&env, &args);
    let records = || {
        keys(&b)
            .iter()
            .filter(|k| k.starts_with("out/_batchinfer/parts/"))
            .count()
    };
    wait_for("five committed parts", || records() >= 5);
    run.kill().unwrap(); // SIGKILL
    run.wait().unwrap();
    assert!(get(&b, "out/_SUCCESS").is_none());
    // status merges the part records into the manifest it reads.
    let status = run_s3(&env, &["status", "s3://midway/out/", "--json"]);
    status.expect_code(1);
    let s: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap();
    let done = s["found"][0]["parts_done"].as_u64().unwrap();
    assert!((5..40).contains(&done), "{done} parts done");
    // The killed run's lease (3 s) runs out; then the lock is taken over.
    std::thread::sleep(Duration::from_millis(3_500));
    let mut resume = args.clone();
    resume.extend(["--resume", "--summary-json", "s.json"]);
    run_s3(&env, &resume).expect_code(0);
    let summary = read_json(&env.path("s.json"));
    assert_eq!(summary["parts"]["already_done"].as_u64().unwrap(), done);
    assert_eq!(parts_under(&env, &b, "out/part-", &whole.schema()), whole);
    // Complete: the manifest lists every part, and the records are gone.
    let manifest: serde_json::Value =
        serde_json::from_slice(&get(&b, "out/_manifest.json").unwrap()).unwrap();
    assert_eq!(manifest["complete"], true);
    assert!(manifest["parts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["done"] == true));
    assert!(
        keys(&b).iter().all(|k| !k.contains("_batchinfer")),
        "{:?}",
        keys(&b)
    );
}

#[test]
fn a_manifest_changed_by_another_writer_mid_run_stops_the_run_before_success() {
    let b = bucket("cas");
    let env = Env::new();
    sorted_input(&env, &b, 5_000);
    let args = score_args(
        "s3://cas/in/sorted.parquet",
        "s3://cas/out/",
        &["--rows-per-file", "5000", "--threads", "1"],
    );
    let run = spawn_s3(&env, &args);
    wait_for("two committed parts", || {
        keys(&b)
            .iter()
            .filter(|k| k.starts_with("out/_batchinfer/parts/"))
            .count()
            >= 2
    });
    // Another writer replaces the manifest (its ETag, the content's hash, changes).
    let mut manifest = get(&b, "out/_manifest.json").unwrap();
    manifest.push(b'\n');
    put(&b, "out/_manifest.json", manifest);
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("s3://cas/out/_manifest.json was changed by another writer"),
        "{stderr}"
    );
    assert!(get(&b, "out/_SUCCESS").is_none());
}

#[test]
fn an_object_another_writer_creates_while_a_run_writes_that_key_is_not_replaced() {
    let b = bucket("race");
    let env = Env::new();
    for (key, single) in [("small.parquet", None), ("big.parquet", Some("0"))] {
        let url = format!("s3://race/{key}");
        let more: Vec<(&str, &str)> = single
            .map(|s| ("BATCHINFER_TEST_SINGLE_PUT_BYTES", s))
            .into_iter()
            .collect();
        let mut run = slow_run_env(&env, &url, &[], &more);
        // Until the run has opened its output (its last check that the key is
        // free before the commit): the upload's marker, or a moment after the lock.
        match single {
            Some(_) => wait_for("the upload marker", || {
                keys(&b)
                    .iter()
                    .any(|k| k.contains(&format!("{key}.upload-")))
            }),
            None => {
                wait_for("the lock object", || {
                    keys(&b).iter().any(|k| k.ends_with(&format!("{key}.lock")))
                });
                std::thread::sleep(Duration::from_millis(1_500));
            }
        }
        // The other writer, after this run checked that the key was free.
        put(&b, key, b"the other writer's object".to_vec());
        drop(run.stdin.take());
        let out = run.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{stderr}");
        assert!(
            stderr.contains(&format!("output {url} appeared while this run wrote it")),
            "{stderr}"
        );
        assert_eq!(get(&b, key).unwrap(), b"the other writer's object");
    }
    assert_eq!(pending_uploads(&b), 0);
}

#[test]
fn csv_objects_of_a_prefix_with_a_header_longer_than_the_prefetched_bytes() {
    let b = bucket("longheader");
    let env = Env::new();
    // Three extra columns with 30,000-character names: the header is ~90 KB, more
    // than the first 64 KiB fetched ahead of each later file.
    let long: Vec<String> = (0..3)
        .map(|i| format!("{}{i}", "x".repeat(30_000)))
        .collect();
    let csv = std::fs::read_to_string(testdata().join("data/numeric.csv")).unwrap();
    let mut lines = csv.lines();
    let header = format!("{},{}", lines.next().unwrap(), long.join(","));
    let rows: Vec<String> = lines.map(|l| format!("{l},a,b,c")).collect();
    std::fs::create_dir(env.path("in")).unwrap();
    for (name, part) in [
        ("a.csv", &rows[..700]),
        ("b.csv", &rows[700..]),
        ("c.csv", &rows[..10]),
    ] {
        let text = format!("{header}\n{}\n", part.join("\n"));
        std::fs::write(env.path(&format!("in/{name}")), &text).unwrap();
        put(&b, &format!("in/{name}"), text.into_bytes());
    }
    run_s3(
        &env,
        &score_args("s3://longheader/in/", "s3://longheader/out.parquet", &[]),
    )
    .expect_code(0);
    assert_like_local(&env, &b, "out.parquet", "in", &[]);
}

#[test]
fn a_profile_written_to_a_bucket_is_a_baseline_read_from_it() {
    let b = bucket("baselines");
    let env = Env::new();
    let model = "TD/models/pipeline_mixed.onnx";
    run_s3(
        &env,
        &[
            "profile",
            "-m",
            model,
            "-i",
            "TD/data/mixed.parquet",
            "-o",
            "s3://baselines/mixed.json",
            "-q",
        ],
    )
    .expect_code(0);
    let profile: serde_json::Value =
        serde_json::from_slice(&get(&b, "mixed.json").expect("the profile object")).unwrap();
    assert_eq!(profile["profile"]["rows"], 600);
    run_s3(
        &env,
        &[
            "score",
            "-m",
            model,
            "-i",
            "TD/data/mixed.parquet",
            "-o",
            "out.parquet",
            "-q",
            "--baseline",
            "s3://baselines/mixed.json",
            "--summary-json",
            "summary.json",
        ],
    )
    .expect_code(0);
    assert_eq!(
        read_json(&env.path("summary.json"))["drift"]["breached"],
        false
    );
    run_s3(
        &env,
        &[
            "score",
            "-m",
            model,
            "-i",
            "TD/data/mixed.parquet",
            "-o",
            "out2.parquet",
            "-q",
            "--baseline",
            "s3://baselines/missing.json",
        ],
    )
    .expect_code(2)
    .expect_stderr("cannot read baseline s3://baselines/missing.json");
}
