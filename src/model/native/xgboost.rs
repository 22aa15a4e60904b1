//! XGBoost's own model files (`booster.save_model("model.json")` or `"model.ubj"`,
//! XGBoost ≥ 1.0), read into a [`Forest`] with XGBoost's prediction rules:
//! - a split sends `x` left when `x < split_condition` (both float32), a missing
//!   value where `default_left` says;
//! - the margin of each output starts at `base_score` mapped into margin space by
//!   the objective (logit for `binary:logistic` and `reg:logistic`, log for the
//!   exponential objectives, as it is for the others), a vector `base_score`
//!   (XGBoost 3) giving one start per output;
//! - tree `t` adds to output `tree_info[t]` (class or target), or, for
//!   multi-output trees, to every output; `dart` scales each tree by its
//!   `weight_drop`;
//! - every tree is used (as `Booster.predict` does without `iteration_range`).

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use super::forest::{Forest, Head, Link, Node, Tree};
use super::linear::Linear;
use super::{Body, Model};
use crate::model::categories::{Names, Unseen, Vocabulary};

/// How an objective turns margins into predictions.
fn objective(name: &str) -> Result<(Head, Margin)> {
    Ok(match name {
        "binary:logistic" => (Head::Binary, Margin::Logit),
        "binary:logitraw" => (Head::Regression(Link::Identity), Margin::Identity),
        "binary:hinge" => (Head::Hinge, Margin::Identity),
        "reg:logistic" => (Head::Regression(Link::Sigmoid), Margin::Logit),
        "multi:softprob" | "multi:softmax" => (Head::Multiclass, Margin::Identity),
        "reg:squarederror"
        | "reg:linear"
        | "reg:squaredlogerror"
        | "reg:pseudohubererror"
        | "reg:absoluteerror"
        | "reg:quantileerror" => (Head::Regression(Link::Identity), Margin::Identity),
        "count:poisson" | "reg:gamma" | "reg:tweedie" | "survival:cox" | "survival:aft" => {
            (Head::Regression(Link::Exp), Margin::Log)
        }
        n if n.starts_with("rank:") => (Head::Regression(Link::Identity), Margin::Identity),
        other => bail!("XGBoost objective `{other}` is not supported by batchinfer yet"),
    })
}

/// How `base_score` maps into margin space.
#[derive(Clone, Copy)]
enum Margin {
    Identity,
    Logit,
    Log,
}

impl Margin {
    fn of(self, p: f64) -> f64 {
        match self {
            Margin::Identity => p,
            Margin::Logit => -(1.0 / p - 1.0).ln(),
            Margin::Log => p.ln(),
        }
    }
}

fn field<'a>(v: &'a Value, path: &[&str]) -> Result<&'a Value> {
    let mut v = v;
    for (i, key) in path.iter().enumerate() {
        v = v
            .get(key)
            .with_context(|| format!("the model has no `{}`", path[..=i].join(".")))?;
    }
    Ok(v)
}

/// A parameter XGBoost stores as a string ("4", "1E0") or a number.
fn param(v: &Value, path: &[&str]) -> Result<f64> {
    let p = field(v, path)?;
    match p {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .with_context(|| format!("`{}` is not a number: {p}", path.join(".")))
}

fn count(v: &Value, path: &[&str]) -> Result<usize> {
    let x = param(v, path)?;
    ensure!(
        x >= 0.0 && x.fract() == 0.0 && x < 1e9,
        "`{}` is not a count: {x}",
        path.join(".")
    );
    Ok(x as usize)
}

fn numbers(tree: &Value, key: &str) -> Result<Vec<f64>> {
    let list = tree
        .get(key)
        .and_then(Value::as_array)
        .with_context(|| format!("a tree has no list `{key}`"))?;
    list.iter()
        .map(|x| match x {
            Value::Number(n) => n.as_f64(),
            Value::Bool(b) => Some(*b as u8 as f64),
            _ => None,
        })
        .collect::<Option<Vec<f64>>>()
        .with_context(|| format!("a tree's `{key}` holds a value that is not a number"))
}

/// `base_score`: "5E-1" (XGBoost < 3) or "[4.6E-1]", "[1.5E-2,1.1E-1,-1.3E-1]".
fn base_score(text: &str) -> Result<Vec<f64>> {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<f64>()
                .with_context(|| format!("base_score {text:?} is not a number or a list of them"))
        })
        .collect()
}

/// Reads a model parsed from JSON or UBJSON.
pub fn read(root: &Value) -> Result<Model> {
    let learner = field(root, &["learner"])?;
    let version: Vec<String> = root
        .get("version")
        .and_then(Value::as_array)
        .map(|v| v.iter().map(|x| x.to_string()).collect())
        .unwrap_or_default();
    let objective_name = field(learner, &["objective", "name"])?
        .as_str()
        .context("`learner.objective.name` is not a string")?;
    let (head, margin) = objective(objective_name)?;
    let n_features = count(learner, &["learner_model_param", "num_feature"])?;
    let n_class = count(learner, &["learner_model_param", "num_class"])?;
    let n_target = learner
        .get("learner_model_param")
        .and_then(|p| p.get("num_target"))
        .map(|_| count(learner, &["learner_model_param", "num_target"]))
        .transpose()?
        .unwrap_or(1);
    let n_outputs = match head {
        Head::Multiclass => n_class,
        _ => n_target.max(1),
    };
    ensure!(
        n_outputs > 0,
        "the model has num_class 0 for a multi-class objective"
    );
    let base = base_margins(learner, margin, n_outputs, objective_name)?;
    let booster = field(learner, &["gradient_booster"])?;
    let booster_name = field(booster, &["name"])?.as_str().unwrap_or("");
    let model_json = match booster_name {
        "dart" => field(booster, &["gbtree", "model"])?,
        _ => field(booster, &["model"])?,
    };
    let categories = match model_json.get("cats") {
        Some(cats) => category_names(cats, n_features)?,
        None => vec![],
    };
    let feature_names: Vec<String> = learner
        .get("feature_names")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        feature_names.is_empty() || feature_names.len() == n_features,
        "the model names {} features and reads {n_features}",
        feature_names.len()
    );
    let (body, parts) = if booster_name == "gblinear" {
        let linear = linear_model(model_json, n_features, n_outputs, base, head)?;
        (Body::Linear(linear), "linear".to_owned())
    } else {
        let trees = boosted_trees(booster, booster_name, n_outputs)?;
        let forest = forest(trees, n_features, base, head)?;
        let trees = format!("{} trees", forest.trees.len());
        (Body::Forest(forest), trees)
    };
    let description = format!(
        "XGBoost {} model: objective {objective_name}, booster {booster_name}, {parts}, {n_features} features, {n_outputs} output{}",
        version.join("."),
        if n_outputs == 1 { "" } else { "s" }
    );
    let (iterations, best) = match &body {
        Body::Forest(f) => iteration_ends(learner, model_json, f.trees.len())?,
        Body::Linear(_) => (vec![], None),
    };
    Ok(Model {
        body,
        iterations,
        best,
        categories,
        feature_names,
        description,
    })
}

/// The number of trees at the end of each boosting iteration
/// (`iteration_indptr`, or from the trees per iteration in older files), and the
/// best iteration early stopping recorded (`best_iteration`).
fn iteration_ends(
    learner: &Value,
    model: &Value,
    n_trees: usize,
) -> Result<(Vec<usize>, Option<usize>)> {
    let ends: Vec<usize> = match numbers(model, "iteration_indptr") {
        Ok(indptr) => indptr.iter().skip(1).map(|&v| v as usize).collect(),
        Err(_) => {
            let groups: std::collections::BTreeSet<u64> = numbers(model, "tree_info")?
                .iter()
                .map(|&g| g as u64)
                .collect();
            let parallel = count(model, &["gbtree_model_param", "num_parallel_tree"]).unwrap_or(1);
            let per = (groups.len() * parallel).max(1);
            (1..=n_trees.div_ceil(per))
                .map(|i| (i * per).min(n_trees))
                .collect()
        }
    };
    ensure!(
        ends.last() == Some(&n_trees) || n_trees == 0,
        "iteration_indptr ends at {:?} for {n_trees} trees",
        ends.last()
    );
    let best = match learner
        .get("attributes")
        .and_then(|a| a.get("best_iteration"))
    {
        Some(_) => Some(count(learner, &["attributes", "best_iteration"])?),
        None => None,
    };
    Ok((ends, best))
}

fn forest(trees: Vec<Tree>, n_features: usize, base: Vec<f32>, head: Head) -> Result<Forest> {
    let forest = Forest {
        n_features,
        trees,
        base,
        head,
        inclusive: false,
        scale: 1.0,
        category_rule: "xgboost",
    };
    forest.check()?;
    Ok(forest)
}

/// A `gblinear` booster: `weights` holds the `[features, outputs]` matrix row by
/// row, then one bias per output. XGBoost starts every output's margin at the
/// first output's base score.
fn linear_model(
    model: &Value,
    n_features: usize,
    n_outputs: usize,
    base: Vec<f32>,
    head: Head,
) -> Result<Linear> {
    let weights = numbers(model, "weights")?;
    ensure!(
        weights.len() == (n_features + 1) * n_outputs,
        "the linear booster has {} weights for {n_features} features and {n_outputs} outputs",
        weights.len()
    );
    let (w, b) = weights.split_at(n_features * n_outputs);
    let linear = Linear {
        n_features,
        weights: w.iter().map(|&v| v as f32).collect(),
        bias: b.iter().map(|&v| (v + base[0] as f64) as f32).collect(),
        head,
    };
    linear.check()?;
    Ok(linear)
}

/// The starting margin of each output.
fn base_margins(
    learner: &Value,
    margin: Margin,
    n_outputs: usize,
    objective_name: &str,
) -> Result<Vec<f32>> {
    let score = field(learner, &["learner_model_param", "base_score"])?;
    let score = match score {
        Value::String(s) => base_score(s)?,
        Value::Number(n) => vec![n.as_f64().context("base_score")?],
        other => bail!("base_score is not a number: {other}"),
    };
    let base: Vec<f32> = match score.len() {
        1 => vec![margin.of(score[0]) as f32; n_outputs],
        n if n == n_outputs => score.iter().map(|&p| margin.of(p) as f32).collect(),
        n => bail!("base_score has {n} values for a model of {n_outputs} outputs"),
    };
    ensure!(
        base.iter().all(|b| b.is_finite()),
        "base_score {score:?} has no margin under objective {objective_name}"
    );
    Ok(base)
}

/// The trees of a `gbtree` or `dart` booster, dart trees scaled by their weights.
fn boosted_trees(booster: &Value, booster_name: &str, n_outputs: usize) -> Result<Vec<Tree>> {
    let (model, weights) = match booster_name {
        "gbtree" => (field(booster, &["model"])?, None),
        "dart" => {
            let w = booster
                .get("weight_drop")
                .and_then(Value::as_array)
                .context("a dart booster has no `weight_drop`")?
                .iter()
                .map(Value::as_f64)
                .collect::<Option<Vec<f64>>>()
                .context("`weight_drop` holds a value that is not a number")?;
            (field(booster, &["gbtree", "model"])?, Some(w))
        }
        other => bail!("XGBoost booster `{other}` is not supported by batchinfer"),
    };
    let trees_json = field(model, &["trees"])?
        .as_array()
        .context("`trees` is not a list")?;
    let tree_info: Vec<f64> = numbers(model, "tree_info")?;
    ensure!(
        tree_info.len() == trees_json.len(),
        "the model lists {} trees and {} tree_info entries",
        trees_json.len(),
        tree_info.len()
    );
    if let Some(w) = &weights {
        ensure!(
            w.len() == trees_json.len(),
            "the dart booster has {} trees and {} weights",
            trees_json.len(),
            w.len()
        );
    }
    let mut trees = Vec::with_capacity(trees_json.len());
    for (t, tree) in trees_json.iter().enumerate() {
        let scale = weights.as_ref().map_or(1.0, |w| w[t]);
        let group = tree_info[t] as usize;
        let tree = read_tree(tree, group, scale, n_outputs).with_context(|| format!("tree {t}"))?;
        trees.push(tree);
    }
    Ok(trees)
}

/// How many values each leaf holds, and for multi-output trees (more than one)
/// each leaf's vector, in `leaf_weights`, leaves in node order.
fn leaf_vectors(tree: &Value, n_outputs: usize) -> Result<(usize, Option<Vec<f64>>)> {
    let leaf_size = tree
        .get("tree_param")
        .map(|_| count(tree, &["tree_param", "size_leaf_vector"]))
        .transpose()?
        .unwrap_or(1)
        .max(1);
    let leaf_vectors = if leaf_size > 1 {
        ensure!(
            leaf_size == n_outputs,
            "leaves hold {leaf_size} values for a model of {n_outputs} outputs"
        );
        Some(numbers(tree, "leaf_weights")?)
    } else {
        None
    };
    Ok((leaf_size, leaf_vectors))
}

fn read_tree(tree: &Value, group: usize, scale: f64, n_outputs: usize) -> Result<Tree> {
    let left = numbers(tree, "left_children")?;
    let right = numbers(tree, "right_children")?;
    let feature = numbers(tree, "split_indices")?;
    let condition = numbers(tree, "split_conditions")?;
    let default_left = numbers(tree, "default_left")?;
    let n = left.len();
    for (key, len) in [
        ("right_children", right.len()),
        ("split_indices", feature.len()),
        ("split_conditions", condition.len()),
        ("default_left", default_left.len()),
    ] {
        ensure!(len == n, "{key} has {len} entries for {n} nodes");
    }
    let sets = category_sets(tree, n)?;
    let (leaf_size, leaf_vectors) = leaf_vectors(tree, n_outputs)?;
    let mut nodes = Vec::with_capacity(n);
    let mut leaf_ordinal = 0;
    for i in 0..n {
        if left[i] < 0.0 {
            let (first, values) = match &leaf_vectors {
                None => {
                    ensure!(
                        group < n_outputs,
                        "the tree adds to output {group} of {n_outputs}"
                    );
                    (group, vec![(condition[i] * scale) as f32])
                }
                Some(w) => {
                    let at = leaf_ordinal * leaf_size;
                    ensure!(
                        at + leaf_size <= w.len(),
                        "leaf_weights is shorter than the leaves"
                    );
                    (
                        0,
                        w[at..at + leaf_size]
                            .iter()
                            .map(|v| (v * scale) as f32)
                            .collect(),
                    )
                }
            };
            leaf_ordinal += 1;
            nodes.push(Node::Leaf {
                first,
                values,
                linear: None,
            });
        } else {
            let child = |c: f64| -> Result<usize> {
                ensure!(
                    c >= 0.0 && (c as usize) < n,
                    "a child index {c} is out of range"
                );
                Ok(c as usize)
            };
            if let Some(set) = sets.get(&i) {
                // XGBoost sends the categories of the set right, the others left.
                nodes.push(Node::In {
                    feature: feature[i] as usize,
                    set: set.clone(),
                    member: child(right[i])?,
                    other: child(left[i])?,
                    missing_member: default_left[i] == 0.0,
                });
                continue;
            }
            nodes.push(Node::Less {
                feature: feature[i] as usize,
                threshold: condition[i] as f32,
                left: child(left[i])?,
                right: child(right[i])?,
                missing_left: default_left[i] != 0.0,
                zero_missing: false,
            });
        }
    }
    Ok(Tree { nodes })
}

/// The categories XGBoost (≥ 3.1) stores for the features it was trained on as
/// pandas categories (`cats.enc`, one entry per feature: empty, strings as UTF-8
/// bytes cut at `offsets`, or numbers); a category's code is its position. XGBoost
/// refuses a category it was not trained with, so an unseen one is a bad row.
fn category_names(cats: &Value, n_features: usize) -> Result<Vec<(usize, Vocabulary)>> {
    let Some(enc) = cats.get("enc").and_then(Value::as_array) else {
        return Ok(vec![]);
    };
    ensure!(
        enc.is_empty() || enc.len() == n_features,
        "cats.enc has {} entries for {n_features} features",
        enc.len()
    );
    let mut out = vec![];
    for (feature, e) in enc.iter().enumerate() {
        let values = numbers(e, "values").unwrap_or_default();
        if values.is_empty() {
            continue;
        }
        let offsets = numbers(e, "offsets").unwrap_or_default();
        let names = if offsets.is_empty() {
            ensure!(
                values.iter().all(|v| v.fract() == 0.0),
                "feature {feature}: categories that are not integers are not supported by batchinfer"
            );
            Names::Ints(values.iter().map(|&v| v as i64).collect())
        } else {
            let bytes: Vec<u8> = values.iter().map(|&b| b as u8).collect();
            let names = offsets
                .windows(2)
                .map(|w| {
                    let piece = bytes
                        .get(w[0] as usize..w[1] as usize)
                        .context("cats offsets point past the category bytes")?;
                    String::from_utf8(piece.to_vec()).context("a category name is not UTF-8")
                })
                .collect::<Result<Vec<String>>>()
                .with_context(|| format!("feature {feature}"))?;
            Names::Strings(names)
        };
        out.push((feature, Vocabulary::new(names, Unseen::BadRow)));
    }
    Ok(out)
}

/// The categories of each categorical split (`split_type` 1) of a tree of `n`
/// nodes, by node: `categories_nodes[k]` owns
/// `categories[categories_segments[k]..][..categories_sizes[k]]`.
fn category_sets(tree: &Value, n: usize) -> Result<std::collections::HashMap<usize, Vec<u32>>> {
    let categorical: Vec<bool> = match numbers(tree, "split_type") {
        Ok(types) => {
            ensure!(
                types.len() == n,
                "split_type has {} entries for {n} nodes",
                types.len()
            );
            types.iter().map(|&t| t != 0.0).collect()
        }
        Err(_) => vec![false; n],
    };
    let mut sets = std::collections::HashMap::new();
    if !categorical.iter().any(|c| *c) {
        return Ok(sets);
    }
    let nodes = numbers(tree, "categories_nodes")?;
    let segments = numbers(tree, "categories_segments")?;
    let sizes = numbers(tree, "categories_sizes")?;
    let categories = numbers(tree, "categories")?;
    ensure!(
        segments.len() == nodes.len() && sizes.len() == nodes.len(),
        "categories_nodes, categories_segments and categories_sizes differ in length"
    );
    for k in 0..nodes.len() {
        let (node, start, size) = (nodes[k] as usize, segments[k] as usize, sizes[k] as usize);
        ensure!(
            categorical.get(node) == Some(&true),
            "categories are listed for node {node}, which is not a categorical split"
        );
        let set = categories
            .get(start..start + size)
            .context("categories_segments points past `categories`")?;
        ensure!(
            set.iter()
                .all(|c| *c >= 0.0 && c.fract() == 0.0 && *c < 16_777_215.0),
            "node {node} lists a category that is not a valid category code"
        );
        sets.insert(node, set.iter().map(|&c| c as u32).collect());
    }
    // A categorical split with no categories listed sends every category left.
    for (i, _) in categorical.iter().enumerate().filter(|(_, c)| **c) {
        sets.entry(i).or_insert_with(Vec::new);
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_score_in_each_form_xgboost_writes() {
        assert_eq!(base_score("5E-1").unwrap(), vec![0.5]);
        assert_eq!(base_score("[4.6E-1]").unwrap(), vec![0.46]);
        assert_eq!(base_score("[1.5E-2,-1.3E-1]").unwrap(), vec![0.015, -0.13]);
        assert!(base_score("[a]").is_err());
    }

    #[test]
    fn margins_start_where_the_objective_says() {
        assert!((Margin::Logit.of(0.5)).abs() < 1e-12);
        assert!((Margin::Log.of(1.0)).abs() < 1e-12);
        assert_eq!(Margin::Identity.of(0.3), 0.3);
        let err = objective("reg:made_up").err().unwrap().to_string();
        assert!(err.contains("reg:made_up"), "{err}");
    }

    #[test]
    fn a_tree_that_points_outside_itself_is_refused() {
        let model = serde_json::json!({
            "learner": {
                "objective": {"name": "reg:squarederror"},
                "learner_model_param": {"base_score": "0.5", "num_feature": "2", "num_class": "0"},
                "gradient_booster": {"name": "gbtree", "model": {
                    "tree_info": [0],
                    "trees": [{
                        "left_children": [1, -1], "right_children": [5, -1],
                        "split_indices": [0, 0], "split_conditions": [0.5, 1.0],
                        "default_left": [0, 0]
                    }]
                }}
            }
        });
        let err = format!("{:#}", read(&model).err().unwrap());
        assert!(err.contains("out of range"), "{err}");
    }
}
