//! batchinfer's ONNX-ML layer: the ai.onnx.ml operators tract 0.23.9 lacks or gets
//! wrong, registered into tract's ONNX parser so users never re-export a model.

mod classes;
mod dot;
pub mod kernel;
mod label_encoder;
mod linear;
mod preprocess;
mod svm;
mod trees;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

pub use classes::Labels;
pub use preprocess::zipmap_labels;

use kernel::inference_op;

/// The op types batchinfer implements itself (they replace tract's where both exist).
pub const OWN_OPS: &[&str] = &[
    "ArrayFeatureExtractor",
    "Binarizer",
    "CategoryMapper",
    "FeatureVectorizer",
    "Imputer",
    "LabelEncoder",
    "LinearClassifier",
    "Normalizer",
    "OneHotEncoder",
    "Scaler",
    "SVMClassifier",
    "SVMRegressor",
    "TreeEnsemble",
    "TreeEnsembleClassifier",
    "TreeEnsembleRegressor",
    "ZipMap",
];

type Built = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

fn tree_classifier(_: &ParsingContext, node: &NodeProto) -> Built {
    Ok((inference_op(trees::classifier(node)?), vec![]))
}
fn tree_regressor(_: &ParsingContext, node: &NodeProto) -> Built {
    Ok((inference_op(trees::regressor(node)?), vec![]))
}
fn tree_ensemble(ctx: &ParsingContext, node: &NodeProto) -> Built {
    Ok((inference_op(trees::tree_ensemble(ctx, node)?), vec![]))
}
fn category_mapper(_: &ParsingContext, node: &NodeProto) -> Built {
    Ok((inference_op(label_encoder::category_mapper(node)?), vec![]))
}
fn feature_vectorizer(_: &ParsingContext, node: &NodeProto) -> Built {
    Ok((inference_op(preprocess::feature_vectorizer(node)?), vec![]))
}
fn label_encoder(ctx: &ParsingContext, node: &NodeProto) -> Built {
    Ok((
        inference_op(label_encoder::label_encoder(ctx, node)?),
        vec![],
    ))
}
fn linear_classifier(_: &ParsingContext, node: &NodeProto) -> Built {
    Ok((inference_op(linear::linear_classifier(node)?), vec![]))
}
fn svm_classifier(_: &ParsingContext, node: &NodeProto) -> Built {
    Ok((inference_op(svm::classifier(node)?), vec![]))
}
fn svm_regressor(_: &ParsingContext, node: &NodeProto) -> Built {
    Ok((inference_op(svm::regressor(node)?), vec![]))
}
fn zipmap(_: &ParsingContext, _node: &NodeProto) -> Built {
    Ok((inference_op(preprocess::ZipMap), vec![]))
}
fn scaler(_: &ParsingContext, node: &NodeProto) -> Built {
    Ok((inference_op(preprocess::scaler(node)?), vec![]))
}
fn imputer(_: &ParsingContext, node: &NodeProto) -> Built {
    Ok((inference_op(preprocess::imputer(node)?), vec![]))
}
fn one_hot_encoder(_: &ParsingContext, node: &NodeProto) -> Built {
    Ok((inference_op(preprocess::one_hot_encoder(node)?), vec![]))
}
fn array_feature_extractor(_: &ParsingContext, _node: &NodeProto) -> Built {
    Ok((inference_op(preprocess::ArrayFeatureExtractor), vec![]))
}
fn normalizer(_: &ParsingContext, node: &NodeProto) -> Built {
    Ok((inference_op(preprocess::normalizer(node)?), vec![]))
}
fn binarizer(_: &ParsingContext, node: &NodeProto) -> Built {
    Ok((inference_op(preprocess::binarizer(node)?), vec![]))
}

/// Inserts batchinfer's builders, replacing tract's for the same op types.
pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("TreeEnsembleClassifier", tree_classifier);
    reg.insert("TreeEnsembleRegressor", tree_regressor);
    reg.insert("TreeEnsemble", tree_ensemble);
    reg.insert("LabelEncoder", label_encoder);
    reg.insert("CategoryMapper", category_mapper);
    reg.insert("FeatureVectorizer", feature_vectorizer);
    reg.insert("LinearClassifier", linear_classifier);
    reg.insert("SVMClassifier", svm_classifier);
    reg.insert("SVMRegressor", svm_regressor);
    reg.insert("ZipMap", zipmap);
    reg.insert("Scaler", scaler);
    reg.insert("Imputer", imputer);
    reg.insert("OneHotEncoder", one_hot_encoder);
    reg.insert("ArrayFeatureExtractor", array_feature_extractor);
    reg.insert("Binarizer", binarizer);
    reg.insert("Normalizer", normalizer);
}
