//! Models in the training libraries' own formats (XGBoost JSON and UBJSON,
//! LightGBM text), recognised from their content
//! and translated into the ONNX-ML graph the rest of `model` runs (`forest`), so
//! that a native model is inspected, compiled, scored and hashed like an ONNX one.
//!
//! Contract: [`detect`] names the format of a model file's bytes (or refuses, with
//! how to re-save the model); [`translate`] turns a native file into an ONNX
//! [`pb::ModelProto`] whose single input `input` is `[N, F]` float32, and the
//! feature names the file stores (the mapping feeds columns by them).

pub mod forest;
pub mod lightgbm;
pub mod linear;
mod proto;
pub mod ubjson;
pub mod xgboost;

use std::sync::Arc;

use anyhow::{Context, Result};
use tract_onnx::pb;

use super::categories::Vocabulary;

/// What a model file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Onnx,
    XgboostJson,
    XgboostUbj,
    LightgbmText,
}

impl Format {
    /// The `producer_name` of the graph a native file becomes.
    fn producer(self) -> &'static str {
        match self {
            Format::XgboostJson | Format::XgboostUbj => "batchinfer-xgboost",
            Format::LightgbmText => "batchinfer-lightgbm",
            Format::Onnx => "onnx",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Onnx => "ONNX",
            Format::XgboostJson => "XGBoost JSON",
            Format::XgboostUbj => "XGBoost UBJSON",
            Format::LightgbmText => "LightGBM text",
        }
    }
}

/// The format of a model file, from its first bytes. Files batchinfer knows but
/// cannot read (pickles, XGBoost's old binary format) are refused with how to
/// save them in a format it reads.
pub fn detect(bytes: &[u8]) -> Result<Format, String> {
    let text_start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &bytes[i..]);
    if text_start.first() == Some(&b'{') {
        // JSON: `{` then whitespace or a quoted key; UBJSON: `{` then a type marker.
        return match text_start.get(1) {
            Some(b'"' | b' ' | b'\n' | b'\r' | b'\t' | b'}') => Ok(Format::XgboostJson),
            Some(b'i' | b'U' | b'I' | b'l' | b'L' | b'#' | b'$' | b'N') => Ok(Format::XgboostUbj),
            _ => Err("it starts like JSON but is not".into()),
        };
    }
    if bytes.starts_with(b"tree\n") || bytes.starts_with(b"tree\r\n") {
        return Ok(Format::LightgbmText);
    }
    if bytes.first() == Some(&0x80) && bytes.get(1).is_some_and(|v| (2..=5).contains(v)) {
        return Err(
            "it is a Python pickle (joblib or pickle.dump). batchinfer does not run pickles: save an XGBoost model with booster.save_model(\"model.json\"), or export the model to ONNX (skl2onnx, onnxmltools)"
                .into(),
        );
    }
    if bytes.starts_with(b"binf") || bytes.starts_with(b"bs64") {
        return Err(
            "it is an XGBoost model in the old binary format, which XGBoost itself no longer writes. Load it with XGBoost and save it again with booster.save_model(\"model.json\")"
                .into(),
        );
    }
    Ok(Format::Onnx)
}

/// What a native file holds.
pub enum Body {
    Forest(forest::Forest),
    Linear(linear::Linear),
}

impl Body {
    fn n_features(&self) -> usize {
        match self {
            Body::Forest(f) => f.n_features,
            Body::Linear(l) => l.n_features,
        }
    }

    /// The graph gives the margins (`--raw-score`).
    fn give_margins(&mut self) {
        match self {
            Body::Forest(f) => f.head = forest::Head::Margin,
            Body::Linear(l) => l.head = forest::Head::Margin,
        }
    }

    fn to_onnx(&self, producer: &str) -> pb::ModelProto {
        match self {
            Body::Forest(f) => f.to_onnx(producer),
            Body::Linear(l) => l.to_onnx(producer),
        }
    }
}

/// Which of a native model's boosting iterations score (`--iterations`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Iterations {
    /// Every tree in the file (XGBoost's `Booster.predict`, LightGBM's `predict`).
    #[default]
    All,
    /// Up to the best iteration the file records (XGBoost's early stopping; what
    /// its scikit-learn estimators predict with).
    Best,
    /// The first N iterations.
    First(usize),
}

impl Iterations {
    pub fn parse(s: &str) -> Result<Iterations, String> {
        match s.trim() {
            "all" => Ok(Iterations::All),
            "best" => Ok(Iterations::Best),
            n => match n.parse::<usize>() {
                Ok(k) if k > 0 => Ok(Iterations::First(k)),
                _ => Err(format!(
                    "`{s}` is not all, best or a number of iterations above 0"
                )),
            },
        }
    }
}

impl std::fmt::Display for Iterations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Iterations::All => f.write_str("all"),
            Iterations::Best => f.write_str("best"),
            Iterations::First(n) => write!(f, "{n}"),
        }
    }
}

/// How a native file is scored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// The graph gives the margins (`--raw-score`).
    pub raw_score: bool,
    pub iterations: Iterations,
}

impl Options {
    /// Whether these are the defaults, which ONNX models take too.
    pub fn is_default(&self) -> bool {
        *self == Options::default()
    }
}

/// What a reader makes of a native file.
pub struct Model {
    pub body: Body,
    /// For a forest: the number of trees at the end of each iteration, and the
    /// best iteration (0-based) where the file records one.
    pub iterations: Vec<usize>,
    pub best: Option<usize>,
    /// Empty when the model was trained without names.
    pub feature_names: Vec<String>,
    /// The categories of each categorical feature the file lists them for (by
    /// feature index); empty when it lists none.
    pub categories: Vec<(usize, Vocabulary)>,
    /// "XGBoost 3.2.0 model: objective binary:logistic, …": what `inspect` shows.
    pub description: String,
}

/// A native model translated.
pub struct Translated {
    pub proto: pb::ModelProto,
    /// What the run should say before scoring (a best iteration not used).
    pub warnings: Vec<String>,
    pub feature_names: Vec<String>,
    /// One entry per feature (`None` for most), or empty.
    pub categories: Vec<Option<Arc<Vocabulary>>>,
    pub description: String,
}

/// Translates a native model file (not ONNX), as `options` say.
pub fn translate(format: Format, bytes: &[u8], options: Options) -> Result<Translated> {
    let mut model = match format {
        Format::XgboostJson => xgboost::read(&serde_json::from_slice(bytes)?)?,
        Format::XgboostUbj => xgboost::read(&ubjson::parse(bytes)?)?,
        Format::LightgbmText => {
            lightgbm::read(std::str::from_utf8(bytes).context("the file is not UTF-8 text")?)?
        }
        Format::Onnx => anyhow::bail!("an ONNX model is not translated"),
    };
    let warnings = select_iterations(&mut model, options.iterations)?;
    if options.raw_score {
        model.body.give_margins();
    }
    let mut categories = vec![];
    if !model.categories.is_empty() {
        categories = vec![None; model.body.n_features()];
        for (feature, v) in model.categories {
            categories[feature] = Some(Arc::new(v));
        }
    }
    Ok(Translated {
        proto: model.body.to_onnx(format.producer()),
        feature_names: model.feature_names,
        categories,
        description: model.description,
        warnings,
    })
}

/// Keeps the trees of the iterations `which` says; returns a warning when every
/// tree is scored but the file records an earlier best iteration.
fn select_iterations(model: &mut Model, which: Iterations) -> Result<Vec<String>> {
    if which != Iterations::All && matches!(model.body, Body::Linear(_)) {
        anyhow::bail!("--iterations applies to tree models; this one is linear");
    }
    let total = model.iterations.len();
    let keep = match (which, model.best) {
        (Iterations::All, Some(best)) if best + 1 < total => {
            return Ok(vec![format!(
                "the model records a best iteration ({} of {total}, from early stopping) and every tree is scored, as Booster.predict does; XGBoost's scikit-learn estimators predict with the best iteration: pass --iterations best for that",
                best + 1
            )]);
        }
        (Iterations::All, _) => return Ok(vec![]),
        (Iterations::Best, Some(best)) => best + 1,
        (Iterations::Best, None) => anyhow::bail!(
            "--iterations best: the file records no best iteration (XGBoost records one when trained with early stopping; LightGBM's save_model writes the trees up to it, so score it with --iterations all)"
        ),
        (Iterations::First(n), _) => {
            anyhow::ensure!(
                n <= total,
                "--iterations {n}: the model has {total} iteration{}",
                if total == 1 { "" } else { "s" }
            );
            n
        }
    };
    if let Body::Forest(forest) = &mut model.body {
        forest.trees.truncate(model.iterations[keep - 1]);
    }
    model.description += &format!(", scoring {keep} of {total} iterations");
    Ok(vec![])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_apart_by_their_first_bytes() {
        assert_eq!(detect(b"{\"learner\": {}}"), Ok(Format::XgboostJson));
        assert_eq!(detect(b"  {\n  \"learner\""), Ok(Format::XgboostJson));
        assert_eq!(
            detect(b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner"),
            Ok(Format::XgboostUbj)
        );
        assert_eq!(detect(b"\x08\x07\x12\x08skl2onnx"), Ok(Format::Onnx));
        assert_eq!(detect(b"tree\nversion=v4\n"), Ok(Format::LightgbmText));
        assert!(detect(b"\x80\x04\x95").unwrap_err().contains("pickle"));
        assert!(detect(b"binf\x00\x00").unwrap_err().contains("save_model"));
    }
}
