//! Profiles and the drift guard: a run held to a baseline fails (exit 6, nothing
//! committed) when its inputs or predictions moved, names the column, and stays
//! quiet on fresh samples of the baseline's own distribution.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use super::harness::{read_json, read_parquet, write_parquet, Env};

const MODEL: &str = "TD/models/pipeline_mixed.onnx";

/// SplitMix64, for data with fixed seeds.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    fn poisson(&mut self, lambda: f64) -> i64 {
        let (limit, mut k, mut p) = ((-lambda).exp(), 0, 1.0);
        loop {
            p *= self.uniform();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }
}

/// What upstream broke.
#[derive(Clone, Copy)]
struct Change {
    age_shift: f64,
    income_scale: f64,
    income_null: bool,
    new_plan_share: f64,
    /// Rows with age over 50 appear three times (a join that duplicated them).
    duplicate_old: bool,
}

const NONE: Change = Change {
    age_shift: 0.0,
    income_scale: 1.0,
    income_null: false,
    new_plan_share: 0.0,
    duplicate_old: false,
};

/// The distribution of testdata's mixed table (testdata/generate.py, `mixed_table`).
fn mixed(n: usize, seed: u64, change: Change) -> RecordBatch {
    let mut rng = Rng(seed);
    let (mut age, mut income, mut plan, mut visits) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let a = 45.0 + 12.0 * rng.normal() + change.age_shift;
        let copies = if change.duplicate_old && a > 50.0 {
            3
        } else {
            1
        };
        let null_age = rng.uniform() < 0.1;
        let inc = (10.0 + 0.5 * rng.normal()).exp() * change.income_scale;
        let p = if rng.uniform() < change.new_plan_share {
            "enterprise"
        } else if rng.uniform() < 0.03 {
            "legacy"
        } else {
            ["basic", "plus", "pro"][(rng.next() % 3) as usize]
        };
        let v = rng.poisson(5.0);
        for _ in 0..copies {
            age.push((!null_age).then_some(a));
            income.push((!change.income_null).then_some(inc));
            plan.push(p);
            visits.push(v);
        }
    }
    let rows = age.len() as i64;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("age", DataType::Float64, true),
        Field::new("income", DataType::Float64, true),
        Field::new("plan", DataType::Utf8, true),
        Field::new("n_visits", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..rows)),
        Arc::new(Float64Array::from(age)),
        Arc::new(Float64Array::from(income)),
        Arc::new(StringArray::from(plan)),
        Arc::new(Int64Array::from(visits)),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn write(env: &Env, name: &str, batch: RecordBatch) {
    write_parquet(&env.path(name), [batch], None);
}

/// `batchinfer profile` of `input` through the test model into `out`.
fn profile(env: &Env, input: &str, out: &str) {
    env.run(&["profile", "-m", MODEL, "-i", input, "-o", out, "-q"])
        .expect_code(0);
}

/// A baseline of 20,000 rows of the undisturbed distribution.
fn baseline(env: &Env) {
    write(env, "reference.parquet", mixed(20_000, 1, NONE));
    profile(env, "reference.parquet", "base.json");
}

/// Today's rows, with income in cents instead of euros.
fn income_in_cents(env: &Env) {
    let cents = Change {
        income_scale: 100.0,
        ..NONE
    };
    write(env, "today.parquet", mixed(5_000, 7, cents));
}

fn score(env: &Env, input: &str, extra: &[&str]) -> super::harness::Run {
    let mut args = vec![
        "score",
        "-m",
        MODEL,
        "-i",
        input,
        "-o",
        "out.parquet",
        "--keep",
        "id",
        "--baseline",
        "base.json",
        "--summary-json",
        "summary.json",
        "-q",
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

/// (column, measure) of each finding in a summary, in its order.
fn findings(summary: &Path) -> Vec<(String, String)> {
    let s = read_json(summary);
    s["drift"]["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no drift findings in {s}"))
        .iter()
        .map(|f| {
            (
                f["column"].as_str().unwrap().to_string(),
                f["measure"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn each_corruption_is_caught_naming_its_column_and_nothing_is_committed() {
    let env = Env::new();
    baseline(&env);
    let cases = [
        (
            "shifted mean",
            Change {
                age_shift: 12.0,
                ..NONE
            },
            "age",
            "psi",
        ),
        (
            "all null",
            Change {
                income_null: true,
                ..NONE
            },
            "income",
            "null-rate",
        ),
        (
            "cents, not euros",
            Change {
                income_scale: 100.0,
                ..NONE
            },
            "income",
            "psi",
        ),
        (
            "a new category",
            Change {
                new_plan_share: 0.1,
                ..NONE
            },
            "plan",
            "unseen",
        ),
        (
            "duplicated rows",
            Change {
                duplicate_old: true,
                ..NONE
            },
            "age",
            "psi",
        ),
    ];
    for (what, change, column, measure) in cases {
        write(&env, "today.parquet", mixed(5_000, 7, change));
        let run = score(&env, "today.parquet", &[]);
        run.expect_code(6)
            .expect_stderr(&format!("{column} (input)"));
        assert!(
            !env.path("out.parquet").exists(),
            "{what}: the output was committed"
        );
        let found = findings(&env.path("summary.json"));
        assert!(
            found.contains(&(column.to_string(), measure.to_string())),
            "{what}: {column} {measure} not among {found:?}\n{}",
            run.context()
        );
        let summary = read_json(&env.path("summary.json"));
        let first_input = &summary["drift"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["role"] == "input")
            .unwrap()["column"];
        assert_eq!(first_input, column, "{what}: worst input first: {found:?}");
        assert_eq!(summary["status"], "drift");
        assert!(
            env.files().iter().all(|f| !f.contains(".tmp")),
            "{:?}",
            env.files()
        );
    }
}

#[test]
fn fresh_samples_of_the_baseline_distribution_raise_no_alarm_in_100_runs() {
    let env = Env::new();
    baseline(&env);
    for seed in 0..100u64 {
        write(&env, "today.parquet", mixed(5_000, 1_000 + seed, NONE));
        let run = score(&env, "today.parquet", &["--overwrite"]);
        run.expect_code(0);
        let s = read_json(&env.path("summary.json"));
        assert_eq!(s["drift"]["breached"], false, "seed {seed}: {}", s["drift"]);
        assert_eq!(s["drift"]["parts_checked"], 1);
    }
}

#[test]
fn warn_commits_and_records_the_breach_in_the_summary_the_log_and_the_metadata() {
    let env = Env::new();
    baseline(&env);
    income_in_cents(&env);
    let run = score(
        &env,
        "today.parquet",
        &["--on-drift", "warn", "--log-format", "json"],
    );
    run.expect_code(0);
    let events: Vec<serde_json::Value> = run
        .stderr()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let drift = events
        .iter()
        .find(|e| e["event"] == "drift" && e["column"] == "income")
        .unwrap_or_else(|| panic!("no drift event for income\n{}", run.context()));
    assert_eq!(drift["level"], "warn");
    assert!(drift["value"].as_f64().unwrap() > drift["threshold"].as_f64().unwrap());
    let s = read_json(&env.path("summary.json"));
    assert_eq!(
        (s["status"].as_str(), s["drift"]["breached"].as_bool()),
        (Some("ok"), Some(true))
    );
    let file = std::fs::File::open(env.path("out.parquet")).unwrap();
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(file).unwrap();
    use parquet::file::reader::FileReader;
    let kv = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .unwrap();
    let recorded = kv
        .iter()
        .find(|k| k.key == "batchinfer.drift")
        .and_then(|k| k.value.clone())
        .expect("batchinfer.drift in the Parquet metadata");
    assert!(recorded.contains("\"income\""), "{recorded}");
}

#[test]
fn a_directory_output_fails_the_shard_at_the_part_that_drifted_and_a_resume_fails_again() {
    let env = Env::new();
    baseline(&env);
    std::fs::create_dir(env.path("days")).unwrap();
    write(&env, "days/a.parquet", mixed(4_000, 11, NONE));
    write(
        &env,
        "days/b.parquet",
        mixed(
            4_000,
            12,
            Change {
                age_shift: 15.0,
                ..NONE
            },
        ),
    );
    let args = [
        "score",
        "-m",
        MODEL,
        "-i",
        "days",
        "-o",
        "out/",
        "--baseline",
        "base.json",
        "-q",
        "--summary-json",
        "summary.json",
    ];
    let run = env.run(&args);
    run.expect_code(6).expect_stderr("part-00001");
    let out = env.files_in("out");
    assert!(!out.iter().any(|f| f.starts_with("_SUCCESS")), "{out:?}");
    let manifest = read_json(&env.path("out/_manifest.json"));
    let done: Vec<bool> = manifest["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["done"].as_bool().unwrap())
        .collect();
    assert_eq!(
        done,
        [true, false],
        "the part of a.parquet stays, b's is not committed"
    );
    let f = &read_json(&env.path("summary.json"))["drift"]["findings"][0];
    assert!(f["part"].as_str().unwrap().contains("part-00001"), "{f}");

    let mut resume = args.to_vec();
    resume.push("--resume");
    env.run(&resume).expect_code(6);
    resume.extend(["--on-drift", "warn"]);
    env.run(&resume).expect_code(0);
    assert!(env.files_in("out").iter().any(|f| f == "_SUCCESS"));
}

#[test]
fn the_summary_of_a_run_works_as_a_baseline_and_matches_the_profile_command() {
    let env = Env::new();
    write(&env, "reference.parquet", mixed(20_000, 1, NONE));
    profile(&env, "reference.parquet", "base.json");
    env.run(&[
        "score",
        "-m",
        MODEL,
        "-i",
        "reference.parquet",
        "-o",
        "ref.parquet",
        "-q",
        "--summary-json",
        "ref-summary.json",
    ])
    .expect_code(0);
    let (a, b) = (
        read_json(&env.path("base.json")),
        read_json(&env.path("ref-summary.json")),
    );
    assert_eq!(a["profile"], b["profile"]);
    write(&env, "today.parquet", mixed(5_000, 99, NONE));
    env.run(&[
        "score",
        "-m",
        MODEL,
        "-i",
        "today.parquet",
        "-o",
        "out.parquet",
        "-q",
        "--baseline",
        "ref-summary.json",
    ])
    .expect_code(0);
}

#[test]
fn the_profile_does_not_depend_on_threads_or_batch_size() {
    let env = Env::new();
    write(&env, "data.parquet", mixed(60_000, 5, NONE));
    let profile = |out: &str, threads: &str, batch: &str| {
        env.run(&[
            "profile",
            "-m",
            MODEL,
            "-i",
            "data.parquet",
            "-o",
            out,
            "-q",
            "--threads",
            threads,
            "--batch-size",
            batch,
        ])
        .expect_code(0);
        read_json(&env.path(out))["profile"].clone()
    };
    let one = profile("one.json", "1", "8192");
    let other = profile("other.json", "2", "777");
    for (role, columns) in one.as_object().unwrap() {
        let Some(columns) = columns.as_object() else {
            assert_eq!(other[role], *columns);
            continue;
        };
        for (name, a) in columns {
            let b = &other[role][name];
            for key in [
                "rows",
                "nulls",
                "nan",
                "count",
                "min",
                "max",
                "quantiles",
                "values",
                "distinct",
            ] {
                assert_eq!(a[key], b[key], "{role} {name} {key}");
            }
            // The sketch itself is encoded with its running sum, a float sum like the mean's.
            assert_eq!(a["sample_sq"], b["sample_sq"], "{role} {name} sample_sq");
            if let (Some(x), Some(y)) = (a["mean"].as_f64(), b["mean"].as_f64()) {
                assert!(
                    (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                    "{name} mean {x} {y}"
                );
                let (x, y) = (a["std"].as_f64().unwrap(), b["std"].as_f64().unwrap());
                assert!(
                    (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                    "{name} std {x} {y}"
                );
            }
        }
    }
    assert_eq!(one["inputs"]["plan"]["distinct"], 4);
    assert_eq!(one["rows"], 60_000);
}

/// 20,000 rows of eight float32 features (the columns `logreg_multiclass` takes):
/// one with a large mean, one with a NaN late in the input, one with nulls.
fn float32_features(seed: u64, shift: f32) -> RecordBatch {
    let mut rng = Rng(seed);
    let n = 20_000;
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(0..n as i64))];
    for j in 0..8 {
        let values: Vec<Option<f32>> = (0..n)
            .map(|i| {
                let x = rng.normal() as f32 + shift;
                match j {
                    0 => Some(50_000.0 + 1_000.0 * x),
                    1 if i == 15_001 => Some(f32::NAN),
                    2 if i % 97 == 0 => None,
                    _ => Some(x * (j + 1) as f32),
                }
            })
            .collect();
        fields.push(Field::new(format!("f{j}"), DataType::Float32, true));
        columns.push(Arc::new(arrow::array::Float32Array::from(values)));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

const FEATURES: &str = "f0,f1,f2,f3,f4,f5,f6,f7";

#[test]
fn float32_inputs_profiled_while_their_tensor_is_built_match_the_columns_own_profile() {
    // `--on-error fail` sums a float32 input's moments as its tensor is written
    // (on CPUs with AVX-512); `skip` measures every column on its own. Both must
    // give the same profile, with a baseline's range too.
    let env = Env::new();
    write_parquet(
        &env.path("reference.parquet"),
        [float32_features(1, 0.0)],
        None,
    );
    write_parquet(&env.path("today.parquet"), [float32_features(2, 3.0)], None);
    let model = "TD/models/logreg_multiclass.onnx";
    env.run(&[
        "profile",
        "-m",
        model,
        "-i",
        "reference.parquet",
        "-o",
        "base.json",
        "--features",
        FEATURES,
        "-q",
    ])
    .expect_code(0);
    let run = |on_error: &str, batch: &str| {
        let summary = format!("{on_error}-{batch}.json");
        env.run(&[
            "score",
            "-m",
            model,
            "-i",
            "today.parquet",
            "-o",
            "out.parquet",
            "--overwrite",
            "--baseline",
            "base.json",
            "--on-drift",
            "warn",
            "--on-error",
            on_error,
            "--batch-size",
            batch,
            "--summary-json",
            &summary,
            "--features",
            FEATURES,
            "-q",
        ])
        .expect_code(0);
        read_json(&env.path(&summary))["profile"]["inputs"].clone()
    };
    let skip = run("skip", "8192");
    for (on_error, batch) in [("fail", "8192"), ("fail", "777")] {
        let fail = run(on_error, batch);
        for j in 0..8 {
            let name = format!("f{j}");
            let (a, b) = (&skip[&name], &fail[&name]);
            for key in [
                "rows",
                "nulls",
                "nan",
                "count",
                "min",
                "max",
                "outside_baseline",
                "quantiles",
            ] {
                assert_eq!(a[key], b[key], "{name} {key} (batch {batch})");
            }
            for key in ["mean", "std"] {
                let (x, y) = (a[key].as_f64().unwrap(), b[key].as_f64().unwrap());
                assert!(
                    (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                    "{name} {key}: {x} {y} (batch {batch})"
                );
            }
        }
        assert_eq!(fail["f1"]["nan"], 1);
        assert_eq!(fail["f2"]["nulls"], 207);
        assert!(
            fail["f0"]["outside_baseline"].as_u64().unwrap() > 0,
            "{}",
            fail["f0"]
        );
    }
}

#[test]
fn the_bundled_table_passes_against_itself_and_fails_as_a_corrupted_copy() {
    let env = Env::new();
    profile(&env, "TD/data/mixed.parquet", "base.json");
    score(&env, "TD/data/mixed.parquet", &[]).expect_code(0);
    // The same rows with income in cents and the plan `pro` renamed.
    let table =
        super::harness::read_parquet(&super::harness::testdata().join("data/mixed.parquet"));
    let income = table.column_by_name("income").unwrap();
    let cents: Float64Array = income
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .iter()
        .map(|v| v.map(|v| v * 100.0))
        .collect();
    let plan: StringArray = table
        .column_by_name("plan")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
        .iter()
        .map(|v| v.map(|p| if p == "pro" { "premium" } else { p }))
        .collect();
    let mut columns = table.columns().to_vec();
    let schema = table.schema();
    columns[schema.index_of("income").unwrap()] = Arc::new(cents);
    columns[schema.index_of("plan").unwrap()] = Arc::new(plan);
    write(
        &env,
        "corrupted.parquet",
        RecordBatch::try_new(schema, columns).unwrap(),
    );
    let before = std::fs::read(env.path("out.parquet")).unwrap();
    let run = score(&env, "corrupted.parquet", &["--overwrite"]);
    run.expect_code(6);
    assert_eq!(
        std::fs::read(env.path("out.parquet")).unwrap(),
        before,
        "the earlier output stays"
    );
    let found = findings(&env.path("summary.json"));
    for (column, measure) in [("income", "range"), ("plan", "unseen")] {
        assert!(
            found.contains(&(column.into(), measure.into())),
            "{found:?}"
        );
    }
}

#[test]
fn a_baseline_that_does_not_fit_the_run_is_refused_before_scoring() {
    let env = Env::new();
    env.run(&[
        "profile",
        "-m",
        "TD/models/rf_binary.onnx",
        "-i",
        "TD/data/numeric.parquet",
        "--keep",
        "id",
        "-o",
        "other.json",
        "-q",
    ])
    .expect_code(0);
    let run = env.run(&[
        "score",
        "-m",
        MODEL,
        "-i",
        "TD/data/mixed.parquet",
        "-o",
        "out.parquet",
        "--baseline",
        "other.json",
    ]);
    run.expect_code(3)
        .expect_stderr("input `age` (not in the baseline)");
    assert!(!env.path("out.parquet").exists());
    env.run(&["inspect", MODEL, "--baseline", "other.json"])
        .expect_code(3)
        .expect_stderr("age");
    std::fs::write(env.path("not-a-profile.json"), "{\"rows\": 3}").unwrap();
    env.run(&[
        "score",
        "-m",
        MODEL,
        "-i",
        "TD/data/mixed.parquet",
        "-o",
        "out.parquet",
        "--baseline",
        "not-a-profile.json",
    ])
    .expect_code(2)
    .expect_stderr("has no profile");
}

#[test]
fn drift_options_are_checked_before_anything_runs() {
    let env = Env::new();
    let base = [
        "score",
        "-m",
        MODEL,
        "-i",
        "TD/data/mixed.parquet",
        "-o",
        "out.parquet",
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        env.run(&a)
    };
    with(&["--max-drift", "psi=0.1"])
        .expect_code(2)
        .expect_stderr("--baseline");
    with(&["--on-drift", "warn"])
        .expect_code(2)
        .expect_stderr("--baseline");
    profile(&env, "TD/data/mixed.parquet", "base.json");
    with(&["--baseline", "base.json", "--max-drift", "kl=1"])
        .expect_code(2)
        .expect_stderr("unknown measure");
    with(&["--baseline", "base.json", "--max-drift", "nope:psi=1"])
        .expect_code(2)
        .expect_stderr("nope");
    with(&["--baseline", "base.json", "--on-drift", "maybe"]).expect_code(2);
    // The baseline is an input: no output may be written over it.
    with(&["--baseline", "base.json", "--summary-json", "base.json"])
        .expect_code(2)
        .expect_stderr("--baseline");
    with(&["--baseline", "base.json", "--no-profile"])
        .expect_code(2)
        .expect_stderr("--no-profile turns off the profile that --baseline compares");
    assert!(!env.path("out.parquet").exists());
}

#[test]
fn no_profile_scores_the_same_rows_and_leaves_the_profile_out() {
    let env = Env::new();
    let run = |out: &str, extra: &[&str]| {
        let summary = format!("{out}.json");
        let mut a = vec![
            "score",
            "-m",
            MODEL,
            "-i",
            "TD/data/mixed.parquet",
            "-o",
            out,
            "--keep",
            "id",
            "--summary-json",
            &summary,
        ];
        a.extend_from_slice(extra);
        let stderr = env.run(&a).expect_code(0).stderr();
        (read_json(&env.path(&summary)), stderr)
    };
    let (with, with_text) = run("with.parquet", &[]);
    let (without, without_text) = run("without.parquet", &["--no-profile"]);
    assert_eq!(with["profile"]["rows"], 600);
    assert!(without["profile"].is_null(), "{}", without["profile"]);
    assert!(with_text.contains("  profile ") && !without_text.contains("  profile "));
    assert_eq!(
        read_parquet(&env.path("with.parquet")),
        read_parquet(&env.path("without.parquet"))
    );
    // As a variable, as every flag.
    let vars = [("BATCHINFER_NO_PROFILE", "true")];
    env.run_with(
        &[
            "score",
            "-m",
            MODEL,
            "-i",
            "TD/data/mixed.parquet",
            "-o",
            "v.parquet",
            "--summary-json",
            "v.json",
        ],
        None,
        &vars,
    )
    .expect_code(0);
    assert!(read_json(&env.path("v.json"))["profile"].is_null());
}

#[test]
fn inspect_shows_how_the_model_maps_onto_a_baseline() {
    let env = Env::new();
    profile(&env, "TD/data/mixed.parquet", "base.json");
    env.run(&["inspect", MODEL, "--baseline", "base.json"])
        .expect_code(0)
        .expect_stdout("baseline base.json (600 rows)")
        .expect_stdout("plan categorical: 4 values (basic 34.7%")
        .expect_stdout("output_probability_1 numeric: mean 0.4572")
        // The mapping is planned onto the baseline's columns, integers as integers.
        .expect_stdout("n_visits (Int64) → int64 [exact]");
}

#[test]
fn a_breach_on_stdout_exits_6_and_says_the_rows_already_went_out() {
    let env = Env::new();
    baseline(&env);
    income_in_cents(&env);
    let run = env.run(&[
        "score",
        "-m",
        MODEL,
        "-i",
        "today.parquet",
        "-o",
        "-",
        "--keep",
        "id",
        "--baseline",
        "base.json",
        "-q",
        "--summary",
        "none",
    ]);
    run.expect_code(6)
        .expect_stderr("income (input)")
        .expect_stderr("were already written to standard output");
    assert_eq!(run.stdout().lines().count(), 5_001);
}
