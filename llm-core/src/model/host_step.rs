//! Forwards with a KV cache (decode steps, speculative verification, continuous batching's
//! steps, prompts) on the CPU backend as one pass over host memory: the residual
//! stream, norms, rotary embedding, attention on the cache's buffers and the SwiGLU product
//! run on `f32` rows between the fused quantized kernels, with no Burn op, tensor or
//! thread-pool round trip between them. Through Burn the same step ran about 20 tensor ops per
//! layer, each allocating its result and some waking the pool: a fixed cost per token of the
//! same order as reading the weights.
//!
//! The arithmetic is that of the layers' Burn path: the same kernels for every linear product
//! (so the same bits for every row, alone or packed with others), the attention of
//! [`crate::nn::host_attention`], and the norm and SwiGLU in f32 as Burn computes them (up
//! to the order of the norm's sum of squares).
//!
//! It runs ([`CausalLm::host_plan`]) when every linear layer of the model holds a quantized weight whose fused kernel
//! takes this many rows (decode-sized products, and prompts where the weights have prompt
//! kernels: [`crate::quant::GgmlWeight::fused_for`]) or, for up to 8 rows, a dense f32 weight
//! on Flex (read in place), without an active LoRA adapter, in a dense (not MoE) feed-forward;
//! other models and row counts take the Burn path.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};

use super::{CausalLm, FeedForward};
use crate::error::{LlmError, Result};
use crate::nn::host_attention::{self, Geometry};
use crate::nn::host_dense;
use crate::nn::linear::LinearWeight;
use crate::nn::{KvCache, Linear, MaskSpec, RmsNorm};
use crate::quant::{ggml, GgmlWeight, QuantizedWeight};

/// One sequence of a host pass: where its new tokens sit among the pass's rows, the masks of
/// its layers and its cache (batch 1).
pub(crate) struct HostSegment<'c, B: Backend> {
    /// First row of the sequence.
    pub offset: usize,
    /// New tokens.
    pub len: usize,
    /// Hidden keys per attention span, from its [`MaskSpec`].
    pub masks: HostMasks,
    /// Its cache, before the new tokens.
    pub cache: &'c mut KvCache<B>,
}

/// The masks of one sequence, `[len, past + len]` each (true = hidden): full attention and each
/// sliding window a layer uses; `None` where nothing is hidden.
pub(crate) struct HostMasks {
    full: Option<Vec<bool>>,
    windows: Vec<(usize, Option<Vec<bool>>)>,
}

impl HostMasks {
    /// The masks `spec` (batch 1) describes for full attention and for each of `windows`. Plain
    /// causal attention needs none ([`host_attention::segment`] shows each query the keys up to
    /// its own position), which spares a prompt its `[len, past + len]` mask.
    pub fn new(spec: &MaskSpec<'_>, windows: &[usize]) -> Self {
        let causal = spec.attention_mask.is_none() && spec.segment_ids.is_none();
        let full = if causal { None } else { spec.hidden(None) };
        Self { full, windows: windows.iter().map(|&w| (w, spec.hidden(Some(w)))).collect() }
    }

    fn for_window(&self, window: Option<usize>) -> Option<&[bool]> {
        match window {
            None => self.full.as_deref(),
            Some(w) => self.windows.iter().find(|(ww, _)| *ww == w).and_then(|(_, m)| m.as_deref()),
        }
    }
}

/// A linear layer as the host pass runs it: its weight and its bias.
struct HostLinear<'m> {
    weight: HostWeight<'m>,
    bias: Option<Vec<f32>>,
}

/// The weight of a [`HostLinear`].
enum HostWeight<'m> {
    /// Quantized, through its fused kernels.
    Quantized(&'m QuantizedWeight),
    /// Dense f32 `[d_out, d_in]`, read in place from the Flex tensor behind the parameter (a
    /// handle on the same memory, not a copy).
    #[cfg(feature = "flex")]
    Dense(burn_flex::FlexTensor),
}

impl<'m> HostLinear<'m> {
    /// `layer` when the host pass runs its product on `rows` rows (a quantized weight whose
    /// fused kernel takes them, or a dense f32 one on Flex for a few rows) and no adapter adds
    /// to it.
    fn of<B: Backend>(layer: &'m Linear<B>, rows: usize) -> Option<Self> {
        if layer.lora.as_ref().is_some_and(|l| l.enabled) {
            return None;
        }
        let weight = match &layer.weight {
            LinearWeight::Quantized(q) if q.fused_for(rows) => HostWeight::Quantized(&q.weight),
            #[cfg(feature = "flex")]
            LinearWeight::Dense(w) if rows <= host_dense::MAX_ROWS => HostWeight::Dense(host_dense::flex_f32(w.val())?),
            _ => return None,
        };
        Some(Self { weight, bias: layer.bias.as_ref().map(|b| host(b.val())) })
    }

    /// `x · Wᵀ` without the bias. x: `[rows, d_in]` -> `[rows, d_out]`.
    fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        match &self.weight {
            HostWeight::Quantized(q) => q.matmul(x, rows),
            #[cfg(feature = "flex")]
            HostWeight::Dense(w) => host_dense::matmul(w.storage::<f32>(), w.layout().shape()[1], x, rows),
        }
    }
}

/// The layers' weights as a host pass reads them, for the rows it was planned for
/// ([`CausalLm::host_plan`]).
pub(crate) struct HostPlan<'m> {
    layers: Vec<HostLayer<'m>>,
    rows: usize,
}

/// One decoder layer's weights on the host.
struct HostLayer<'m> {
    input_norm: Norm,
    post_norm: Norm,
    qkv: [HostLinear<'m>; 3],
    output: HostLinear<'m>,
    gate_up: [HostLinear<'m>; 2],
    down: HostLinear<'m>,
    geometry: Geometry,
    window: Option<usize>,
}

/// An RMSNorm's weight `[d_model]` and epsilon.
struct Norm {
    weight: Vec<f32>,
    eps: f64,
}

impl Norm {
    fn of<B: Backend>(norm: &RmsNorm<B>) -> Self {
        Self { weight: host(norm.weight.val()), eps: norm.eps }
    }

    /// x: `[rows, d]` -> normed `[rows, d]`: `x / sqrt(mean(x²) + eps) · weight` in f32.
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let d = self.weight.len();
        let mut out = vec![0f32; x.len()];
        for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let rms = (sum_of_squares(row) / d as f32 + self.eps as f32).sqrt();
            for ((o, &v), &w) in o.iter_mut().zip(row).zip(&self.weight) {
                *o = (v / rms) * w;
            }
        }
        out
    }
}

/// `Σ x²` with independent accumulators (the loop vectorizes).
fn sum_of_squares(x: &[f32]) -> f32 {
    crate::quant::kernels::dot(x, x)
}

/// `[..]` of a float tensor on the host.
fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().expect("converted to f32 above")
}

impl<B: Backend> CausalLm<B> {
    /// The layers' weights as the host pass reads them, when the model runs it for `rows`
    /// rows on this backend; `None`: take the Burn path.
    fn host_layers(&self, rows: usize) -> Option<Vec<HostLayer<'_>>> {
        let device = self.device();
        if !crate::quant::host_backend::<B>(&device) || B::ad_enabled(&device) || self.dtype() != DType::F32 {
            return None;
        }
        self.layers
            .iter()
            .map(|layer| {
                let FeedForward::Dense(mlp) = &layer.ffn else { return None };
                let a = &layer.self_attn;
                let l = |linear| HostLinear::of(linear, rows);
                Some(HostLayer {
                    input_norm: Norm::of(&layer.input_layernorm),
                    post_norm: Norm::of(&layer.post_attention_layernorm),
                    qkv: [l(&a.query)?, l(&a.key)?, l(&a.value)?],
                    output: l(&a.output)?,
                    gate_up: [l(&mlp.gate)?, l(&mlp.up)?],
                    down: l(&mlp.down)?,
                    geometry: Geometry { heads: a.n_heads, kv_heads: a.n_kv_heads, head_dim: a.head_dim },
                    window: a.sliding_window,
                })
            })
            .collect()
    }

    /// The distinct sliding windows of the layers (the masks a sequence needs besides the full one).
    pub(crate) fn windows(&self) -> Vec<usize> {
        let mut windows: Vec<usize> = self.layers.iter().filter_map(|l| l.self_attn.sliding_window).collect();
        windows.sort_unstable();
        windows.dedup();
        windows
    }

    /// The plan of a host pass over `segments` (new tokens per sequence), when the model runs
    /// one for them; `None`: take the Burn path.
    pub(crate) fn host_plan(&self, segments: impl IntoIterator<Item = usize>) -> Option<HostPlan<'_>> {
        let mut rows = 0;
        for len in segments {
            if len == 0 {
                return None;
            }
            rows += len;
        }
        if rows == 0 {
            return None;
        }
        Some(HostPlan { layers: self.host_layers(rows)?, rows })
    }

    /// Runs every layer over the embedded rows `x` (`[rows, d_model]`, the segments' tokens in
    /// order) with rotary tables `cos`, `sin` (`[rows, head_dim]`, each row's own position),
    /// writing each segment's keys and values into its cache (which then advances), and
    /// returns the final normed rows `[rows, d_model]`.
    ///
    /// `plan` comes from [`Self::host_plan`] for these segments; other rows, or a cache that
    /// does not hold its new positions on the host, are an error.
    pub(crate) fn host_pass(&self, plan: HostPlan<'_>, mut x: Vec<f32>, cos: &[f32], sin: &[f32], segments: &mut [HostSegment<'_, B>]) -> Result<Vec<f32>> {
        let rows = plan.rows;
        if x.len() != rows * self.config.d_model || segments.iter().map(|s| s.len).sum::<usize>() != rows {
            return Err(LlmError::config("host pass", format!("planned for {rows} rows, given {} values and other segments", x.len())));
        }
        for (i, layer) in plan.layers.iter().enumerate() {
            let g = layer.geometry;
            let normed = layer.input_norm.apply(&x);
            let [mut q, mut k, v] = group(&layer.qkv, &normed, rows);
            host_attention::rotate(&mut q, g.heads, g.head_dim, cos, sin);
            host_attention::rotate(&mut k, g.kv_heads, g.head_dim, cos, sin);
            let mut heads = vec![0f32; rows * g.heads * g.head_dim];
            for s in segments.iter_mut() {
                let span = |width: usize| s.offset * width..(s.offset + s.len) * width;
                let (qw, kw) = (g.heads * g.head_dim, g.kv_heads * g.head_dim);
                let mask = s.masks.for_window(layer.window);
                let (cache, past) = s.cache.layer_mut(i);
                let out = &mut heads[span(qw)];
                let done = cache.with_host_buffers(|keys, values, capacity| {
                    host_attention::segment(g, past, &q[span(qw)], &k[span(kw)], &v[span(kw)], mask, keys, values, capacity, out)
                });
                if done != Some(true) {
                    return Err(LlmError::config("host pass", format!("layer {i}'s cache does not hold the new positions on the host")));
                }
            }
            add(&mut x, &single(&layer.output, &heads, rows));
            let normed = layer.post_norm.apply(&x);
            let [gate, up] = group(&layer.gate_up, &normed, rows);
            add(&mut x, &single(&layer.down, &swiglu(gate, &up), rows));
        }
        for s in segments.iter_mut() {
            s.cache.advance(s.len);
        }
        Ok(Norm::of(&self.norm).apply(&x))
    }
}

/// `x · Wᵢᵀ + bᵢ` for layers sharing an input: one quantization of `x` and one parallel region
/// when they all hold GGML blocks ([`ggml::matmul_group`]), else one product each.
/// x: `[rows, d_in]` -> `[rows, d_out_i]` each.
fn group<const N: usize>(layers: &[HostLinear<'_>; N], x: &[f32], rows: usize) -> [Vec<f32>; N] {
    let blocks: Option<Vec<&GgmlWeight>> = layers
        .iter()
        .map(|l| match l.weight {
            HostWeight::Quantized(QuantizedWeight::Ggml(g)) => Some(g),
            _ => None,
        })
        .collect();
    let outs = match blocks {
        Some(weights) if N > 1 => ggml::matmul_group(&weights, x, rows),
        _ => layers.iter().map(|l| l.matmul(x, rows)).collect(),
    };
    let mut outs: [Vec<f32>; N] = outs.try_into().unwrap_or_else(|_| unreachable!("one output per layer"));
    for (y, l) in outs.iter_mut().zip(layers) {
        if let Some(b) = &l.bias {
            for row in y.chunks_exact_mut(b.len()) {
                add(row, b);
            }
        }
    }
    outs
}

/// One layer's `x · Wᵀ + b`. x: `[rows, d_in]` -> `[rows, d_out]`.
fn single(layer: &HostLinear<'_>, x: &[f32], rows: usize) -> Vec<f32> {
    let [y] = group(std::slice::from_ref(layer).try_into().expect("one layer"), x, rows);
    y
}

/// `x += y` elementwise.
fn add(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// `silu(gate) · up` as Burn's ops compute it on Flex: `gate · sigmoid(gate)` with Flex's
/// sigmoid (`1 / (1 + e^−x)`, or `e^x / (1 + e^x)` below zero), then times `up`.
fn swiglu(mut gate: Vec<f32>, up: &[f32]) -> Vec<f32> {
    for (g, &u) in gate.iter_mut().zip(up) {
        let sigmoid = if *g >= 0.0 {
            1.0 / (1.0 + (-*g).exp())
        } else {
            let e = g.exp();
            e / (1.0 + e)
        };
        *g = (*g * sigmoid) * u;
    }
    gate
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    /// The host SwiGLU is Burn's `silu(gate) · up` on Flex, bit for bit; the host RMSNorm is
    /// Burn's `RmsNorm` up to the order of the sum of squares.
    #[test]
    fn swiglu_and_norm_are_burns() {
        type F = burn::backend::Flex;
        let device = Default::default();
        let (rows, d) = (3, 576);
        let val = |i: usize, k: usize| ((i * k % 1009) as f32 / 97.0) - 5.0;
        let gate: Vec<f32> = (0..rows * d).map(|i| val(i, 37)).collect();
        let up: Vec<f32> = (0..rows * d).map(|i| val(i, 53)).collect();
        let t = |v: &[f32]| Tensor::<F, 2>::from_data(burn::tensor::TensorData::new(v.to_vec(), [rows, d]), &device);
        let want = host(burn::tensor::activation::silu(t(&gate)) * t(&up));
        assert!(swiglu(gate.clone(), &up) == want, "host SwiGLU differs from Burn's");
        let weight: Vec<f32> = (0..d).map(|i| val(i, 11) / 5.0).collect();
        let norm = RmsNorm::<F>::new(Tensor::from_data(burn::tensor::TensorData::new(weight, [d]), &device), 1e-5);
        let want = host(norm.forward(t(&gate)));
        let got = Norm::of(&norm).apply(&gate);
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= 2.0 * f32::EPSILON * b.abs().max(1e-6), "[{i}]: {a} vs {b}");
        }
    }
}
