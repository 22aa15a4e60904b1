//! `SVMClassifier` and `SVMRegressor` (ai.onnx.ml), which tract 0.23.9 lacks.
//!
//! Semantics follow onnxruntime's kernels, the reference exporters test against:
//! one-vs-one decision values with votes for the label (libsvm), Platt-scaled
//! pairwise probabilities coupled by libsvm's `multiclass_probability` when
//! `prob_a`/`prob_b` are given, and a linear mode when there are no support vectors.

use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::classes::{self, Labels, PostTransform};
use super::kernel::Kernel;

#[derive(Debug, Clone, Copy, PartialEq)]
enum KernelType {
    Linear,
    Poly { gamma: f32, coef0: f32, degree: f32 },
    Rbf { gamma: f32 },
    Sigmoid { gamma: f32, coef0: f32 },
}

impl KernelType {
    fn from_node(node: &NodeProto) -> TractResult<KernelType> {
        let params: Vec<f32> = node.get_attr_opt_vec("kernel_params")?.unwrap_or_default();
        let p = |i: usize| params.get(i).copied().unwrap_or(0.0);
        Ok(
            match node
                .get_attr_opt::<&str>("kernel_type")?
                .unwrap_or("LINEAR")
            {
                "LINEAR" => KernelType::Linear,
                "POLY" => KernelType::Poly {
                    gamma: p(0),
                    coef0: p(1),
                    degree: p(2),
                },
                "RBF" => KernelType::Rbf { gamma: p(0) },
                "SIGMOID" => KernelType::Sigmoid {
                    gamma: p(0),
                    coef0: p(1),
                },
                other => bail!("unknown SVM kernel_type {other}"),
            },
        )
    }

    #[inline]
    fn eval(self, x: &[f32], v: &[f32]) -> f32 {
        let dot = || super::dot::dot(x, v);
        match self {
            KernelType::Linear => dot(),
            KernelType::Poly {
                gamma,
                coef0,
                degree,
            } => (gamma * dot() + coef0).powf(degree),
            KernelType::Rbf { gamma } => {
                let d = super::dot::squared_distance(x, v);
                (-gamma * d).exp()
            }
            KernelType::Sigmoid { gamma, coef0 } => (gamma * dot() + coef0).tanh(),
        }
    }
}

/// The input matrix and the kernel values of each row against every support vector.
fn kernels(kernel: KernelType, x: &[f32], f: usize, support: &[f32]) -> Vec<f32> {
    let n_sv = support.len() / f.max(1);
    let mut out = Vec::with_capacity(x.len() / f.max(1) * n_sv);
    for row in x.chunks(f.max(1)) {
        out.extend(support.chunks(f.max(1)).map(|v| kernel.eval(row, v)));
    }
    out
}

/// libsvm's pairwise coupling: class probabilities from pairwise ones `r[i][j]`.
fn multiclass_probability(k: usize, r: &[f32], p: &mut [f32]) {
    let mut q = vec![0f32; k * k];
    let mut qp = vec![0f32; k];
    let eps = 0.005 / k as f32;
    for i in 0..k {
        p[i] = 1.0 / k as f32;
        for j in 0..i {
            q[i * k + i] += r[j * k + i] * r[j * k + i];
            q[i * k + j] = q[j * k + i];
        }
        for j in i + 1..k {
            q[i * k + i] += r[j * k + i] * r[j * k + i];
            q[i * k + j] = -r[j * k + i] * r[i * k + j];
        }
    }
    for _ in 0..100 {
        let mut pqp = 0.0;
        for i in 0..k {
            qp[i] = (0..k).map(|j| q[i * k + j] * p[j]).sum();
            pqp += p[i] * qp[i];
        }
        let max_error = (0..k).map(|i| (qp[i] - pqp).abs()).fold(0.0, f32::max);
        if max_error < eps {
            break;
        }
        for i in 0..k {
            let diff = (-qp[i] + pqp) / q[i * k + i];
            p[i] += diff;
            pqp = (pqp + diff * (diff * q[i * k + i] + 2.0 * qp[i])) / (1.0 + diff) / (1.0 + diff);
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[i * k + j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
}

#[derive(Debug)]
enum Mode {
    /// One-vs-one over support vectors grouped by class.
    Svc {
        support: Vec<f32>,
        per_class: Vec<usize>,
        starts: Vec<usize>,
    },
    /// One row of coefficients per class (liblinear).
    Linear,
}

#[derive(Debug)]
pub struct SvmClassifier {
    kernel: KernelType,
    mode: Mode,
    coefficients: Vec<f32>,
    rho: Vec<f32>,
    prob: Option<(Vec<f32>, Vec<f32>)>,
    labels: Labels,
    post: PostTransform,
    weights_all_positive: bool,
}

pub fn classifier(node: &NodeProto) -> TractResult<SvmClassifier> {
    let labels = Labels::from_node(node)?;
    let k = labels.len();
    ensure!(k >= 2, "SVMClassifier needs at least two class labels");
    let coefficients: Vec<f32> = node.get_attr_vec("coefficients")?;
    let rho: Vec<f32> = node.get_attr_vec("rho")?;
    let per_class: Vec<usize> = node
        .get_attr_opt_vec::<i64>("vectors_per_class")?
        .unwrap_or_default()
        .iter()
        .map(|&v| v.max(0) as usize)
        .collect();
    let prob_a: Vec<f32> = node.get_attr_opt_vec("prob_a")?.unwrap_or_default();
    let prob_b: Vec<f32> = node.get_attr_opt_vec("prob_b")?.unwrap_or_default();
    ensure!(
        prob_a.len() == prob_b.len(),
        "prob_a and prob_b differ in length"
    );
    let pairs = k * (k - 1) / 2;
    let n_sv: usize = per_class.iter().sum();
    let (mode, kernel) = if n_sv > 0 {
        ensure!(
            per_class.len() == k,
            "vectors_per_class has {} entries for {k} classes",
            per_class.len()
        );
        ensure!(
            coefficients.len() >= (k - 1) * n_sv,
            "too few coefficients for {n_sv} support vectors"
        );
        ensure!(
            rho.len() >= pairs,
            "rho has {} values for {pairs} class pairs",
            rho.len()
        );
        ensure!(
            prob_a.is_empty() || prob_a.len() >= pairs,
            "prob_a has {} values for {pairs} class pairs",
            prob_a.len()
        );
        let support: Vec<f32> = node.get_attr_vec("support_vectors")?;
        ensure!(
            !support.is_empty() && support.len().is_multiple_of(n_sv),
            "support_vectors do not split into {n_sv} vectors"
        );
        let mut starts = Vec::with_capacity(k);
        let mut at = 0;
        for &c in &per_class {
            starts.push(at);
            at += c;
        }
        (
            Mode::Svc {
                support,
                per_class,
                starts,
            },
            KernelType::from_node(node)?,
        )
    } else {
        ensure!(
            !rho.is_empty() && coefficients.len().is_multiple_of(k),
            "linear SVM: coefficients do not split into {k} classes"
        );
        (Mode::Linear, KernelType::Linear)
    };
    let weights_all_positive = coefficients.iter().all(|&c| c >= 0.0);
    Ok(SvmClassifier {
        kernel,
        mode,
        coefficients,
        rho,
        prob: (!prob_a.is_empty()).then_some((prob_a, prob_b)),
        labels,
        post: PostTransform::from_node(node)?,
        weights_all_positive,
    })
}

impl SvmClassifier {
    fn scores_per_row(&self) -> usize {
        let k = self.labels.len();
        match (&self.mode, &self.prob) {
            (Mode::Svc { .. }, None) if k > 2 => k * (k - 1) / 2,
            (Mode::Svc { .. }, None) => 2,
            _ => k,
        }
    }

    fn feature_count(&self) -> usize {
        match &self.mode {
            Mode::Svc {
                support, per_class, ..
            } => support.len() / per_class.iter().sum::<usize>(),
            Mode::Linear => self.coefficients.len() / self.labels.len(),
        }
    }
}

impl Kernel for SvmClassifier {
    fn name(&self) -> &'static str {
        "SVMClassifier"
    }

    fn n_outputs(&self) -> usize {
        2
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        classes::classifier_rules(s, inputs, outputs, &self.labels, self.scores_per_row())
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(classes::classifier_facts(
            inputs,
            &self.labels,
            self.scores_per_row(),
        ))
    }

    #[allow(clippy::too_many_lines)] // the kernels, votes and post transforms in the order onnxruntime applies them
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (n, f, x) = classes::as_f32_matrix(&inputs[0])?;
        ensure!(
            f == self.feature_count(),
            "the SVM takes {} features, the input has {f}",
            self.feature_count()
        );
        let x = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let k = self.labels.len();
        let width = self.scores_per_row();
        let mut out = vec![0f32; n * width];
        let mut label_ix = Vec::with_capacity(n);
        match &self.mode {
            Mode::Linear => {
                for (r, row) in x.chunks(f.max(1)).enumerate() {
                    let scores = &mut out[r * width..(r + 1) * width];
                    for (c, w) in self.coefficients.chunks(f.max(1)).enumerate() {
                        scores[c] = self.kernel.eval(row, w) + self.rho[0];
                    }
                    let best = classes::argmax(scores);
                    let max = scores[best];
                    label_ix.push(self.binary_choice(max, best));
                    self.post.apply(scores);
                }
            }
            Mode::Svc {
                support,
                per_class,
                starts,
            } => {
                let n_sv: usize = per_class.iter().sum();
                let kern = kernels(self.kernel, x, f, support);
                let pairs = k * (k - 1) / 2;
                let mut decision = vec![0f32; pairs];
                let mut votes = vec![0usize; k];
                let mut r = vec![0f32; k * k];
                for row in 0..n {
                    let kv = &kern[row * n_sv..(row + 1) * n_sv];
                    votes.iter_mut().for_each(|v| *v = 0);
                    let mut pair = 0;
                    for i in 0..k - 1 {
                        for j in i + 1..k {
                            // f64 sum, as onnxruntime does.
                            let mut sum = 0f64;
                            let ci =
                                &self.coefficients[(j - 1) * n_sv + starts[i]..][..per_class[i]];
                            sum += ci
                                .iter()
                                .zip(&kv[starts[i]..][..per_class[i]])
                                .map(|(a, b)| (*a as f64) * (*b as f64))
                                .sum::<f64>();
                            let cj = &self.coefficients[i * n_sv + starts[j]..][..per_class[j]];
                            sum += cj
                                .iter()
                                .zip(&kv[starts[j]..][..per_class[j]])
                                .map(|(a, b)| (*a as f64) * (*b as f64))
                                .sum::<f64>();
                            sum += self.rho[pair] as f64;
                            decision[pair] = sum as f32;
                            votes[if sum > 0.0 { i } else { j }] += 1;
                            pair += 1;
                        }
                    }
                    // First class with the most votes.
                    let best = (0..k).fold(0, |b, c| if votes[c] > votes[b] { c } else { b });
                    label_ix.push(best);
                    let scores = &mut out[row * width..(row + 1) * width];
                    match &self.prob {
                        Some((a, b)) => {
                            let mut pair = 0;
                            for i in 0..k - 1 {
                                for j in i + 1..k {
                                    let p =
                                        1.0 - classes::logistic(decision[pair] * a[pair] + b[pair]);
                                    let p = p.clamp(1e-7, 1.0 - 1e-7);
                                    r[i * k + j] = p;
                                    r[j * k + i] = 1.0 - p;
                                    pair += 1;
                                }
                            }
                            multiclass_probability(k, &r, scores);
                            self.post.apply(scores);
                        }
                        None if k == 2 => {
                            let s = decision[0];
                            let expanded = if self.post == PostTransform::None {
                                [-s, s]
                            } else {
                                [1.0 - s, s]
                            };
                            scores.copy_from_slice(&expanded);
                        }
                        None => {
                            scores.copy_from_slice(&decision);
                            self.post.apply(scores);
                        }
                    }
                }
            }
        }
        Ok(tvec!(
            self.labels.gather(&label_ix)?.into_tvalue(),
            tensor1(&out).into_shape(&[n, width])?.into_tvalue()
        ))
    }
}

impl SvmClassifier {
    /// onnxruntime's label rule for two classes in linear mode.
    fn binary_choice(&self, max_weight: f32, best: usize) -> usize {
        if self.labels.len() != 2 || self.prob.is_some() {
            return best;
        }
        if (self.weights_all_positive && max_weight >= 0.5)
            || (max_weight > 0.0 && !self.weights_all_positive)
        {
            1
        } else {
            best
        }
    }
}

/// `SVMRegressor`: `sum_i coef_i K(x, sv_i) + rho`, or `x·coef + rho` without support
/// vectors; `one_class` turns the sign into ±1.
#[derive(Debug)]
pub struct SvmRegressor {
    kernel: KernelType,
    support: Vec<f32>,
    coefficients: Vec<f32>,
    rho: f32,
    one_class: bool,
}

pub fn regressor(node: &NodeProto) -> TractResult<SvmRegressor> {
    let n_supports = node.get_attr_opt::<i64>("n_supports")?.unwrap_or(0).max(0) as usize;
    let coefficients: Vec<f32> = node.get_attr_vec("coefficients")?;
    let rho = node
        .get_attr_vec::<f32>("rho")?
        .first()
        .copied()
        .unwrap_or(0.0);
    let support: Vec<f32> = if n_supports > 0 {
        node.get_attr_vec("support_vectors")?
    } else {
        vec![]
    };
    if n_supports > 0 {
        ensure!(
            coefficients.len() == n_supports,
            "{} coefficients for {n_supports} support vectors",
            coefficients.len()
        );
        ensure!(
            support.len().is_multiple_of(n_supports),
            "support_vectors do not split into {n_supports} vectors"
        );
    }
    let kernel = if n_supports > 0 {
        KernelType::from_node(node)?
    } else {
        KernelType::Linear
    };
    let post = PostTransform::from_node(node)?;
    ensure!(
        post == PostTransform::None,
        "SVMRegressor post_transform other than NONE is not supported"
    );
    Ok(SvmRegressor {
        kernel,
        support,
        coefficients,
        rho,
        one_class: node.get_attr_opt::<i64>("one_class")?.unwrap_or(0) != 0,
    })
}

impl Kernel for SvmRegressor {
    fn name(&self) -> &'static str {
        "SVMRegressor"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], 1.to_dim())?;
        Ok(())
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact([inputs[0].shape[0].clone(), 1.to_dim()])))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (n, f, x) = classes::as_f32_matrix(&inputs[0])?;
        let x = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let mut out = Vec::with_capacity(n);
        if self.support.is_empty() {
            ensure!(
                self.coefficients.len() == f,
                "the SVM takes {} features, the input has {f}",
                self.coefficients.len()
            );
            out.extend(
                x.chunks(f.max(1))
                    .map(|row| self.kernel.eval(row, &self.coefficients) + self.rho),
            );
        } else {
            let n_sv = self.coefficients.len();
            ensure!(
                self.support.len() == n_sv * f,
                "the SVM takes {} features, the input has {f}",
                self.support.len() / n_sv
            );
            let kern = kernels(self.kernel, x, f, &self.support);
            out.extend(kern.chunks(n_sv).map(|kv| {
                kv.iter()
                    .zip(&self.coefficients)
                    .map(|(k, c)| k * c)
                    .sum::<f32>()
                    + self.rho
            }));
        }
        if self.one_class {
            out.iter_mut()
                .for_each(|v| *v = if *v > 0.0 { 1.0 } else { -1.0 });
        }
        Ok(tvec!(tensor1(&out).into_shape(&[n, 1])?.into_tvalue()))
    }
}
