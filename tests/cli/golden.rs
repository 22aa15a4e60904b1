//! Golden tests: every prediction column equals onnxruntime's within the case's
//! tolerance (labels and other integer or string columns exactly).
//!
//! Tolerance: |batchinfer - onnxruntime| <= tol * max(1, |onnxruntime|), tol = 1e-5
//! (testdata/cases.json). Both engines compute in float32; the relative part
//! covers regressors whose outputs are far from 1, where float32 sums of the same
//! terms in another order differ in the last bits.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int64Type};
use serde_json::Value;

use super::harness::{read_parquet, testdata, Env};

struct Case {
    name: String,
    model: String,
    input: String,
    args: Vec<String>,
    expected: String,
    tolerance: f64,
}

/// Every case of a list in testdata/ (cases.json: ONNX models against
/// onnxruntime; native_cases.json: native models against their library).
pub fn all_cases(list: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(testdata().join(list))
        .unwrap_or_else(|e| panic!("testdata/{list}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("testdata/{list}: {e}"))
}

fn case(list: &str, name: &str) -> Case {
    let all = all_cases(list);
    let c = all
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name} in {list}"));
    Case {
        name: name.to_owned(),
        model: c["model"].as_str().expect("model").to_owned(),
        input: c["input"].as_str().expect("input").to_owned(),
        args: c["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("arg").to_owned())
            .collect(),
        expected: c["expected"].as_str().expect("expected").to_owned(),
        tolerance: c["tolerance"].as_f64().expect("tolerance"),
    }
}

fn as_f64(col: &dyn Array) -> Vec<Option<f64>> {
    match col.data_type() {
        DataType::Float32 => col
            .as_primitive::<Float32Type>()
            .iter()
            .map(|v| v.map(f64::from))
            .collect(),
        DataType::Float64 => col.as_primitive::<Float64Type>().iter().collect(),
        other => panic!("not a float column: {other}"),
    }
}

/// Compares every column of `expected` with the same column of `actual`.
pub fn assert_matches(actual: &RecordBatch, expected: &RecordBatch, tolerance: f64, what: &str) {
    assert_eq!(actual.num_rows(), expected.num_rows(), "{what}: row count");
    for field in expected.schema().fields() {
        let name = field.name();
        let a = actual.column_by_name(name).unwrap_or_else(|| {
            let names: Vec<String> = actual
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            panic!("{what}: output lacks column `{name}`; it has {names:?}")
        });
        let e = expected.column_by_name(name).expect("expected column");
        // Types exactly: labels int64 or string as the model says, scores float32.
        // (Utf8 and LargeUtf8 are both strings: pandas writes the latter.)
        let string = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8);
        assert!(
            a.data_type() == e.data_type() || (string(a.data_type()) && string(e.data_type())),
            "{what}: column `{name}` has type {}, the reference has {}",
            a.data_type(),
            e.data_type()
        );
        match e.data_type() {
            DataType::Float32 | DataType::Float64 => {
                let (av, ev) = (as_f64(a.as_ref()), as_f64(e.as_ref()));
                let mut worst = (0.0f64, 0usize);
                for (i, (x, y)) in av.iter().zip(&ev).enumerate() {
                    let (x, y) = (
                        x.expect("no null predictions"),
                        y.expect("no null references"),
                    );
                    // NaN both ways: a NaN where onnxruntime has a number, or a
                    // number where it has NaN, is a mismatch.
                    if x.is_nan() || y.is_nan() {
                        assert!(
                            x.is_nan() && y.is_nan(),
                            "{what}: `{name}` row {i}: batchinfer {x}, reference {y}"
                        );
                        continue;
                    }
                    let diff = (x - y).abs() / y.abs().max(1.0);
                    if diff > worst.0 {
                        worst = (diff, i);
                    }
                }
                let (diff, i) = worst;
                assert!(
                    diff <= tolerance,
                    "{what}: column `{name}` row {i}: batchinfer {:?}, reference {:?} (scaled difference {diff:e} > {tolerance:e})",
                    av[i],
                    ev[i]
                );
            }
            DataType::Int64 => {
                let (av, ev) = (a.as_primitive::<Int64Type>(), e.as_primitive::<Int64Type>());
                for i in 0..ev.len() {
                    assert_eq!(av.value(i), ev.value(i), "{what}: column `{name}` row {i}");
                }
            }
            DataType::Utf8 | DataType::LargeUtf8 => {
                let a = arrow::compute::cast(a, &DataType::Utf8).expect("string column");
                let e = arrow::compute::cast(e, &DataType::Utf8).expect("string column");
                let (av, ev) = (a.as_string::<i32>(), e.as_string::<i32>());
                for i in 0..ev.len() {
                    assert_eq!(av.value(i), ev.value(i), "{what}: column `{name}` row {i}");
                }
            }
            other => panic!("{what}: no comparison for expected type {other}"),
        }
    }
}

/// Scores a case of `list` with the given extra flags and compares with its
/// reference.
pub fn check_in(list: &str, name: &str, extra: &[&str]) {
    let c = case(list, name);
    let env = Env::new();
    let model = format!("TD/{}", c.model);
    let input = format!("TD/{}", c.input);
    let mut args: Vec<&str> = vec![
        "score",
        "--model",
        &model,
        "--input",
        &input,
        "--output",
        "out.parquet",
        "--keep",
        "id",
        "--quiet",
    ];
    args.extend(c.args.iter().map(String::as_str));
    args.extend(extra);
    env.run(&args).expect_code(0);
    let actual = read_parquet(&env.path("out.parquet"));
    let expected = read_parquet(&testdata().join(&c.expected));
    assert_matches(&actual, &expected, c.tolerance, &c.name);
}

fn check(name: &str) {
    check_in("cases.json", name, &[]);
}

macro_rules! golden {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*
        /// The cases with a test of their own.
        const LISTED: &[&str] = &[$(stringify!($name)),*];
    };
}

golden!(
    logreg_multiclass,
    logreg_multiclass_csv,
    logreg_binary,
    logreg_binary_strlabels,
    linreg,
    rf_binary,
    et_multiclass,
    rf_regressor,
    gb_regressor,
    gb_binary,
    gb_multiclass,
    hgb_binary_nan,
    hgb_regressor_nan,
    mlp_regressor,
    mlp_classifier,
    pipeline_mixed,
    pipeline_mixed_csv,
    xgb_binary,
    xgb_multiclass,
    xgb_regressor,
    lgbm_binary,
    lgbm_multiclass,
    lgbm_regressor,
    onnx_mlp,
    onnx_mlp_parts,
    rf_multiclass_strlabels,
    et_regressor,
    hgb_multiclass_nan,
    ridge,
    linear_svc_binary,
    linear_svc_multiclass,
    svc_linear_binary,
    svc_rbf_multiclass,
    svc_rbf_proba,
    svc_poly_binary_proba,
    svr_rbf,
    pipeline_int_categories,
    pipeline_ordinal_encoder,
    label_encoder_strings,
    label_encoders_opset4,
    label_encoder_opset1,
    category_mapper,
    feature_vectorizer,
    one_hot_rank3,
    catboost_binary,
    catboost_multiclass,
    catboost_regressor,
    normalizers,
    dense_layers,
    tree_ensemble_opset5,
    tree_ensemble_members,
    tree_ensemble_softmax,
    tree_ensemble_logistic,
    dictvectorizer_logreg,
    dictvectorizer_logreg_struct,
    dictvectorizer_int_keys_forest,
    castmap_sparse_float,
    castmap_sparse_int64,
);

#[test]
fn every_case_in_cases_json_has_a_test() {
    let all = all_cases("cases.json");
    assert!(all.len() >= 40, "cases.json lists {} cases", all.len());
    for c in &all {
        let name = c["name"].as_str().expect("name");
        assert!(
            LISTED.contains(&name),
            "testdata/cases.json has case `{name}` but tests/cli/golden.rs does not run it: add it to golden!(…)"
        );
    }
}

#[test]
fn a_model_with_an_operator_nobody_runs_is_refused_before_scoring() {
    let env = Env::new();
    env.run(&[
        "score",
        "-m",
        "TD/models/unsupported_tfidf.onnx",
        "-i",
        "TD/data/numeric.parquet",
        "-o",
        "out.parquet",
        "-q",
    ])
    .expect_code(3)
    .expect_stderr("uses operators batchinfer cannot run yet: TfIdfVectorizer");
    assert!(env.files().is_empty());
}

#[test]
fn rows_are_identical_whatever_the_threads_and_batch_size() {
    let features = ["--features", "f0,f1,f2,f3,f4,f5,f6,f7"];
    for (name, mapping) in [("rf_binary", &features[..]), ("pipeline_mixed", &[][..])] {
        let c = case("cases.json", name);
        let env = Env::new();
        let model = format!("TD/{}", c.model);
        let input = format!("TD/{}", c.input);
        let one = [
            "--threads",
            "1",
            "--batch-size",
            "1000000",
            "--output",
            "one.parquet",
        ];
        let many = [
            "--threads",
            "2",
            "--batch-size",
            "7",
            "--output",
            "many.parquet",
        ];
        for extra in [one, many] {
            let mut args = vec![
                "score",
                "--model",
                &model,
                "--input",
                &input,
                "--keep-all",
                "--quiet",
            ];
            args.extend(extra);
            args.extend(mapping);
            env.run(&args).expect_code(0);
        }
        let (a, b) = (
            read_parquet(&env.path("one.parquet")),
            read_parquet(&env.path("many.parquet")),
        );
        assert_eq!(a, b, "{name}: outputs differ between --threads 1 --batch-size 1000000 and --threads 2 --batch-size 7");
        // And both are the onnxruntime answer.
        assert_matches(
            &b,
            &read_parquet(&testdata().join(&c.expected)),
            c.tolerance,
            name,
        );
    }
}
