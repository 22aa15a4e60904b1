//! Several models in one pass (`--model NAME=PATH` repeated, `[[model]]` tables):
//! the output equals, column for column, the single-model runs' outputs with the
//! columns prefixed by model name; bad rows of any model are set aside for all.

use arrow::array::{Array, AsArray, RecordBatch};

use super::harness::{ids, parquet_metadata, read_json, read_parquet, Env};

const CHURN: &str = "TD/models/rf_multiclass_strlabels.onnx";
const LTV: &str = "TD/models/gb_regressor.onnx";
const NN: &str = "TD/models/mlp_classifier.onnx";
const DATA: &str = "TD/data/numeric.parquet";
const REVERSED: &str = "f7,f6,f5,f4,f3,f2,f1,f0";

fn single(env: &Env, model: &str, extra: &[&str], out: &str) -> RecordBatch {
    let mut args = vec![
        "score",
        "-m",
        model,
        "-i",
        DATA,
        "-o",
        out,
        "--keep",
        "id,ts",
        "-q",
        "--overwrite",
    ];
    args.extend_from_slice(extra);
    env.run(&args).expect_code(0);
    read_parquet(&env.path(out))
}

/// Every column of `one` is in `many` under `prefix.name`, equal value for value.
fn assert_prefixed_equal(many: &RecordBatch, one: &RecordBatch, prefix: &str) {
    for (field, column) in one.schema().fields().iter().zip(one.columns()) {
        if field.name() == "id" || field.name() == "ts" {
            continue;
        }
        let name = format!("{prefix}.{}", field.name());
        let got = many
            .column_by_name(&name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", many.schema()));
        assert_eq!(got.data_type(), column.data_type(), "{name}: type");
        assert_eq!(got.as_ref(), column.as_ref(), "{name}: values");
    }
}

#[test]
fn three_models_in_one_pass_equal_three_single_runs_column_for_column() {
    let env = Env::new();
    // Same settings as the single runs: the MLP's float results depend on the
    // batch size by an ulp (tract's matrix kernels tile by rows).
    for (threads, batch) in [("1", "100000"), ("2", "7")] {
        let settings = ["--threads", threads, "--batch-size", batch];
        let churn = single(&env, CHURN, &settings, "churn.parquet");
        let ltv = single(
            &env,
            LTV,
            &[&settings[..], &["--features", REVERSED]].concat(),
            "ltv.parquet",
        );
        let nn = single(&env, NN, &settings, "nn.parquet");
        let out = format!("all-{threads}.parquet");
        let json = format!("s-{threads}.json");
        env.run(&[
            "score",
            "-m",
            &format!("churn={CHURN}"),
            "--model",
            &format!("ltv={LTV}"),
            "-m",
            &format!("nn={NN}"),
            "-i",
            DATA,
            "-o",
            &out,
            "--keep",
            "id,ts",
            "--features",
            &format!("ltv:{REVERSED}"),
            "--threads",
            threads,
            "--batch-size",
            batch,
            "--summary-json",
            &json,
            "-q",
        ])
        .expect_code(0)
        .expect_stderr("model churn")
        .expect_stderr("model ltv")
        .expect_stderr("% of scoring");
        let all = read_parquet(&env.path(&out));
        assert_eq!(all.num_rows(), 1500);
        let names: Vec<String> = all
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(&names[..2], ["id", "ts"], "kept columns first");
        assert_eq!(
            names.len(),
            2 + (churn.num_columns() - 2) + (ltv.num_columns() - 2) + (nn.num_columns() - 2),
            "{names:?}"
        );
        assert_eq!(all.column(0).as_ref(), churn.column(0).as_ref());
        assert_eq!(all.column(1).as_ref(), churn.column(1).as_ref());
        assert_prefixed_equal(&all, &churn, "churn");
        assert_prefixed_equal(&all, &ltv, "ltv");
        assert_prefixed_equal(&all, &nn, "nn");

        // Each model's SHA-256 is in the metadata, as the single runs record it.
        let meta = parquet_metadata(&env.path(&out));
        let get = |k: &str| {
            meta.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {k} in {meta:?}"))
        };
        for (name, file) in [
            ("churn", "churn.parquet"),
            ("ltv", "ltv.parquet"),
            ("nn", "nn.parquet"),
        ] {
            let one = parquet_metadata(&env.path(file));
            let sha = &one
                .iter()
                .find(|(k, _)| k == "batchinfer.model_sha256")
                .unwrap()
                .1;
            assert_eq!(&get(&format!("batchinfer.model.{name}.sha256")), sha);
        }
        assert_eq!(get("batchinfer.models"), "churn,ltv,nn");

        // The summary has each model's time share and rate.
        let s = read_json(&env.path(&json));
        let models = s["models"].as_array().expect("models array");
        assert_eq!(models.len(), 3);
        let share: f64 = models
            .iter()
            .map(|m| m["score_share"].as_f64().unwrap())
            .sum();
        assert!((share - 1.0).abs() < 1e-9, "shares add up to 1: {share}");
        for (m, name) in models.iter().zip(["churn", "ltv", "nn"]) {
            assert_eq!(m["name"], name);
            assert_eq!(m["sha256"].as_str().unwrap().len(), 64);
            assert!(m["rows_per_s"].as_f64().unwrap() > 0.0, "{m}");
            assert!(m["score_s"].as_f64().unwrap() > 0.0, "{m}");
        }
        assert!(s["model_sha256"].as_str().unwrap().starts_with("churn="));
    }
}

#[test]
fn a_single_model_keeps_plain_names_and_a_named_one_is_prefixed() {
    let env = Env::new();
    let plain = single(&env, LTV, &[], "plain.parquet");
    assert!(plain.column_by_name("variable").is_some());
    let named = single(&env, &format!("ltv={LTV}"), &[], "named.parquet");
    assert_prefixed_equal(&named, &plain, "ltv");
    assert!(named.column_by_name("variable").is_none());
}

#[test]
fn job_file_model_tables_give_the_same_output_as_flags() {
    let env = Env::new();
    env.run(&[
        "score",
        "-m",
        &format!("churn={CHURN}"),
        "-m",
        &format!("ltv={LTV}"),
        "-i",
        DATA,
        "-o",
        "flags.parquet",
        "--keep",
        "id",
        "--features",
        &format!("ltv:{REVERSED}"),
        "--select-outputs",
        "churn:output_probability",
        "-q",
    ])
    .expect_code(0);
    let td = super::harness::testdata();
    // Relative model paths resolve against the job file's directory.
    std::fs::copy(td.join("models/gb_regressor.onnx"), env.path("ltv.onnx")).unwrap();
    let job = format!(
        r#"input = "{data}"
output = "job.parquet"
keep = ["id"]
quiet = true

[[model]]
name = "churn"
path = "{churn}"
select_outputs = ["output_probability"]

[[model]]
name = "ltv"
path = "ltv.onnx"
features = [{features}]
"#,
        data = td.join("data/numeric.parquet").display(),
        churn = td.join("models/rf_multiclass_strlabels.onnx").display(),
        features = REVERSED
            .split(',')
            .map(|f| format!("\"{f}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::fs::write(env.path("job.toml"), job).unwrap();
    env.run(&["run", "job.toml"]).expect_code(0);
    let flags = read_parquet(&env.path("flags.parquet"));
    let from_job = read_parquet(&env.path("job.parquet"));
    assert_eq!(flags.schema(), from_job.schema());
    assert_eq!(flags, from_job);
    assert!(
        from_job.column_by_name("churn.output_label").is_none()
            && from_job
                .column_by_name("churn.output_probability_low")
                .is_some(),
        "the table's select_outputs applies: {:?}",
        from_job.schema()
    );

    // A key a model table does not have is named.
    std::fs::write(
        env.path("bad.toml"),
        "input = \"x.parquet\"\noutput = \"y.parquet\"\n[[model]]\nname = \"a\"\npath = \"ltv.onnx\"\nfeaturs = [\"f0\"]\n",
    )
    .unwrap();
    env.run(&["run", "bad.toml"])
        .expect_code(2)
        .expect_stderr("unknown key `featurs`")
        .expect_stderr("[[model]] table 1");
}

#[test]
fn a_row_any_model_rejects_is_set_aside_for_all_models() {
    let env = Env::new();
    // A null `plan` at row 300 (bad for the pipeline model, which takes `plan`)
    // and a null `n_visits` at row 700 (bad for both models).
    super::jobs::mixed_with_nulls(&env.path("in.parquet"), Some(300), Some(700));
    let pipe = "TD/models/pipeline_mixed.onnx";
    let trees = "TD/models/pipeline_int_categories.onnx";
    let skip = |model: &str, out: &str| {
        env.run(&[
            "score",
            "-m",
            model,
            "-i",
            "in.parquet",
            "-o",
            out,
            "--keep",
            "id",
            "--on-error",
            "skip",
            "--batch-size",
            "64",
            "-q",
        ])
        .expect_code(0);
        read_parquet(&env.path(out))
    };
    let pipe_alone = skip(pipe, "pipe.parquet");
    let trees_alone = skip(trees, "trees.parquet");
    assert_eq!(pipe_alone.num_rows(), 998);
    assert_eq!(trees_alone.num_rows(), 999);

    env.run(&[
        "score",
        "-m",
        &format!("pipe={pipe}"),
        "-m",
        &format!("trees={trees}"),
        "-i",
        "in.parquet",
        "-o",
        "both.parquet",
        "--keep",
        "id",
        "--on-error",
        "skip",
        "--batch-size",
        "64",
        "-q",
    ])
    .expect_code(0)
    .expect_stderr("1,000 read, 998 scored, 2 rejected");
    let both = read_parquet(&env.path("both.parquet"));
    assert_eq!(ids(&both), ids(&pipe_alone), "the rows every model took");
    assert_prefixed_equal(&both, &pipe_alone, "pipe");
    // The tree model alone also scored row 300; drop it to compare.
    let keep: Vec<bool> = ids(&trees_alone).iter().map(|&i| i != 300).collect();
    let trees_alone =
        arrow::compute::filter_record_batch(&trees_alone, &keep.into()).expect("filter");
    assert_prefixed_equal(&both, &trees_alone, "trees");

    let errors = read_parquet(&env.path("both.errors.parquet"));
    assert_eq!(ids(&errors), [300, 700], "one error row per rejected row");
    let columns = errors.column_by_name("_column").unwrap().as_string::<i32>();
    assert_eq!(columns.value(0), "plan");
    assert_eq!(columns.value(1), "n_visits");
}

#[test]
fn model_names_and_scoped_mappings_are_checked() {
    let env = Env::new();
    let base = ["score", "-i", DATA, "-o", "out.parquet", "--keep", "id"];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        env.run(&args)
    };
    run(&["-m", CHURN, "-m", LTV])
        .expect_code(2)
        .expect_stderr("each needs a name")
        .expect_stderr("--model NAME=");
    run(&["-m", &format!("a={CHURN}"), "-m", &format!("a={LTV}")])
        .expect_code(2)
        .expect_stderr("the name `a` is given twice");
    run(&[
        "-m",
        &format!("a={CHURN}"),
        "-m",
        &format!("b={LTV}"),
        "--features",
        "a:f0,f1,f2,f3,f4,f5,f6,f7",
        "--input-map",
        "a:input=f0,f1,f2,f3,f4,f5,f6,f7",
    ])
    .expect_code(2)
    .expect_stderr("for model a");
    // A mapping error names the model it is about.
    run(&[
        "-m",
        &format!("a={CHURN}"),
        "-m",
        &format!("b={LTV}"),
        "--features",
        "b:f0,f1",
    ])
    .expect_code(3)
    .expect_stderr("model b (")
    .expect_stderr("takes 8 columns");
    assert!(!env.path("out.parquet").exists());
}

#[test]
fn inspect_and_bench_take_several_models() {
    let env = Env::new();
    let run = env.run(&[
        "inspect",
        &format!("churn={CHURN}"),
        &format!("ltv={LTV}"),
        "--input",
        DATA,
        "--keep",
        "id",
        "--features",
        &format!("ltv:{REVERSED}"),
    ]);
    run.expect_code(0);
    let out = run.stdout();
    assert!(out.contains("model churn "), "{out}");
    assert!(out.contains("churn.output_label (Utf8)"), "{out}");
    assert!(out.contains("ltv.variable (Float32)"), "{out}");
    assert!(out.contains("f7 (Float32) → float32"), "{out}");

    let run = env.run(&[
        "bench",
        &format!("churn={CHURN}"),
        &format!("ltv={LTV}"),
        "--input",
        DATA,
        "--keep",
        "id",
        "--rows",
        "500",
        "--threads",
        "1",
        "--batch-size",
        "100",
        "--repeat",
        "1",
        "--json",
    ]);
    run.expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).expect("bench JSON");
    let models = report["models"].as_array().expect("models");
    assert_eq!(models.len(), 2);
    assert_eq!(models[0]["name"], "churn");
    assert_eq!(models[1]["name"], "ltv");
    let share: f64 = models
        .iter()
        .map(|m| m["score_share"].as_f64().unwrap())
        .sum();
    assert!((share - 1.0).abs() < 1e-9);
    assert_eq!(report["results"][0]["rows"], 500);
}

#[test]
fn each_model_chooses_its_outputs_and_list_columns() {
    let env = Env::new();
    let nn = single(&env, NN, &[], "nn.parquet");
    let churn = single(&env, CHURN, &[], "churn.parquet");
    env.run(&[
        "score",
        "-m",
        &format!("churn={CHURN}"),
        "-m",
        &format!("nn={NN}"),
        "-i",
        DATA,
        "-o",
        "both.parquet",
        "--keep",
        "id",
        "--select-outputs",
        "churn:output_probability",
        "--as-list",
        "nn:output_probability",
        "-q",
    ])
    .expect_code(0);
    let both = read_parquet(&env.path("both.parquet"));
    let names: Vec<String> = both
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "id",
            "churn.output_probability_high",
            "churn.output_probability_low",
            "churn.output_probability_mid",
            "nn.output_label",
            "nn.output_probability"
        ]
    );
    for c in ["high", "low", "mid"] {
        let name = format!("output_probability_{c}");
        assert_eq!(
            both.column_by_name(&format!("churn.{name}"))
                .unwrap()
                .as_ref(),
            churn.column_by_name(&name).unwrap().as_ref()
        );
    }
    // The list holds the three probability columns of the single run, row by row.
    let list = both
        .column_by_name("nn.output_probability")
        .unwrap()
        .as_fixed_size_list();
    assert_eq!(list.value_length(), 3);
    for k in 0..3 {
        let single = nn
            .column_by_name(&format!("output_probability_{k}"))
            .unwrap()
            .as_primitive::<arrow::datatypes::Float32Type>();
        for row in [0, 1, 777, 1499] {
            let items = list.value(row);
            let items = items.as_primitive::<arrow::datatypes::Float32Type>();
            assert_eq!(items.value(k), single.value(row), "row {row}, class {k}");
        }
    }
    // A list cannot go to CSV; an unknown output is named with the model's outputs.
    env.run(&[
        "score",
        "-m",
        NN,
        "-i",
        DATA,
        "--keep",
        "id",
        "-o",
        "x.csv",
        "--as-list",
        "output_probability",
    ])
    .expect_code(2)
    .expect_stderr("cannot be written as CSV");
    env.run(&[
        "score",
        "-m",
        NN,
        "-i",
        DATA,
        "--keep",
        "id",
        "-o",
        "x.parquet",
        "--select-outputs",
        "probs",
    ])
    .expect_code(3)
    .expect_stderr("no output `probs`; its outputs are: output_label, output_probability");
    assert!(!env.path("x.csv").exists() && !env.path("x.parquet").exists());
}
