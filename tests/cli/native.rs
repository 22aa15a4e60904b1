//! Native model files (XGBoost's own JSON and UBJSON, LightGBM's text) scored
//! end to end and compared with the library's own `predict` (testdata/expected/native, made by
//! testdata/generate_native.py), within the tolerance of the golden tests.

use super::golden::{all_cases, assert_matches, check_in};
use super::harness::{read_json, read_parquet, testdata, write_parquet, Env};

macro_rules! native {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check_in("native_cases.json", stringify!($name), &[]);
            }
        )*
        const LISTED: &[&str] = &[$(stringify!($name)),*];
    };
}

native!(
    xgb_binary_logistic_raw,
    xgb_binary_logistic_json,
    xgb_binary_logistic_ubj,
    xgb_binary_logitraw_json,
    xgb_binary_logitraw_ubj,
    xgb_binary_hinge_json,
    xgb_binary_hinge_ubj,
    xgb_reg_logistic_json,
    xgb_reg_logistic_ubj,
    xgb_multi_softprob_raw,
    xgb_multi_softprob_json,
    xgb_multi_softprob_ubj,
    xgb_multi_softmax_json,
    xgb_multi_softmax_ubj,
    xgb_squarederror_json,
    xgb_squarederror_ubj,
    xgb_absoluteerror_json,
    xgb_absoluteerror_ubj,
    xgb_pseudohubererror_json,
    xgb_pseudohubererror_ubj,
    xgb_quantileerror_json,
    xgb_quantileerror_ubj,
    xgb_poisson_raw,
    xgb_poisson_json,
    xgb_poisson_ubj,
    xgb_gamma_json,
    xgb_gamma_ubj,
    xgb_tweedie_json,
    xgb_tweedie_ubj,
    xgb_cox_json,
    xgb_cox_ubj,
    xgb_rank_ndcg_json,
    xgb_rank_ndcg_ubj,
    xgb_dart_json,
    xgb_dart_ubj,
    xgb_forest_json,
    xgb_forest_ubj,
    xgb_base_score_json,
    xgb_base_score_ubj,
    xgb_two_targets_json,
    xgb_two_targets_ubj,
    xgb_multi_output_tree_json,
    xgb_multi_output_tree_ubj,
    lgbm_binary,
    lgbm_binary_sigmoid_raw,
    lgbm_binary_sigmoid,
    lgbm_multiclass_raw,
    lgbm_multiclass,
    lgbm_multiclassova,
    lgbm_regression,
    lgbm_regression_l1,
    lgbm_huber,
    lgbm_fair,
    lgbm_quantile,
    lgbm_mape,
    lgbm_poisson,
    lgbm_gamma_raw,
    lgbm_gamma,
    lgbm_tweedie,
    lgbm_cross_entropy,
    lgbm_cross_entropy_lambda,
    lgbm_lambdarank,
    lgbm_rank_xendcg,
    lgbm_random_forest,
    xgb_categorical_json,
    xgb_categorical_ubj,
    xgb_categorical_binary_json,
    xgb_categorical_binary_ubj,
    xgb_categorical_onehot_json,
    xgb_categorical_onehot_ubj,
    xgb_categorical_codes,
    lgbm_categorical_names,
    lgbm_categorical_names_unseen,
    lgbm_categorical_binary_names,
    lgbm_categorical_binary_names_unseen,
    lgbm_categorical_codes,
    lgbm_zero_as_missing,
    xgb_early_stopping_all,
    xgb_early_stopping_best,
    xgb_early_stopping_2,
    xgb_multi_softprob_5,
    lgbm_multiclass_5,
    lgbm_linear_tree,
    lgbm_linear_tree_binary,
    lgbm_zero_as_missing_binary,
    xgb_gblinear_binary_json,
    xgb_gblinear_binary_ubj,
    xgb_gblinear_multiclass_json,
    xgb_gblinear_multiclass_ubj,
    xgb_gblinear_regression_json,
    xgb_gblinear_regression_ubj,
    xgb_gblinear_poisson_json,
    xgb_gblinear_poisson_ubj,
);

#[test]
fn every_native_case_has_a_test() {
    let all = all_cases("native_cases.json");
    assert!(
        all.len() >= 40,
        "native_cases.json lists {} cases",
        all.len()
    );
    for c in &all {
        let name = c["name"].as_str().expect("name");
        assert!(
            LISTED.contains(&name),
            "testdata/native_cases.json has case `{name}` but tests/cli/native.rs does not run it"
        );
    }
}

const LOGISTIC: &str = "TD/models/native/xgb_binary_logistic.json";

/// Scores `input` with `model` (the binary:logistic model, under any name) and
/// compares with XGBoost's predictions.
fn scores_as_xgboost_did(env: &Env, model: &str, input: &str, what: &str) {
    env.run(&[
        "score",
        "-m",
        model,
        "-i",
        input,
        "-o",
        "out.parquet",
        "--keep",
        "id",
        "-q",
    ])
    .expect_code(0);
    let expected = read_parquet(&testdata().join("expected/native/xgb_binary_logistic.parquet"));
    assert_matches(
        &read_parquet(&env.path("out.parquet")),
        &expected,
        1e-5,
        what,
    );
}

#[test]
fn the_format_is_told_by_content_not_by_extension() {
    let env = Env::new();
    let copy = env.path("model.onnx");
    std::fs::copy(
        testdata().join("models/native/xgb_binary_logistic.ubj"),
        &copy,
    )
    .unwrap();
    scores_as_xgboost_did(
        &env,
        "model.onnx",
        "TD/data/numeric_nan.parquet",
        "ubj as .onnx",
    );
}

#[test]
fn columns_feed_features_by_the_names_the_model_stores() {
    let env = Env::new();
    // The input's columns in another order: the names decide, not the order.
    let shuffled = env.path("shuffled.parquet");
    let input = read_parquet(&testdata().join("data/numeric_nan.parquet"));
    let order = ["f7", "id", "f3", "f0", "f5", "f1", "f6", "f2", "f4"];
    let columns: Vec<usize> = order
        .iter()
        .map(|n| input.schema().index_of(n).unwrap())
        .collect();
    write_parquet(&shuffled, [input.project(&columns).unwrap()], None);
    scores_as_xgboost_did(&env, LOGISTIC, "shuffled.parquet", "shuffled columns");
    env.run(&["inspect", LOGISTIC, "--input", "shuffled.parquet"])
        .expect_code(0)
        .expect_stdout("format XGBoost 3.2.0 model: objective binary:logistic, booster gbtree, 12 trees, 8 features")
        .expect_stdout("features: f0, f1, f2, f3, f4, f5, f6, f7")
        .expect_stdout("8 column(s) by the model's feature names");
    // A feature with no column of its name is an error before scoring, naming it.
    let without = env.path("without.parquet");
    let keep: Vec<usize> = (0..input.num_columns())
        .filter(|&i| input.schema().field(i).name() != "f5")
        .collect();
    write_parquet(&without, [input.project(&keep).unwrap()], None);
    env.run(&[
        "score",
        "-m",
        LOGISTIC,
        "-i",
        "without.parquet",
        "-o",
        "out2.parquet",
    ])
    .expect_code(3)
    .expect_stderr("the model names its 8 features and the input has no column f5");
    assert!(!env.path("out2.parquet").exists());
}

#[test]
fn a_native_model_scores_beside_an_onnx_one_and_its_hash_is_the_files() {
    let env = Env::new();
    env.run(&[
        "score",
        "-m",
        &format!("native={LOGISTIC}"),
        "-m",
        "onnx=TD/models/xgb_binary.onnx",
        "-i",
        "TD/data/numeric_nan.parquet",
        "-o",
        "out/",
        "--keep",
        "id",
        "-q",
        "--features",
        "f0,f1,f2,f3,f4,f5,f6,f7",
    ])
    .expect_code(0);
    let manifest = read_json(&env.path("out/_manifest.json"));
    let models = manifest["job"]["models"].as_array().unwrap();
    let bytes = std::fs::read(testdata().join("models/native/xgb_binary_logistic.json")).unwrap();
    let sha = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&bytes));
    assert!(
        models.iter().any(|m| m["sha256"] == sha.as_str()),
        "{models:?}"
    );
    let parts = env.files_in("out");
    let part = parts.iter().find(|p| p.ends_with(".parquet")).unwrap();
    let out = read_parquet(&env.path(&format!("out/{part}")));
    let expected = read_parquet(&testdata().join("expected/native/xgb_binary_logistic.parquet"));
    let renamed: Vec<String> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().trim_start_matches("native.").to_owned())
        .collect();
    let native = arrow::record_batch::RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(
            out.schema()
                .fields()
                .iter()
                .zip(&renamed)
                .map(|(f, n)| f.as_ref().clone().with_name(n))
                .collect::<Vec<_>>(),
        )),
        out.columns().to_vec(),
    )
    .unwrap();
    assert_matches(&native, &expected, 1e-5, "native beside onnx");
}

/// A directory job scored with `option` records it; the same job without it is
/// another job: its resume is refused, not mixed into the parts.
fn a_directory_job_records(env: &Env, model: &str, option: &[&str], recorded: &str) {
    let input = "TD/data/numeric_nan.parquet";
    let mut args = vec!["score", "-m", model, "-i", input, "-o", "out/", "-q"];
    args.extend(option);
    env.run(&args).expect_code(0);
    let manifest = read_json(&env.path("out/_manifest.json"));
    assert_eq!(manifest["job"]["options"][option[0]], recorded);
    let resume = [
        "score", "-m", model, "-i", input, "-o", "out/", "--resume", "-q",
    ];
    env.run(&resume)
        .expect_code(2)
        .expect_stderr(&format!("it was written with {} {recorded}", option[0]));
}

#[test]
fn raw_scores_are_part_of_a_directory_job() {
    let env = Env::new();
    a_directory_job_records(
        &env,
        "TD/models/native/lgbm_binary.txt",
        &["--raw-score"],
        "true",
    );
    env.run(&[
        "score",
        "-m",
        "TD/models/native/lgbm_binary.txt",
        "-i",
        "TD/data/numeric_nan.parquet",
        "-o",
        "out/",
        "--resume",
        "-q",
    ])
    .expect_stderr("this run has no --raw-score");
}

#[test]
fn what_cannot_be_scored_is_refused_by_name_before_scoring() {
    let env = Env::new();
    {
        let (model, message) = ("TD/models/native/refused_pickle.pkl", "is a Python pickle");
        env.run(&[
            "score",
            "-m",
            model,
            "-i",
            "TD/data/numeric_nan.parquet",
            "-o",
            "out.parquet",
        ])
        .expect_code(3)
        .expect_stderr(message);
        assert!(!env.path("out.parquet").exists(), "{model}");
        env.run(&["inspect", model])
            .expect_code(3)
            .expect_stderr(message);
    }
    // Raw margins are a native model's; an ONNX model's outputs are its graph's.
    env.run(&[
        "score",
        "-m",
        "TD/models/xgb_binary.onnx",
        "-i",
        "TD/data/numeric_nan.parquet",
        "-o",
        "out.parquet",
        "--raw-score",
    ])
    .expect_code(3)
    .expect_stderr("is an ONNX model, whose outputs are what its graph computes");
    assert!(!env.path("out.parquet").exists());
    // A damaged file of a native format says which format it looked like.
    std::fs::write(env.path("cut.json"), b"{\"learner\": {\"objective\"").unwrap();
    env.run(&["inspect", "cut.json"])
        .expect_code(3)
        .expect_stderr("cannot score XGBoost JSON model cut.json");
}

#[test]
fn a_category_xgboost_never_saw_is_a_bad_row_naming_it() {
    let env = Env::new();
    let model = "TD/models/native/xgb_categorical.json";
    let input = "TD/data/categorical_unseen.parquet";
    env.run(&["inspect", model])
        .expect_code(0)
        .expect_stdout("categorical: color (8 names, an unseen one is a bad row), size (4 integer categories, an unseen one is a bad row)");
    // XGBoost's own predict refuses such a frame; the default is to stop.
    env.run(&["score", "-m", model, "-i", input, "-o", "out.parquet", "-q"])
        .expect_code(4)
        .expect_stderr(
            "column `color`: category \"purple\" is not one of the 8 the model was trained with",
        );
    assert!(!env.path("out.parquet").exists());
    env.run(&[
        "score",
        "-m",
        model,
        "-i",
        input,
        "-o",
        "out.parquet",
        "-q",
        "--on-error",
        "skip",
        "--errors",
        "errors.parquet",
    ])
    .expect_code(0);
    let errors = read_parquet(&env.path("errors.parquet"));
    let scored = read_parquet(&env.path("out.parquet"));
    let reasons = errors
        .column_by_name("_reason")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap()
        .iter()
        .map(|r| r.unwrap().to_owned())
        .collect::<Vec<_>>();
    // data/categorical_unseen.parquet: 700 rows, about 10% "purple" and 10% 99.
    assert_eq!(errors.num_rows() + scored.num_rows(), 700);
    assert!(
        (100..180).contains(&errors.num_rows()),
        "{}",
        errors.num_rows()
    );
    assert!(reasons
        .iter()
        .any(|r| r.contains("category 99 is not one of the 4")));
    assert!(reasons.iter().any(|r| r.contains("category \"purple\"")));
}

#[test]
fn iterations_are_chosen_checked_and_part_of_a_directory_job() {
    let env = Env::new();
    let early = "TD/models/native/xgb_early_stopping.json";
    let input = "TD/data/numeric_nan.parquet";
    // Every tree by default, with a warning that the file records an earlier best.
    env.run(&["score", "-m", early, "-i", input, "-o", "all.parquet", "-q"])
        .expect_code(0)
        .expect_stderr("records a best iteration")
        .expect_stderr("pass --iterations best");
    env.run(&["inspect", early])
        .expect_code(0)
        .expect_stdout("warning: the model records a best iteration");
    env.run(&["inspect", early, "--iterations", "best"])
        .expect_code(0)
        .expect_stdout(", scoring ");
    // LightGBM files record no best iteration; no model has 10,000 iterations.
    for (model, iterations, message) in [
        (
            "TD/models/native/lgbm_binary.txt",
            "best",
            "records no best iteration",
        ),
        (early, "10000", "--iterations 10000: the model has"),
        (
            "TD/models/native/xgb_gblinear_binary.json",
            "2",
            "this one is linear",
        ),
        ("TD/models/xgb_binary.onnx", "2", "is an ONNX model"),
    ] {
        env.run(&[
            "score",
            "-m",
            model,
            "-i",
            input,
            "-o",
            "x.parquet",
            "--iterations",
            iterations,
        ])
        .expect_code(3)
        .expect_stderr(message);
    }
    env.run(&[
        "score",
        "-m",
        early,
        "-i",
        input,
        "-o",
        "x.parquet",
        "--iterations",
        "0",
    ])
    .expect_code(2)
    .expect_stderr("not all, best or a number of iterations above 0");
    assert!(!env.path("x.parquet").exists());
    // A directory job records its iterations; a resume with others is refused.
    a_directory_job_records(&env, early, &["--iterations", "best"], "best");
}
