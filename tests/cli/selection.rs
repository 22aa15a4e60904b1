//! --filter, --with, --sql, --sample and --limit over hive-partitioned data,
//! compared with the same selections made by pandas and scored by onnxruntime
//! (testdata/generate_selection.py), plus what pruning leaves unread.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, UInt64Type};
use serde_json::Value;

use super::golden::assert_matches;
use super::harness::{ids, read_json, read_parquet, testdata, Env, Run};

const LOGREG: &str = "TD/models/logreg_multiclass.onnx";
const FEATURES: &str = "f0,f1,f2,f3,f4,f5,f6,f7";
const EVENTS: &str = "TD/data/events";

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(testdata().join("selection_cases.json"))
        .expect("testdata/selection_cases.json");
    serde_json::from_str(&text).expect("selection_cases.json is JSON")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|a| a.as_str().expect("string").to_owned())
        .collect()
}

/// Rows in a Parquet file, from its footer (an empty file has no batch to read).
fn row_count(path: &std::path::Path) -> i64 {
    let file = std::fs::File::open(path).expect("open output");
    let reader = parquet::file::reader::SerializedFileReader::new(file).expect("parquet");
    parquet::file::reader::FileReader::metadata(&reader)
        .file_metadata()
        .num_rows()
}

#[test]
fn selections_match_pandas_and_onnxruntime() {
    for case in cases() {
        let name = case["name"].as_str().expect("name");
        let expected = read_parquet(&testdata().join(case["expected"].as_str().expect("file")));
        let tolerance = case["tolerance"].as_f64().expect("tolerance");
        // Default batches, and small batches on two threads: the same rows either way.
        for extra in [&[][..], &["--batch-size", "17", "--threads", "2"][..]] {
            let env = Env::new();
            let model = format!("TD/{}", case["model"].as_str().expect("model"));
            let input = format!("TD/{}", case["input"].as_str().expect("input"));
            let mut args: Vec<String> = [
                "score",
                "--model",
                &model,
                "--input",
                &input,
                "-o",
                "out.parquet",
                "--quiet",
                "--summary-json",
                "s.json",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(strings(&case["args"]));
            args.extend(extra.iter().map(|s| s.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            env.run(&args).expect_code(0);
            let actual = read_parquet(&env.path("out.parquet"));
            assert_matches(&actual, &expected, tolerance, name);
            let summary = read_json(&env.path("s.json"));
            assert_eq!(summary["rows_scored"], expected.num_rows() as u64, "{name}");
            if let Some(rows) = case["rows_read"].as_u64() {
                // Pruning left exactly the row groups and partitions that may match.
                assert_eq!(
                    summary["rows_read"], rows,
                    "{name}: rows read after pruning"
                );
                assert!(summary["skipped"].is_object(), "{name}: {summary}");
            }
            assert_eq!(
                summary["rows_filtered"].as_u64().unwrap()
                    + summary["rows_scored"].as_u64().unwrap(),
                summary["rows_read"].as_u64().unwrap(),
                "{name}"
            );
        }
    }
}

#[test]
fn excluded_partitions_are_not_opened() {
    let env = Env::new();
    let data = env.path("events");
    copy_dir(&testdata().join("data/events"), &data);
    // A file no reader can open, in a partition the filter excludes.
    let bad = data.join("year=2022/month=06");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("part-0.parquet"), b"not parquet at all").unwrap();
    let common = ["--summary-json", "s.json", "--overwrite"];
    let with_filter = [&common[..], &["--filter", "year >= 2023 AND month = 1"]].concat();
    run_logreg(&env, "events", "out.parquet", &with_filter).expect_code(0);
    let summary = read_json(&env.path("s.json"));
    assert_eq!(summary["skipped"]["files"], 5, "{summary}");
    assert_eq!(summary["rows_read"], 240);
    run_logreg(&env, "events", "out.parquet", &common)
        .expect_code(3)
        .expect_stderr("year=2022/month=06/part-0.parquet");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `batchinfer score` with the logistic regression on `input`, keeping `id`.
fn run_logreg(env: &Env, input: &str, out: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "score",
        "-m",
        LOGREG,
        "-i",
        input,
        "-o",
        out,
        "--features",
        FEATURES,
        "--keep",
        "id",
        "--quiet",
    ];
    args.extend(extra);
    env.run(&args)
}

/// Scores the events dataset (exit 0) and reads the output.
fn score(env: &Env, out: &str, extra: &[&str]) -> arrow::array::RecordBatch {
    run_logreg(env, EVENTS, out, extra).expect_code(0);
    read_parquet(&env.path(out))
}

#[test]
fn samples_are_stable_subsets_and_limits_take_the_first_rows() {
    let env = Env::new();
    let full = score(&env, "full.parquet", &[]);
    let all = ids(&full);
    let a = score(&env, "a.parquet", &["--sample", "0.2", "--seed", "5"]);
    let b = score(
        &env,
        "b.parquet",
        &[
            "--sample",
            "0.2",
            "--seed",
            "5",
            "--batch-size",
            "13",
            "--threads",
            "1",
        ],
    );
    let c = score(&env, "c.parquet", &["--sample", "0.2", "--seed", "6"]);
    assert_eq!(ids(&a), ids(&b), "the same rows whatever the batches");
    // Whatever other files are read: March alone (ids 961..=1200) is March of the whole.
    let march = score(
        &env,
        "m.parquet",
        &["--sample", "0.2", "--seed", "5", "--filter", "month = 3"],
    );
    let in_march: Vec<i64> = ids(&a).into_iter().filter(|id| *id >= 961).collect();
    assert_eq!(ids(&march), in_march);
    assert_ne!(ids(&a), ids(&c), "another seed, other rows");
    let n = ids(&a).len();
    assert!((150..330).contains(&n), "about 20% of 1,200 rows: {n}");
    // The sample's rows and predictions are the full run's.
    let picked: Vec<u32> = ids(&a)
        .iter()
        .map(|id| {
            all.iter()
                .position(|x| x == id)
                .expect("sampled id in the full output") as u32
        })
        .collect();
    let idx = arrow::array::UInt32Array::from(picked);
    let expected = arrow::compute::take_record_batch(&full, &idx).unwrap();
    assert_eq!(a, expected);

    let limited = score(&env, "l.parquet", &["--limit", "50", "--batch-size", "7"]);
    assert_eq!(limited, full.slice(0, 50));
    let filtered = score(&env, "f.parquet", &["--filter", "country = 'US'"]);
    let both = score(
        &env,
        "fl.parquet",
        &["--filter", "country = 'US'", "--limit", "10"],
    );
    assert_eq!(both, filtered.slice(0, 10));
    run_logreg(&env, EVENTS, "dir/", &["--limit", "5"])
        .expect_code(2)
        .expect_stderr("--limit");
}

#[test]
fn bad_selections_are_refused_before_reading_naming_what_and_where() {
    let env = Env::new();
    let run = |extra: &[&str]| run_logreg(&env, EVENTS, "out.parquet", extra);
    let cases: [(&[&str], i32, &str); 7] = [
        (
            &[
                "--sql",
                "SELECT country, count(*) FROM input GROUP BY country",
            ],
            2,
            "GROUP BY is refused",
        ),
        (
            &["--sql", "SELECT * FROM input ORDER BY amount"],
            2,
            "ORDER BY is refused",
        ),
        (
            &["--filter", "amount > avg(amount)"],
            2,
            "avg (an aggregation) at line 1, column 10",
        ),
        (&["--filter", "amount >> 3 AND"], 2, "--filter"),
        (
            &["--filter", "country = 'FR' AND cuntry = 'DE'"],
            3,
            "no column `cuntry` at line 1, column 20",
        ),
        (&["--with", "amount=amount * 2"], 3, "exists already"),
        (&["--sample", "1.5"], 2, "--sample"),
    ];
    for (extra, code, message) in cases {
        run(extra).expect_code(code).expect_stderr(message);
    }
    assert!(!env.path("out.parquet").exists());
}

#[test]
fn rows_set_aside_after_a_filter_keep_their_input_row_numbers() {
    // strict_one_hot fails on segment `c`; the filter keeps even ids only.
    let env = Env::new();
    env.run(&[
        "score",
        "-m",
        "TD/models/strict_one_hot.onnx",
        "-i",
        "TD/data/numeric.parquet",
        "-o",
        "out.parquet",
        "--keep",
        "id",
        "--filter",
        "id % 2 = 0",
        "--on-error",
        "skip",
        "--batch-size",
        "64",
        "--quiet",
    ])
    .expect_code(0);
    let input = read_parquet(&testdata().join("data/numeric.parquet"));
    let segment = input.column_by_name("segment").unwrap();
    let segment = arrow::compute::cast(segment, &arrow::datatypes::DataType::Utf8).unwrap();
    let segment = segment.as_string::<i32>();
    let input_ids = ids(&input);
    let bad: Vec<i64> = (0..input.num_rows())
        .filter(|&i| input_ids[i] % 2 == 0 && segment.value(i) == "c")
        .map(|i| input_ids[i])
        .collect();
    let errors = read_parquet(&env.path("out.errors.parquet"));
    assert_eq!(ids(&errors), bad);
    let rows = errors
        .column_by_name("_row")
        .unwrap()
        .as_primitive::<UInt64Type>();
    for (i, id) in ids(&errors).iter().enumerate() {
        // numeric.parquet's ids are 1.. in row order.
        assert_eq!(rows.value(i) as i64, id - 1);
    }
    let out = read_parquet(&env.path("out.parquet"));
    assert!(ids(&out).iter().all(|id| id % 2 == 0 && !bad.contains(id)));
    assert_eq!(out.num_rows() + bad.len(), input.num_rows() / 2);
}

#[test]
fn a_filter_that_selects_nothing_writes_an_empty_file() {
    let env = Env::new();
    let extra = [
        "--keep",
        "id,year",
        "--filter",
        "year = 1999",
        "--summary-json",
        "s.json",
    ];
    run_logreg(&env, EVENTS, "out.parquet", &extra).expect_code(0);
    assert_eq!(row_count(&env.path("out.parquet")), 0);
    let summary = read_json(&env.path("s.json"));
    assert_eq!(summary["skipped"]["files"], 5);
    assert_eq!(summary["rows_read"], 0);
}

#[test]
fn inspect_shows_the_columns_after_the_selection() {
    let env = Env::new();
    env.run(&[
        "inspect",
        LOGREG,
        "--input",
        "TD/data/events",
        "--with",
        "double_f0=f0 * 2",
        "--filter",
        "month = 1",
        "--features",
        "double_f0,f1,f2,f3,f4,f5,f6,f7",
    ])
    .expect_code(0)
    .expect_stdout("rules out 4 file(s) by partition")
    .expect_stdout("double_f0 Float32")
    .expect_stdout("month Int64")
    .expect_stdout("double_f0");
}

#[test]
fn shards_of_a_filtered_directory_output_equal_the_file_output_and_resume_checks_the_filter() {
    let env = Env::new();
    let filter = "event_date >= '2024-01-15' AND amount > 500";
    let whole = score(&env, "whole.parquet", &["--filter", filter]);
    for i in 0..3 {
        let shard = format!("{i}/3");
        run_logreg(
            &env,
            EVENTS,
            "dir/",
            &["--filter", filter, "--shard", &shard],
        )
        .expect_code(0);
    }
    let mut parts: Vec<_> = env
        .files_in("dir")
        .into_iter()
        .filter(|f| f.starts_with("part-"))
        .collect();
    parts.sort();
    let mut union = vec![];
    for p in &parts {
        union.extend(ids(&read_parquet(&env.path(&format!("dir/{p}")))));
    }
    assert_eq!(union, ids(&whole));
    let again = ["--filter", "amount > 1", "--shard", "0/3", "--resume"];
    // The shard is complete: another filter is another job.
    run_logreg(&env, EVENTS, "dir/", &again)
        .expect_code(2)
        .expect_stderr("it was written with --filter");
}

#[test]
fn date_templates_environment_and_job_files_carry_selections() {
    let env = Env::new();
    env.run_with(
        &[
            "score",
            "-m",
            LOGREG,
            "-i",
            "TD/data/events",
            "-o",
            "out.parquet",
            "--features",
            FEATURES,
            "--keep",
            "id,event_date",
            "--date",
            "2024-02-10",
            "--quiet",
        ],
        None,
        &[("BATCHINFER_FILTER", "event_date = '{date}'")],
    )
    .expect_code(0);
    let out = read_parquet(&env.path("out.parquet"));
    let dates = arrow::compute::cast(
        out.column_by_name("event_date").unwrap(),
        &arrow::datatypes::DataType::Utf8,
    )
    .unwrap();
    assert!(out.num_rows() > 0);
    assert!(dates
        .as_string::<i32>()
        .iter()
        .all(|d| d == Some("2024-02-10")));

    let job = env.path("job.toml");
    std::fs::write(
        &job,
        format!(
            "model = \"{}/models/logreg_multiclass.onnx\"\ninput = \"{}/data/events\"\noutput = \"job.parquet\"\nfeatures = \"{FEATURES}\"\nkeep = [\"id\", \"month\"]\nwith = [\"big=amount > 5000\"]\nfilter = \"big AND month = 3\"\nquiet = true\n",
            testdata().display(),
            testdata().display()
        ),
    )
    .unwrap();
    env.run(&["run", "job.toml"]).expect_code(0);
    let out = read_parquet(&env.path("job.parquet"));
    let months = out
        .column_by_name("month")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert!(out.num_rows() > 0);
    assert!(months.values().iter().all(|&m| m == 3));
    assert_eq!(months.null_count(), 0);
}

#[test]
fn a_glob_gives_the_partition_columns_below_its_fixed_part() {
    let env = Env::new();
    let out = score(
        &env,
        "all.parquet",
        &["--filter", "month = 1", "--keep", "id,year,month"],
    );
    let glob = format!("{}/data/events/*/month=01/*.parquet", testdata().display());
    run_logreg(&env, &glob, "glob.parquet", &["--keep", "id,year,month"]).expect_code(0);
    let globbed = read_parquet(&env.path("glob.parquet"));
    assert_eq!(globbed, out);
    assert_eq!(globbed.num_rows(), 240);
    let years = globbed
        .column_by_name("year")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert!(years.values().iter().all(|&y| y == 2024));
}
