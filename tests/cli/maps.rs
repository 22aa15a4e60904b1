//! Map inputs (`DictVectorizer`, `CastMap`) fed by Arrow map and struct columns:
//! the golden cases are in golden.rs; here, the bad rows, the mapping rule that
//! picks the one map column, and the refusals.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float32Builder, Int64Array, MapBuilder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema};

use super::golden::assert_matches;
use super::harness::{ids, read_parquet, testdata, write_parquet, Env};

const DICT: &str = "TD/models/dictvectorizer_logreg.onnx";

/// `id` and a `features` map column: row 1 a null map, row 2 a repeated key.
fn with_bad_maps(env: &Env) {
    let mut b = MapBuilder::new(None, StringBuilder::new(), Float32Builder::new());
    let rows: [Option<&[(&str, f32)]>; 4] = [
        Some(&[("a", 1.0), ("c", -0.5)]),
        None,
        Some(&[("a", 1.0), ("b", 2.0), ("a", 3.0)]),
        Some(&[("b", 2.0)]),
    ];
    for row in rows {
        match row {
            Some(entries) => {
                for (k, v) in entries {
                    b.keys().append_value(k);
                    b.values().append_value(*v);
                }
                b.append(true).unwrap();
            }
            None => b.append(false).unwrap(),
        }
    }
    let features: ArrayRef = Arc::new(b.finish());
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("features", features.data_type().clone(), true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(Int64Array::from(vec![0, 1, 2, 3])), features],
    )
    .unwrap();
    write_parquet(&env.path("bad.parquet"), [batch], None);
}

#[test]
fn a_null_map_or_a_repeated_key_is_a_bad_row() {
    let env = Env::new();
    with_bad_maps(&env);
    env.run(&[
        "score",
        "-m",
        DICT,
        "-i",
        "bad.parquet",
        "-o",
        "out.parquet",
        "-q",
    ])
    .expect_code(4)
    .expect_stderr(
        "row 1 (0-based, header excluded), column `features`: null where the model takes a map",
    );
    assert!(!env.path("out.parquet").exists());

    env.run(&[
        "score",
        "-m",
        DICT,
        "-i",
        "bad.parquet",
        "-o",
        "out.parquet",
        "--keep",
        "id",
        "--on-error",
        "skip",
        "-q",
    ])
    .expect_code(0)
    .expect_stderr("4 read, 2 scored, 2 rejected");
    assert_eq!(ids(&read_parquet(&env.path("out.parquet"))), vec![0, 3]);
    let errors = read_parquet(&env.path("out.errors.parquet"));
    assert_eq!(ids(&errors), vec![1, 2]);
    let reasons: Vec<&str> = errors
        .column_by_name("_reason")
        .expect("_reason")
        .as_string::<i32>()
        .iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(
        reasons,
        vec![
            "null where the model takes a map",
            "key a appears twice in the map"
        ]
    );
}

#[test]
fn the_one_map_column_feeds_a_map_input_of_another_name() {
    let env = Env::new();
    // maps.parquet's `features` alone, renamed: no column is named like the input.
    let source = read_parquet(&testdata().join("data/maps.parquet"));
    let features = source.column_by_name("features").unwrap().clone();
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("tags", features.data_type().clone(), true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![source.column_by_name("id").unwrap().clone(), features],
    )
    .unwrap();
    write_parquet(&env.path("tags.parquet"), [batch], None);
    env.run(&["inspect", DICT, "-i", "tags.parquet"])
        .expect_code(0)
        .expect_stdout("features map(string, float32) by DictVectorizer over 6 keys (a, b, c, d, …) → float32 [N, 6]")
        .expect_stdout("← 1 column(s) by the only map or struct column")
        .expect_stdout("tags (Map(");
    env.run(&[
        "score",
        "-m",
        DICT,
        "-i",
        "tags.parquet",
        "-o",
        "out.parquet",
        "--keep",
        "id",
        "-q",
    ])
    .expect_code(0);
    let expected = read_parquet(&testdata().join("expected/dictvectorizer_logreg.parquet"));
    assert_matches(
        &read_parquet(&env.path("out.parquet")),
        &expected,
        1e-5,
        "renamed map column",
    );
}

#[test]
fn columns_that_cannot_feed_a_map_input_are_refused_before_scoring() {
    let env = Env::new();
    let maps = "TD/data/maps.parquet";
    for (column, why) in [
        ("counts", "the model's map keys are strings"),
        ("id", "a map input is fed by one map or struct column"),
    ] {
        let map = format!("features={column}");
        env.run(&[
            "score",
            "-m",
            DICT,
            "-i",
            maps,
            "-o",
            "out.parquet",
            "--input-map",
            &map,
            "-q",
        ])
        .expect_code(3)
        .expect_stderr(why);
    }
    // A table without a map or struct column: the mapping says what the input needs.
    env.run(&[
        "score",
        "-m",
        DICT,
        "-i",
        "TD/data/mixed.parquet",
        "-o",
        "out.parquet",
        "-q",
    ])
    .expect_code(3)
    .expect_stderr("model input `features` needs map or struct columns and the input has none");
    assert!(env.files().is_empty());
}

#[test]
fn a_cast_map_as_wide_as_each_map_is_refused_by_name() {
    let env = Env::new();
    env.run(&[
        "score",
        "-m",
        "TD/models/castmap_dense.onnx",
        "-i",
        "TD/data/maps.parquet",
        "-o",
        "out.parquet",
        "-q",
    ])
    .expect_code(3)
    .expect_stderr("input `counts` cannot be fed: its CastMap has map_form DENSE");
    assert!(env.files().is_empty());
}
