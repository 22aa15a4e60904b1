//! LightGBM's own text model files (`booster.save_model("model.txt")`, LightGBM
//! ≥ 2), read into a [`Forest`] with LightGBM's prediction rules:
//! - a split sends `x` left when `x <= threshold`; LightGBM compares in double
//!   precision, and since inputs are float32, the threshold becomes the largest
//!   float32 not above it, which routes every float32 value as LightGBM does;
//! - missing values: with missing type NaN a NaN goes the default way; with
//!   missing type None a NaN is taken as 0;
//! - tree `t` adds to class `t mod num_tree_per_iteration`; there is no base
//!   score (LightGBM folds the starting value into the first tree);
//! - `average_output` (random-forest mode) divides by the number of iterations;
//! - the objective's link: sigmoid (scaled by its `sigmoid:` parameter) for
//!   `binary`, softmax for `multiclass`, one sigmoid per class for
//!   `multiclassova`, exp for `poisson`, `gamma`, `tweedie`, sigmoid for
//!   `cross_entropy`, softplus for `cross_entropy_lambda`, none for regression and
//!   ranking objectives;
//! - every tree in the file is used (LightGBM saves up to the best iteration).
//!
//! There is no maintained Rust reader of this format; the parser follows
//! LightGBM's own writer (`GBDT::SaveModelToString`, `Tree::ToString`).

use std::collections::HashMap;

use anyhow::{bail, ensure, Context, Result};

use super::forest::{Forest, Head, LinearLeaf, Link, Node, Tree};
use super::{Body, Model};
use crate::model::categories::{Names, Unseen, Vocabulary};

const CATEGORICAL: u32 = 1;
const DEFAULT_LEFT: u32 = 2;

/// `key=value` lines of one block (the header, or one tree).
fn fields(block: &str) -> HashMap<&str, &str> {
    block
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn get<'a>(f: &HashMap<&str, &'a str>, key: &str) -> Result<&'a str> {
    f.get(key)
        .copied()
        .with_context(|| format!("no `{key}=` line"))
}

fn list<T: std::str::FromStr>(f: &HashMap<&str, &str>, key: &str, len: usize) -> Result<Vec<T>> {
    let v: Vec<T> = get(f, key)?
        .split_whitespace()
        .map(|x| x.parse::<T>().ok())
        .collect::<Option<Vec<T>>>()
        .with_context(|| format!("`{key}` holds a value that is not a number"))?;
    ensure!(
        v.len() == len,
        "`{key}` has {} values, expected {len}",
        v.len()
    );
    Ok(v)
}

fn number<T: std::str::FromStr>(f: &HashMap<&str, &str>, key: &str) -> Result<T> {
    let s = get(f, key)?;
    s.parse()
        .ok()
        .with_context(|| format!("`{key}={s}` is not a number"))
}

/// The head and link of an objective line ("binary sigmoid:1", "multiclass
/// num_class:3", "regression", "tweedie tweedie_variance_power:1.5"), and the
/// factor the head scales margins by (the sigmoid's).
fn objective(line: &str) -> Result<(Head, f64)> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or("");
    let params: HashMap<&str, &str> = words.filter_map(|w| w.split_once(':')).collect();
    let sigmoid = match params.get("sigmoid") {
        Some(s) => s
            .parse::<f64>()
            .ok()
            .with_context(|| format!("objective `{line}`: sigmoid:{s} is not a number"))?,
        None => 1.0,
    };
    if line.split_whitespace().any(|w| w == "sqrt") {
        bail!("LightGBM regression with `reg_sqrt` is not supported by batchinfer yet");
    }
    Ok(match name {
        "binary" => (Head::Binary, sigmoid),
        "multiclass" | "softmax" => (Head::Multiclass, 1.0),
        "multiclassova" | "multiclass_ova" | "ova" | "ovr" => (Head::OneVsAll, sigmoid),
        "regression"
        | "regression_l2"
        | "l2"
        | "mean_squared_error"
        | "mse"
        | "regression_l1"
        | "l1"
        | "mean_absolute_error"
        | "mae"
        | "huber"
        | "fair"
        | "quantile"
        | "mape"
        | "mean_absolute_percentage_error"
        | "lambdarank"
        | "rank_xendcg"
        | "xendcg"
        | "xe_ndcg"
        | "xe_ndcg_mart"
        | "xendcg_mart" => (Head::Regression(Link::Identity), 1.0),
        "poisson" | "gamma" | "tweedie" => (Head::Regression(Link::Exp), 1.0),
        "cross_entropy" | "xentropy" => (Head::Regression(Link::Sigmoid), 1.0),
        "cross_entropy_lambda" | "xentlambda" => (Head::Regression(Link::Softplus), 1.0),
        other => bail!("LightGBM objective `{other}` is not supported by batchinfer yet"),
    })
}

/// The largest float32 not above `t`: for a float32 `x`, `x <= t` exactly when
/// `x <= below(t)`.
fn below(t: f64) -> f32 {
    let r = t as f32;
    if r as f64 > t {
        r.next_down()
    } else {
        r
    }
}

/// Reads a model file's text.
pub fn read(text: &str) -> Result<Model> {
    let text = text.replace("\r\n", "\n");
    let end = text.find("\nend of trees").unwrap_or(text.len());
    let mut blocks = text[..end].split("\nTree=");
    let header = fields(blocks.next().unwrap_or(""));
    ensure!(
        header.contains_key("version"),
        "the file has no `version=` line"
    );
    let n_class: usize = number(&header, "num_class")?;
    let per_iteration: usize = number(&header, "num_tree_per_iteration")?;
    let n_features = number::<usize>(&header, "max_feature_idx")? + 1;
    let objective_line = get(&header, "objective")?;
    let (head, scale) = objective(objective_line)?;
    let average = text[..end].lines().any(|l| l.trim() == "average_output");
    ensure!(
        per_iteration == n_class.max(1),
        "the model grows {per_iteration} trees per iteration for {n_class} classes"
    );
    let n_outputs = per_iteration;
    let mut trees = vec![];
    for (t, block) in blocks.enumerate() {
        let f = fields(block);
        let tree = read_tree(&f, t % n_outputs, n_features).with_context(|| format!("tree {t}"))?;
        trees.push(tree);
    }
    ensure!(!trees.is_empty(), "the file has no trees");
    let iterations = trees.len().div_ceil(n_outputs);
    if average {
        scale_leaves(&mut trees, 1.0 / iterations as f64);
    }
    let names: Vec<String> = header
        .get("feature_names")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    ensure!(
        names.is_empty() || names.len() == n_features,
        "the model names {} features and reads {n_features}",
        names.len()
    );
    let default_names = names
        .iter()
        .enumerate()
        .all(|(i, n)| *n == format!("Column_{i}"));
    let categories = pandas_categories(&text, &header)?;
    let forest = Forest {
        n_features,
        trees,
        base: vec![0.0; n_outputs],
        head,
        inclusive: true,
        scale: scale as f32,
        category_rule: "lightgbm",
    };
    forest.check()?;
    let description = format!(
        "LightGBM {} model: objective {objective_line}, {} trees, {n_features} features, {n_outputs} output{}{}",
        get(&header, "version")?,
        forest.trees.len(),
        if n_outputs == 1 { "" } else { "s" },
        if average { ", averaged" } else { "" }
    );
    let n_trees = forest.trees.len();
    Ok(Model {
        iterations: (1..=iterations)
            .map(|i| (i * n_outputs).min(n_trees))
            .collect(),
        best: None,
        body: Body::Forest(forest),
        categories,
        feature_names: if default_names { vec![] } else { names },
        description,
    })
}

/// Multiplies every leaf's value (and linear model) by `factor`.
fn scale_leaves(trees: &mut [Tree], factor: f64) {
    let scale = |v: &mut f32| *v = (*v as f64 * factor) as f32;
    for node in trees.iter_mut().flat_map(|t| &mut t.nodes) {
        if let Node::Leaf { values, linear, .. } = node {
            values.iter_mut().for_each(scale);
            if let Some(l) = linear {
                scale(&mut l.constant);
                l.terms.iter_mut().for_each(|(_, c)| scale(c));
            }
        }
    }
}

/// One `Tree=` block; internal nodes come first (0 is the root), then leaves.
fn read_tree(f: &HashMap<&str, &str>, output: usize, n_features: usize) -> Result<Tree> {
    let n_leaves: usize = number(f, "num_leaves")?;
    ensure!(n_leaves >= 1, "the tree has no leaves");
    let leaf_values: Vec<f64> = list(f, "leaf_value", n_leaves)?;
    let linear = linear_leaves(f, n_leaves, n_features)?;
    let internal = n_leaves - 1;
    let leaf = |j: usize| Node::Leaf {
        first: output,
        values: vec![leaf_values[j] as f32],
        linear: linear.as_ref().map(|l| l[j].clone()),
    };
    if internal == 0 {
        return Ok(Tree {
            nodes: vec![leaf(0)],
        });
    }
    let feature: Vec<usize> = list(f, "split_feature", internal)?;
    let threshold: Vec<f64> = list(f, "threshold", internal)?;
    let decision: Vec<u32> = list(f, "decision_type", internal)?;
    let left: Vec<i64> = list(f, "left_child", internal)?;
    let right: Vec<i64> = list(f, "right_child", internal)?;
    let child = |c: i64| -> Result<usize> {
        // Non-negative: an internal node; negative: leaf !c.
        let i = if c >= 0 {
            c as usize
        } else {
            internal + (!c) as usize
        };
        ensure!(i < internal + n_leaves, "a child index {c} is out of range");
        Ok(i)
    };
    let bitsets = category_bitsets(f, &decision)?;
    let mut nodes = Vec::with_capacity(internal + n_leaves);
    for i in 0..internal {
        let d = decision[i];
        ensure!(
            feature[i] < n_features,
            "a split on feature {} of {n_features}",
            feature[i]
        );
        let t = threshold[i];
        if d & CATEGORICAL != 0 {
            // The categories whose bits are set go left; the others, negative
            // values and NaN go right.
            let set = bitsets
                .get(t as usize)
                .with_context(|| format!("a categorical split names bitset {t}"))?;
            nodes.push(Node::In {
                feature: feature[i],
                set: set.clone(),
                member: child(left[i])?,
                other: child(right[i])?,
                missing_member: false,
            });
            continue;
        }
        let (missing_left, zero_missing) = match (d >> 2) & 3 {
            // None: a missing value is taken as 0.
            0 => (0.0 <= t, false),
            // Zero: a zero (within 1e-35) or missing value goes the default way.
            1 => (d & DEFAULT_LEFT != 0, true),
            // NaN: the default direction.
            2 => (d & DEFAULT_LEFT != 0, false),
            other => bail!("a split has missing type {other}, which LightGBM does not write"),
        };
        nodes.push(Node::Less {
            feature: feature[i],
            threshold: below(t),
            left: child(left[i])?,
            right: child(right[i])?,
            missing_left,
            zero_missing,
        });
    }
    nodes.extend((0..n_leaves).map(leaf));
    Ok(Tree { nodes })
}

/// The linear model of each leaf of a linear tree (`is_linear=1`): `leaf_const`,
/// and `num_features` terms per leaf from `leaf_features` and `leaf_coeff`.
fn linear_leaves(
    f: &HashMap<&str, &str>,
    n_leaves: usize,
    n_features: usize,
) -> Result<Option<Vec<LinearLeaf>>> {
    if f.get("is_linear").is_none_or(|v| *v == "0") {
        return Ok(None);
    }
    let constants: Vec<f64> = list(f, "leaf_const", n_leaves)?;
    let counts: Vec<usize> = list(f, "num_features", n_leaves)?;
    let total = counts.iter().sum();
    let features: Vec<usize> = list(f, "leaf_features", total)?;
    let coefficients: Vec<f64> = list(f, "leaf_coeff", total)?;
    ensure!(
        features.iter().all(|&i| i < n_features),
        "a linear leaf reads a feature the model does not have"
    );
    let mut at = 0;
    let leaves = (0..n_leaves)
        .map(|j| {
            let terms = (at..at + counts[j])
                .map(|k| (features[k], coefficients[k] as f32))
                .collect();
            at += counts[j];
            LinearLeaf {
                constant: constants[j] as f32,
                terms,
            }
        })
        .collect();
    Ok(Some(leaves))
}

/// The categories of each categorical feature, from the `pandas_categorical:`
/// line LightGBM writes when it was trained on a pandas DataFrame: one list per
/// category column, in column order, which are the categorical features
/// (`categorical_feature:` parameter, else the `a:b:c` entries of
/// `feature_infos`) in index order. An unseen category is missing (NaN), as
/// LightGBM's own predict makes it.
fn pandas_categories(text: &str, header: &HashMap<&str, &str>) -> Result<Vec<(usize, Vocabulary)>> {
    let Some(at) = text.rfind("\npandas_categorical:") else {
        return Ok(vec![]);
    };
    let json = text[at + "\npandas_categorical:".len()..]
        .lines()
        .next()
        .unwrap_or("");
    let lists: serde_json::Value =
        serde_json::from_str(json.trim()).context("pandas_categorical is not JSON")?;
    let Some(lists) = lists.as_array() else {
        return Ok(vec![]); // null: trained without category columns
    };
    let features: Vec<usize> = match text
        .lines()
        .find_map(|l| l.strip_prefix("[categorical_feature: "))
        .map(|l| l.trim_end_matches(']').trim())
    {
        Some(list) if !list.is_empty() => list
            .split(',')
            .map(|i| i.trim().parse().ok())
            .collect::<Option<Vec<usize>>>()
            .context("the categorical_feature parameter is not a list of indices")?,
        _ => get(header, "feature_infos")?
            .split_whitespace()
            .enumerate()
            .filter(|(_, info)| !info.starts_with('[') && *info != "none")
            .map(|(i, _)| i)
            .collect(),
    };
    ensure!(
        features.len() == lists.len(),
        "pandas_categorical lists {} category columns but {} features are categorical, so which is which cannot be told; save the model from a DataFrame whose category columns are exactly the categorical features",
        lists.len(),
        features.len()
    );
    features
        .into_iter()
        .zip(lists)
        .map(|(feature, list)| {
            let items = list.as_array().context("a pandas_categorical entry is not a list")?;
            let names = if let Some(s) = items.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>() {
                Names::Strings(s)
            } else if let Some(i) = items.iter().map(serde_json::Value::as_i64).collect::<Option<Vec<_>>>() {
                Names::Ints(i)
            } else {
                bail!("feature {feature}: categories that are neither all strings nor all integers are not supported by batchinfer");
            };
            Ok((feature, Vocabulary::new(names, Unseen::Missing)))
        })
        .collect()
}

/// The category sets of a tree's categorical splits: bitset `k` is the 32-bit
/// words `cat_threshold[cat_boundaries[k]..cat_boundaries[k + 1]]`.
fn category_bitsets(f: &HashMap<&str, &str>, decision: &[u32]) -> Result<Vec<Vec<u32>>> {
    if !decision.iter().any(|d| d & CATEGORICAL != 0) {
        return Ok(vec![]);
    }
    let n_cat: usize = number(f, "num_cat")?;
    let bounds: Vec<usize> = list(f, "cat_boundaries", n_cat + 1)?;
    let words: Vec<u32> = list(f, "cat_threshold", bounds.last().copied().unwrap_or(0))?;
    (0..n_cat)
        .map(|k| {
            let w = words
                .get(bounds[k]..bounds[k + 1])
                .context("cat_boundaries is not ascending")?;
            Ok((0..w.len() * 32)
                .filter(|&b| w[b / 32] >> (b % 32) & 1 == 1)
                .map(|b| b as u32)
                .collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_round_down_to_float32() {
        let t = 0.1f64; // 0.1f32 is above 0.1
        let b = below(t);
        assert!((b as f64) <= t && (b.next_up() as f64) > t);
        assert_eq!(below(0.5), 0.5);
        assert!(below(-1e-35) as f64 <= -1e-35);
    }

    #[test]
    fn objectives_and_their_links() {
        assert_eq!(objective("binary sigmoid:2").unwrap(), (Head::Binary, 2.0));
        assert_eq!(
            objective("multiclass num_class:3").unwrap(),
            (Head::Multiclass, 1.0)
        );
        assert_eq!(
            objective("tweedie tweedie_variance_power:1.5").unwrap().0,
            Head::Regression(Link::Exp)
        );
        assert!(objective("regression sqrt").is_err());
        assert!(objective("custom").is_err());
    }
}
