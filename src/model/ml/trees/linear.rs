//! Leaves that hold a linear model (LightGBM's `linear_tree`): a leaf's value is
//! `constant + Σ coeff · x[feature]` over its features, or its plain weight when
//! one of those features is NaN, as LightGBM computes it. batchinfer's own
//! extension of the legacy tree ensembles, written only by `model::native`.
//!
//! Attributes (one entry per linear leaf, and the terms of all of them in order):
//! `batchinfer_linear_treeids`, `batchinfer_linear_nodeids`,
//! `batchinfer_linear_constants`, `batchinfer_linear_counts` (terms per leaf),
//! `batchinfer_linear_features`, `batchinfer_linear_coefficients`.

use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::attr_vec;

/// One linear leaf as the attributes list it: (tree id, node id, constant, terms).
pub type Listed = (i64, i64, f32, Vec<(u32, f32)>);

pub fn read(node: &NodeProto) -> TractResult<Vec<Listed>> {
    let Some(trees) = node.get_attr_opt_vec::<i64>("batchinfer_linear_treeids")? else {
        return Ok(vec![]);
    };
    let n = trees.len();
    let nodes: Vec<i64> = attr_vec(node, "batchinfer_linear_nodeids", n)?;
    let constants: Vec<f32> = attr_vec(node, "batchinfer_linear_constants", n)?;
    let counts: Vec<i64> = attr_vec(node, "batchinfer_linear_counts", n)?;
    let total = counts.iter().sum::<i64>() as usize;
    let features: Vec<i64> = attr_vec(node, "batchinfer_linear_features", total)?;
    let coefficients: Vec<f32> = attr_vec(node, "batchinfer_linear_coefficients", total)?;
    let mut at = 0;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let k = counts[i] as usize;
        let terms = (at..at + k)
            .map(|j| {
                ensure!(
                    (0..i64::from(u32::MAX >> 1)).contains(&features[j]),
                    "a linear leaf reads feature {}",
                    features[j]
                );
                Ok((features[j] as u32, coefficients[j]))
            })
            .collect::<TractResult<Vec<_>>>()?;
        at += k;
        out.push((trees[i], nodes[i], constants[i], terms));
    }
    Ok(out)
}

/// The linear leaves of a laid-out ensemble, by node.
#[derive(Debug)]
pub struct Leaves {
    /// For each node, its entry in `leaves`, or `u32::MAX`.
    of_node: Vec<u32>,
    /// (constant, first term, end of terms).
    leaves: Vec<(f32, u32, u32)>,
    terms: Vec<(u32, f32)>,
}

impl Leaves {
    /// From the listed leaves and the new index of each (tree id, node id).
    pub fn new(
        listed: Vec<Listed>,
        n_nodes: usize,
        place: impl Fn(i64, i64) -> Option<usize>,
    ) -> TractResult<Leaves> {
        let mut of_node = vec![u32::MAX; n_nodes];
        let mut leaves = Vec::with_capacity(listed.len());
        let mut terms = vec![];
        for (tree, node, constant, t) in listed {
            let at = place(tree, node).with_context(|| {
                format!("a linear leaf names node {node} of tree {tree}, which is no leaf")
            })?;
            of_node[at] = leaves.len() as u32;
            let start = terms.len() as u32;
            terms.extend(t);
            leaves.push((constant, start, terms.len() as u32));
        }
        Ok(Leaves {
            of_node,
            leaves,
            terms,
        })
    }

    /// The widest feature the leaves read, plus one.
    pub fn width(&self) -> usize {
        self.terms
            .iter()
            .map(|(f, _)| *f as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// The value of leaf `node` for `row`, or `weight` when it is not linear or a
    /// feature it reads is NaN.
    #[inline]
    pub fn value(&self, node: usize, row: &[f32], weight: f32) -> f32 {
        let i = self.of_node[node];
        if i == u32::MAX {
            return weight;
        }
        let (constant, start, end) = self.leaves[i as usize];
        let mut sum = constant;
        for &(feature, coeff) in &self.terms[start as usize..end as usize] {
            let x = row[feature as usize];
            if x.is_nan() {
                return weight;
            }
            sum += coeff * x;
        }
        sum
    }
}
