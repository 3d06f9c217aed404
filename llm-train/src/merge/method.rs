//! The merge methods and their parameters, as mergekit's registry defines them, and the merge
//! of one tensor.

use rand::Rng;

use super::sparsify::{apply_mask, sign_consensus, sparsify, Sparsification};
use crate::error::{Result, TrainError};

/// A merge method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Weighted average (`normalize` divides by the weights' sum).
    Linear,
    /// Spherical interpolation of two models, base at `t = 0`.
    Slerp,
    /// Copies (and optionally scales) the single source of each tensor: frankenmerges.
    Passthrough,
    /// A member of the task-arithmetic family: deltas against the base, thinned, mixed.
    TaskVectors(TaskVectors),
}

/// The generalized task-arithmetic methods (mergekit's `GeneralizedTaskArithmeticMerge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskVectors {
    /// Weighted sum of deltas.
    TaskArithmetic,
    /// Magnitude top-k, sign consensus, disjoint mean.
    Ties,
    /// Bernoulli drops rescaled, sign consensus.
    DareTies,
    /// Bernoulli drops rescaled, weighted sum.
    DareLinear,
    /// Outliers and small entries dropped, weighted sum.
    Breadcrumbs,
    /// Breadcrumbs with sign consensus.
    BreadcrumbsTies,
    /// Magnitude-ranked drops rescaled, sign consensus.
    Della,
    /// DELLA without consensus.
    DellaLinear,
}

const NAMES: [(&str, Method); 11] = [
    ("linear", Method::Linear),
    ("slerp", Method::Slerp),
    ("passthrough", Method::Passthrough),
    ("task_arithmetic", Method::TaskVectors(TaskVectors::TaskArithmetic)),
    ("ties", Method::TaskVectors(TaskVectors::Ties)),
    ("dare_ties", Method::TaskVectors(TaskVectors::DareTies)),
    ("dare_linear", Method::TaskVectors(TaskVectors::DareLinear)),
    ("breadcrumbs", Method::TaskVectors(TaskVectors::Breadcrumbs)),
    ("breadcrumbs_ties", Method::TaskVectors(TaskVectors::BreadcrumbsTies)),
    ("della", Method::TaskVectors(TaskVectors::Della)),
    ("della_linear", Method::TaskVectors(TaskVectors::DellaLinear)),
];

impl Method {
    /// Parses mergekit's method name.
    pub fn parse(name: &str) -> Result<Self> {
        NAMES.iter().find(|(n, _)| *n == name).map(|(_, m)| *m).ok_or_else(|| {
            let known: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
            TrainError::config("merge_method", format!("unknown method `{name}` (known: {})", known.join(", ")))
        })
    }

    /// mergekit's name.
    pub fn name(self) -> &'static str {
        NAMES.iter().find(|(_, m)| *m == self).map_or("?", |(n, _)| n)
    }

    /// Parameters that apply to a tensor as a whole.
    pub fn global_parameters(self) -> &'static [&'static str] {
        match self {
            Self::Linear => &["normalize"],
            Self::Slerp => &["t"],
            Self::Passthrough => &[],
            Self::TaskVectors(_) => &["int8_mask", "normalize", "rescale", "lambda"],
        }
    }

    /// Parameters given per input model.
    pub fn tensor_parameters(self) -> &'static [&'static str] {
        match self {
            Self::Linear => &["weight"],
            Self::Slerp => &[],
            Self::Passthrough => &["scale"],
            Self::TaskVectors(tv) => match tv.sparsification(0.0, 0.0) {
                Some(Sparsification::MagnitudeOutliers { .. }) => &["weight", "density", "gamma"],
                Some(Sparsification::DellaMagprune { .. }) => &["weight", "density", "epsilon"],
                _ => &["weight", "density"],
            },
        }
    }

    /// Every parameter name the method reads.
    pub fn parameter_names(self) -> Vec<&'static str> {
        self.global_parameters().iter().chain(self.tensor_parameters()).copied().collect()
    }

    /// Whether the method takes deltas against a base model (which it then requires).
    pub fn needs_base(self) -> bool {
        matches!(self, Self::Slerp | Self::TaskVectors(_))
    }
}

impl TaskVectors {
    fn consensus(self) -> bool {
        matches!(self, Self::Ties | Self::DareTies | Self::BreadcrumbsTies | Self::Della)
    }

    fn sparsification(self, gamma: f64, epsilon: f64) -> Option<Sparsification> {
        match self {
            Self::TaskArithmetic => None,
            Self::Ties => Some(Sparsification::Magnitude),
            Self::DareTies | Self::DareLinear => Some(Sparsification::Random),
            Self::Breadcrumbs | Self::BreadcrumbsTies => Some(Sparsification::MagnitudeOutliers { gamma }),
            Self::Della | Self::DellaLinear => Some(Sparsification::DellaMagprune { epsilon }),
        }
    }

    /// mergekit's default for `normalize`.
    pub fn default_normalize(self) -> bool {
        matches!(self, Self::Ties | Self::Della)
    }

    /// mergekit's default for `rescale` (L1 norm matching after drops).
    pub fn default_rescale(self) -> bool {
        matches!(self, Self::DareTies | Self::DareLinear | Self::Della | Self::DellaLinear)
    }
}

/// One input model's parameters for one tensor (defaults filled in).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelParams {
    /// Mixing weight.
    pub weight: f64,
    /// Fraction of the delta kept.
    pub density: f64,
    /// Breadcrumbs' outlier fraction.
    pub gamma: f64,
    /// DELLA's probability spread.
    pub epsilon: f64,
    /// Passthrough's scale.
    pub scale: Option<f64>,
}

/// A tensor's global parameters (defaults filled in).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GlobalParams {
    /// SLERP's interpolation factor.
    pub t: f64,
    /// Divide by the (kept) weights' sum.
    pub normalize: bool,
    /// L1 rescaling after drops.
    pub rescale: bool,
    /// Scale of the mixed delta.
    pub lambda: f64,
}

/// The inputs of one tensor's merge, all of the same length, in the configuration's order.
pub struct TensorInputs<'a> {
    /// Each model's values (f32, row-major).
    pub values: Vec<&'a [f32]>,
    /// Each model's parameters.
    pub params: Vec<ModelParams>,
    /// Index of the base model in `values`, if it is one of them.
    pub base: Option<usize>,
    /// Length of the last dimension.
    pub cols: usize,
}

impl Method {
    /// Merges one tensor. Errors are messages; the caller names the tensor.
    pub fn merge(self, inputs: &TensorInputs<'_>, global: &GlobalParams, rng: &mut impl Rng) -> std::result::Result<Vec<f32>, String> {
        match self {
            Self::Linear => Ok(linear(inputs, global.normalize)),
            Self::Slerp => slerp_inputs(inputs, global.t),
            Self::Passthrough => passthrough(inputs),
            Self::TaskVectors(tv) => task_vectors(tv, inputs, global, rng),
        }
    }
}

fn linear(inputs: &TensorInputs<'_>, normalize: bool) -> Vec<f32> {
    let weights: Vec<f32> = inputs.params.iter().map(|p| p.weight as f32).collect();
    let total = weights.iter().fold(0.0f32, |s, &w| s + w);
    let n = inputs.values[0].len();
    // mergekit accumulates with torch's `addcmul_`, whose CPU kernel rounds `r + x·w` once (a
    // fused multiply-add): so do we, for the same bits.
    (0..n)
        .map(|i| {
            let v = inputs.values.iter().zip(&weights).fold(0.0f32, |s, (x, &w)| x[i].mul_add(w, s));
            if normalize {
                v / total
            } else {
                v
            }
        })
        .collect()
}

fn passthrough(inputs: &TensorInputs<'_>) -> std::result::Result<Vec<f32>, String> {
    if inputs.values.len() != 1 {
        return Err(format!("passthrough takes exactly one source per tensor, found {}", inputs.values.len()));
    }
    let scale = inputs.params[0].scale.map(|s| s as f32);
    Ok(inputs.values[0].iter().map(|&v| scale.map_or(v, |s| v * s)).collect())
}

fn slerp_inputs(inputs: &TensorInputs<'_>, t: f64) -> std::result::Result<Vec<f32>, String> {
    match (inputs.values.len(), inputs.base) {
        (1, _) => Ok(inputs.values[0].to_vec()),
        (2, Some(b)) => Ok(slerp(t, inputs.values[b], inputs.values[1 - b])),
        (2, None) => Err("slerp needs `base_model` to be one of its two models".into()),
        (n, _) => Err(format!("slerp merges exactly two models, found {n}")),
    }
}

/// Spherical interpolation of whole tensors, `v0` at `t = 0` (mergekit's `slerp`): lerp when
/// the normalised tensors are within 0.9995 of colinear. Computed in f64.
pub fn slerp(t: f64, v0: &[f32], v1: &[f32]) -> Vec<f32> {
    const DOT_THRESHOLD: f64 = 0.9995;
    const EPS: f64 = 1e-8;
    let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    let unit = |n: f64| if n > EPS { n } else { 1.0 };
    let (n0, n1) = (unit(norm(v0)), unit(norm(v1)));
    let dot: f64 = v0.iter().zip(v1).map(|(&a, &b)| (f64::from(a) / n0) * (f64::from(b) / n1)).sum();
    if dot.abs() > DOT_THRESHOLD {
        // numpy computes this branch in the tensors' f32.
        let (a, b) = ((1.0 - t) as f32, t as f32);
        return v0.iter().zip(v1).map(|(&x, &y)| a * x + b * y).collect();
    }
    let theta0 = dot.acos();
    let sin0 = theta0.sin();
    let s0 = (theta0 - theta0 * t).sin() / sin0;
    let s1 = (theta0 * t).sin() / sin0;
    v0.iter().zip(v1).map(|(&x, &y)| (s0 * f64::from(x) + s1 * f64::from(y)) as f32).collect()
}

fn task_vectors(tv: TaskVectors, inputs: &TensorInputs<'_>, global: &GlobalParams, rng: &mut impl Rng) -> std::result::Result<Vec<f32>, String> {
    let b = inputs.base.ok_or("this method needs `base_model`")?;
    let base = inputs.values[b];
    let others: Vec<usize> = (0..inputs.values.len()).filter(|&k| k != b).collect();
    if others.is_empty() {
        return Ok(base.to_vec());
    }
    let mut weighted = Vec::with_capacity(others.len());
    let weights: Vec<f32> = others.iter().map(|&k| inputs.params[k].weight as f32).collect();
    for (&k, &w) in others.iter().zip(&weights) {
        let p = &inputs.params[k];
        let mut delta: Vec<f32> = inputs.values[k].iter().zip(base).map(|(&x, &y)| x - y).collect();
        if let Some(method) = tv.sparsification(p.gamma, p.epsilon) {
            sparsify(&mut delta, inputs.cols, p.density, method, global.rescale, rng)?;
        }
        delta.iter_mut().for_each(|d| *d *= w);
        weighted.push(delta);
    }
    Ok(mix(tv.consensus(), &weighted, &weights, base, global))
}

/// `base + λ · mix(deltas)`: with consensus, the agreeing deltas summed (and divided by their
/// weights when normalising); without, the plain sum (divided by all weights).
pub fn mix(consensus: bool, weighted: &[Vec<f32>], weights: &[f32], base: &[f32], global: &GlobalParams) -> Vec<f32> {
    let lambda = global.lambda as f32;
    let masks = consensus.then(|| sign_consensus(weighted));
    let plain_divisor = match weights.iter().fold(0.0f32, |s, &w| s + w) {
        d if d.abs() < 1e-8 => 1.0,
        d => d,
    };
    (0..base.len())
        .map(|i| {
            let (mut mixed, divisor) = match &masks {
                Some(m) => {
                    let sum = (0..weighted.len()).fold(0.0f32, |s, k| s + if m[k][i] { weighted[k][i] } else { 0.0 });
                    let div = (0..weighted.len()).fold(0.0f32, |s, k| s + if m[k][i] { weights[k] } else { 0.0 });
                    (sum, if div == 0.0 { 1.0 } else { div })
                }
                None => (weighted.iter().fold(0.0f32, |s, d| s + d[i]), plain_divisor),
            };
            if global.normalize {
                mixed /= divisor;
            }
            if lambda != 1.0 {
                mixed *= lambda;
            }
            base[i] + mixed
        })
        .collect()
}

/// DARE with masks given (mergekit's masks come from torch's RNG, so a test supplies them):
/// each delta masked, L1-rescaled when `rescale`, weighted; then mixed as `tv` mixes.
pub fn task_vectors_with_masks(tv: TaskVectors, base: &[f32], models: &[(&[f32], &[bool], f32)], global: &GlobalParams) -> Vec<f32> {
    let weighted: Vec<Vec<f32>> = models
        .iter()
        .map(|&(x, mask, w)| {
            let mut d: Vec<f32> = x.iter().zip(base).map(|(&a, &b)| a - b).collect();
            apply_mask(&mut d, mask, global.rescale);
            d.iter_mut().for_each(|v| *v *= w);
            d
        })
        .collect();
    let weights: Vec<f32> = models.iter().map(|m| m.2).collect();
    mix(tv.consensus(), &weighted, &weights, base, global)
}
