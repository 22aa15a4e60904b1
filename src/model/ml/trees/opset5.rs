//! `TreeEnsemble` (ai.onnx.ml opset 5) read into the [`Table`] the legacy
//! operators give: interior nodes by position, leaves in `leaf_*`, trees by their
//! roots. Tree `t` is the `t`-th root; an interior node keeps its position as its
//! id and leaf `j` becomes node `n + j` of the tree that reaches it.

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::sets::{Rule, Set};
use super::{attr_vec, member_sets, Mode, Table};

/// The attributes, checked for length.
struct Attributes {
    roots: Vec<i64>,
    features: Vec<i64>,
    true_ids: Vec<i64>,
    false_ids: Vec<i64>,
    true_leaf: Vec<i64>,
    false_leaf: Vec<i64>,
    missing: Vec<i64>,
    modes: Vec<Mode>,
    splits: Vec<f32>,
    targets: Vec<i64>,
    weights: Vec<f32>,
    sets: HashMap<usize, Set>,
}

fn mode(code: i64) -> TractResult<Mode> {
    Ok(match code {
        0 => Mode::Leq,
        1 => Mode::Lt,
        2 => Mode::Gte,
        3 => Mode::Gt,
        4 => Mode::Eq,
        5 => Mode::Neq,
        6 => Mode::Member,
        other => bail!("unknown node mode {other}"),
    })
}

impl Attributes {
    fn read(ctx: &ParsingContext, node: &NodeProto) -> TractResult<Attributes> {
        let tensor = |name: &str| -> TractResult<Option<Tensor>> {
            node.get_attr_opt::<&tract_onnx::pb::TensorProto>(name)?
                .map(|t| ctx.load_tensor(t))
                .transpose()
        };
        let floats = |name: &str| -> TractResult<Vec<f32>> {
            let Some(t) = tensor(name)? else {
                return Ok(vec![]);
            };
            ensure!(
                t.datum_type() == f32::datum_type(),
                "attribute {name} is {:?}: double-precision trees are not supported by batchinfer yet",
                t.datum_type()
            );
            Ok(t.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
        };
        let roots: Vec<i64> = node.get_attr_vec("tree_roots")?;
        let features: Vec<i64> = node.get_attr_vec("nodes_featureids")?;
        let n = features.len();
        ensure!(n > 0 && !roots.is_empty(), "the ensemble has no nodes");
        let missing: Vec<i64> = node
            .get_attr_opt_vec("nodes_missing_value_tracks_true")?
            .filter(|v: &Vec<i64>| !v.is_empty())
            .unwrap_or_else(|| vec![0; n]);
        ensure!(
            missing.len() == n,
            "nodes_missing_value_tracks_true: expected {n} values"
        );
        let modes: Vec<Mode> = tensor("nodes_modes")?
            .context("attribute nodes_modes is missing")?
            .cast_to::<i64>()?
            .try_as_plain_ram()?
            .as_slice::<i64>()?
            .iter()
            .map(|&m| mode(m))
            .collect::<TractResult<_>>()?;
        ensure!(
            modes.len() == n,
            "attribute nodes_modes: expected {n} values"
        );
        let splits = floats("nodes_splits")?;
        ensure!(
            splits.len() == n,
            "attribute nodes_splits: expected {n} values"
        );
        let targets: Vec<i64> = node.get_attr_vec("leaf_targetids")?;
        let weights = floats("leaf_weights")?;
        ensure!(
            weights.len() == targets.len(),
            "attribute leaf_weights: expected {} values",
            targets.len()
        );
        let sets = member_sets(&modes, &floats("membership_values")?, Rule::Exact)?;
        Ok(Attributes {
            true_ids: attr_vec(node, "nodes_truenodeids", n)?,
            false_ids: attr_vec(node, "nodes_falsenodeids", n)?,
            true_leaf: attr_vec(node, "nodes_trueleafs", n)?,
            false_leaf: attr_vec(node, "nodes_falseleafs", n)?,
            roots,
            features,
            missing,
            modes,
            splits,
            targets,
            weights,
            sets,
        })
    }

    /// Appends leaf `j` to tree `t` as node `n + j`; returns that id.
    fn push_leaf(&self, table: &mut Table, t: usize, j: i64) -> TractResult<i64> {
        let n = self.features.len();
        ensure!(
            j >= 0 && (j as usize) < self.targets.len(),
            "a node points to leaf {j}, but there are {}",
            self.targets.len()
        );
        let id = n as i64 + j;
        table.push(t as i64, id, 0, 0.0, Mode::Leaf, (0, 0), false);
        let j = j as usize;
        table
            .leaves
            .push((t as i64, id, self.targets[j], self.weights[j]));
        Ok(id)
    }

    /// Walks every tree from its root into the table.
    fn into_table(self) -> TractResult<Table> {
        let n = self.features.len();
        let mut table = Table::default();
        let mut tree_of = vec![None::<usize>; n];
        for (t, &root) in self.roots.iter().enumerate() {
            ensure!(
                root >= 0 && (root as usize) < n,
                "tree {t}'s root {root} is out of range"
            );
            let r = root as usize;
            if self.true_leaf[r] != 0
                && self.false_leaf[r] != 0
                && self.true_ids[r] == self.false_ids[r]
            {
                // A tree that is one leaf.
                self.push_leaf(&mut table, t, self.true_ids[r])?;
                continue;
            }
            let mut stack = vec![r];
            while let Some(i) = stack.pop() {
                if let Some(other) = tree_of[i] {
                    bail!("node {i} is reached twice (trees {other} and {t})");
                }
                tree_of[i] = Some(t);
                let mut child = |table: &mut Table, leaf: i64, id: i64| -> TractResult<i64> {
                    if leaf != 0 {
                        return self.push_leaf(table, t, id);
                    }
                    ensure!(
                        id >= 0 && (id as usize) < n,
                        "node {i} points to node {id}, but there are {n}"
                    );
                    stack.push(id as usize);
                    Ok(id)
                };
                let true_id = child(&mut table, self.true_leaf[i], self.true_ids[i])?;
                let false_id = child(&mut table, self.false_leaf[i], self.false_ids[i])?;
                if let Some(set) = self.sets.get(&i) {
                    table.sets.insert(table.tree_ids.len(), set.clone());
                }
                table.push(
                    t as i64,
                    i as i64,
                    self.features[i],
                    self.splits[i],
                    self.modes[i],
                    (true_id, false_id),
                    self.missing[i] != 0,
                );
            }
        }
        Ok(table)
    }
}

pub(super) fn table(ctx: &ParsingContext, node: &NodeProto) -> TractResult<Table> {
    Attributes::read(ctx, node)?.into_table()
}
