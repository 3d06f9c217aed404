//! AWQ (Lin et al. 2023) as AutoAWQ 0.2.9 runs it, layer by layer on the calibration text:
//!
//! 1. Each decoder layer's linear inputs are recorded from one pass of the float layer; its
//!    output is the next layer's input (AutoAWQ propagates the unquantized layer).
//! 2. For each group of linears sharing an input (q/k/v after `input_layernorm`, o after v
//!    when their shapes match, gate/up after `post_attention_layernorm`, down after up), a
//!    per-input-channel scale `s = x̄^r / w̄^(1−r)` is searched over `r ∈ {0, 1/20, ..}`: the
//!    one whose `Q(W·s)/s` gives the smallest mean squared error of the inspected block's
//!    output (the whole attention, the whole MLP, or the single linear). Every search sees
//!    the float layer; then all scales are folded in (the previous op divided by `s`, the
//!    linears multiplied).
//! 3. Each weight but q and k is clipped per (row, group) to the bound among
//!    `max|w|·(1 − i/20)`, `i < 10`, that best preserves its partial outputs on 512 sampled
//!    tokens.
//! 4. The linears are quantized with AWQ's zero-point grid (see [`grid`]).
//!
//! The result runs as [`llm_core::quant::AffineWeight`]s and is written in AutoAWQ's GEMM
//! layout by [`crate::save_quantized`] with [`AwqConfig::to_json`].

mod grid;
mod search;

use std::time::Instant;

use burn::module::Param;
use burn::tensor::{backend::Backend, DType, Int, Tensor, TensorData};
use llm_core::model::{DecoderLayer, FeedForward, LayerContext, LinearInput, LinearSlot};
use llm_core::nn::Linear;
use llm_core::quant::{AffineWeight, QuantExecution, QuantizedWeight};
use llm_core::CausalLm;
use serde_json::Value;
use tracing::info;

use self::grid::Grid;
use self::search::{candidate_scales, clip_weight, sample_step, scaled_fake_quant, weight_mean, N_GRID};
use crate::calib::Calibration;
use crate::error::{QuantError, Result};
use crate::gptq::{group_width, host_f32};

/// AWQ settings, with AutoAWQ's names and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct AwqConfig {
    /// Bits per weight (`w_bit`): 4 is what the GEMM layout stores; 2-8 run in memory.
    pub bits: u32,
    /// Columns per group (`q_group_size`); `None` for one group per row.
    pub group_size: Option<usize>,
    /// Allow a group size that does not divide a layer's width (a shorter last group).
    /// AutoAWQ refuses such layers; its checkpoint layout holds them (`ceil(d_in/g)` groups).
    pub partial_groups: bool,
    /// Search the clipping bounds (`apply_clip`).
    pub apply_clip: bool,
    /// Tokens sampled for the clipping search (`n_sample_token`).
    pub clip_tokens: usize,
    /// Sequences per forward batch.
    pub batch_size: usize,
}

impl Default for AwqConfig {
    fn default() -> Self {
        Self { bits: 4, group_size: Some(128), partial_groups: false, apply_clip: true, clip_tokens: 512, batch_size: 4 }
    }
}

impl AwqConfig {
    fn validate(&self) -> Result<()> {
        if !(2..=8).contains(&self.bits) {
            return Err(QuantError::config("bits", format!("{} is outside 2..=8", self.bits)));
        }
        if self.group_size == Some(0) {
            return Err(QuantError::config("group_size", "must be positive (or None for one group)"));
        }
        if self.batch_size == 0 {
            return Err(QuantError::config("batch_size", "must be at least 1"));
        }
        if self.clip_tokens == 0 {
            return Err(QuantError::config("clip_tokens", "must be at least 1"));
        }
        Ok(())
    }

    /// `quantization_config` as AutoAWQ writes it (GEMM packing, zero points).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "quant_method": "awq",
            "zero_point": true,
            "group_size": self.group_size.map_or(-1, |g| g as i64),
            "bits": self.bits,
            "version": "gemm",
            "modules_to_not_convert": null,
        })
    }
}

/// The scale search of one group of linears sharing an input.
#[derive(Debug, Clone)]
pub struct ScaleSearch {
    /// The inspected block (`model.layers.3.self_attn`, `model.layers.3.mlp.down_proj`...).
    pub name: String,
    /// The chosen grid ratio `r`.
    pub ratio: f32,
    /// Mean squared error of the block's output with the chosen scales.
    pub loss: f64,
    /// The same with the weights quantized unscaled (round-to-nearest at the same grid).
    pub rtn_loss: f64,
}

/// What quantizing one decoder layer did.
#[derive(Debug, Clone)]
pub struct AwqLayerReport {
    /// Layer index.
    pub layer: usize,
    /// One entry per scaled group.
    pub searches: Vec<ScaleSearch>,
    /// Linears quantized.
    pub linears: usize,
    /// Wall time.
    pub seconds: f64,
}

/// What quantizing the model did.
#[derive(Debug, Clone, Default)]
pub struct AwqReport {
    /// One entry per decoder layer.
    pub layers: Vec<AwqLayerReport>,
    /// Total wall time.
    pub seconds: f64,
}

/// Quantizes every decoder linear layer of `model` in place with AWQ (the LM head and
/// embeddings stay float), calling `on_layer` after each decoder layer. Weights held in other
/// formats (a GGUF's blocks) are dequantized first. Mixture-of-experts layers are refused.
pub fn quantize_awq<B: Backend>(
    model: &mut CausalLm<B>,
    calibration: &Calibration,
    config: &AwqConfig,
    mut on_layer: impl FnMut(&AwqLayerReport),
) -> Result<AwqReport> {
    config.validate()?;
    if model.layers.iter().any(|l| matches!(l.ffn, FeedForward::Moe(_))) {
        return Err(QuantError::config("model", "AWQ of mixture-of-experts layers is not supported"));
    }
    let started = Instant::now();
    let device = model.device();
    let mut hidden = Vec::new();
    let mut contexts = Vec::new();
    for ids in calibration.id_batches::<B>(config.batch_size, &device)? {
        let [rows, seq] = ids.dims();
        contexts.push(model.layer_context(rows, seq));
        hidden.push(model.embed(ids)?);
    }
    let mut report = AwqReport::default();
    for i in 0..model.layers.len() {
        let layer_started = Instant::now();
        let mut work = LayerWork::new(model, i, config)?;
        let features = Features::record(&model.layers[i], &hidden, &contexts);
        let plan = work.plan();
        let mut searches = Vec::with_capacity(plan.len());
        let mut found = Vec::with_capacity(plan.len());
        for group in &plan {
            let (search, scales) = work.search_scale(&mut model.layers[i], group, &features, &contexts)?;
            info!(block = %search.name, ratio = search.ratio, loss = search.loss, rtn_loss = search.rtn_loss, "AWQ scale");
            searches.push(search);
            found.push(scales);
        }
        let mut features = features;
        for (group, scales) in plan.iter().zip(&found) {
            work.apply_scale(&mut model.layers[i], group, scales)?;
            features.divide(group.input, scales, &device);
        }
        if config.apply_clip {
            for slot in [LinearSlot::V, LinearSlot::O, LinearSlot::Gate, LinearSlot::Up, LinearSlot::Down] {
                work.clip(slot, &features, config.clip_tokens, &device)?;
            }
        }
        let linears = work.quantize(&mut model.layers[i])?;
        hidden = features.next;
        let layer_report = AwqLayerReport { layer: i, searches, linears, seconds: layer_started.elapsed().as_secs_f64() };
        on_layer(&layer_report);
        report.layers.push(layer_report);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// AWQ's grid applied to one weight with no search: AutoAWQ's `pseudo_quantize_tensor` in fp16
/// as `_apply_quant` runs it, as codes with fp16 scales and integer zeros. w: `[d_out, d_in]`.
pub fn quantize_weight_awq(w: &[f32], d_out: usize, d_in: usize, config: &AwqConfig) -> Result<AffineWeight> {
    config.validate()?;
    if w.len() != d_out * d_in {
        return Err(QuantError::Shape { what: "weight".into(), expected: format!("[{d_out}, {d_in}]"), got: format!("{} values", w.len()) });
    }
    if w.iter().any(|v| !v.is_finite()) {
        return Err(QuantError::NonFinite { what: "weight".into() });
    }
    Grid::new(config.bits, d_in, group_width(config.group_size, d_in, config.partial_groups)?).quantize(w, d_out)
}

/// The block whose output a scale search compares.
#[derive(Debug, Clone, Copy)]
enum Inspect {
    Attention,
    Mlp,
    Linear(LinearSlot),
}

/// Linears sharing one input, the op before them that absorbs `1/s`, and the block inspected.
#[derive(Debug, Clone)]
struct ScaleGroup {
    input: LinearInput,
    linears: Vec<LinearSlot>,
    /// `None`: the input's norm absorbs the scales; `Some(slot)`: that linear's output rows.
    prev: Option<LinearSlot>,
    inspect: Inspect,
    name: String,
}

/// Each linear input's recorded values per calibration batch, and the float layer's output.
struct Features<B: Backend> {
    inputs: [Vec<Tensor<B, 3>>; 4],
    next: Vec<Tensor<B, 3>>,
}

fn input_index(input: LinearInput) -> usize {
    LinearInput::ALL.iter().position(|&i| i == input).expect("every input is in ALL")
}

fn input_of(slot: LinearSlot) -> LinearInput {
    *LinearInput::ALL.iter().find(|i| i.consumers().contains(&slot)).expect("a dense layer's slot has an input")
}

impl<B: Backend> Features<B> {
    /// x: per batch `[b, seq, d_model]`.
    fn record(layer: &DecoderLayer<B>, hidden: &[Tensor<B, 3>], contexts: &[LayerContext<B>]) -> Self {
        let mut inputs: [Vec<Tensor<B, 3>>; 4] = Default::default();
        let mut next = Vec::with_capacity(hidden.len());
        for (x, ctx) in hidden.iter().zip(contexts) {
            let mut observe = |which: LinearInput, t: Tensor<B, 3>| inputs[input_index(which)].push(t);
            next.push(layer.forward_observed(x.clone(), &ctx.rope, ctx.mask(layer), &mut observe));
        }
        Self { inputs, next }
    }

    fn of(&self, input: LinearInput) -> &[Tensor<B, 3>] {
        &self.inputs[input_index(input)]
    }

    /// The input as the scaled linears now see it: `x / s`.
    fn divide(&mut self, input: LinearInput, scales: &[f32], device: &B::Device) {
        let s = Tensor::<B, 1>::from_data(TensorData::new(scales.to_vec(), [scales.len()]), device).reshape([1, 1, scales.len()]);
        for t in &mut self.inputs[input_index(input)] {
            *t = t.clone() / s.clone().cast(t.dtype());
        }
    }

    /// Every `step`-th token over all batches (AutoAWQ's sampling for the clip search), taken
    /// on the device so only the sample reaches the host: `[sampled, width]`.
    fn sample(&self, input: LinearInput, n_sample: usize) -> Vec<f32> {
        let xs = self.of(input);
        let n: usize = xs.iter().map(|t| t.dims()[0] * t.dims()[1]).sum();
        let step = sample_step(n, n_sample);
        let (mut first, mut out) = (0usize, Vec::new());
        for t in xs {
            let [b, s, width] = t.dims();
            // Global token indices 0, step, 2·step.. that fall in this batch, made local.
            let local: Vec<i64> = (first.div_ceil(step) * step..first + b * s).step_by(step).map(|g| (g - first) as i64).collect();
            first += b * s;
            if local.is_empty() {
                continue;
            }
            let device = t.device();
            let n = local.len();
            let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(local, [n]), &device);
            out.extend(host_f32(t.clone().reshape([b * s, width]).select(0, idx)));
        }
        out
    }
}

/// The float weights of one layer being quantized (kept on the host, where the grid works).
struct LayerWork {
    layer: usize,
    grid_for: Box<dyn Fn(usize) -> Result<Grid>>,
    weights: Vec<(LinearSlot, Vec<f32>, [usize; 2])>,
    dtype: DType,
}

const DENSE_SLOTS: [LinearSlot; 7] =
    [LinearSlot::Q, LinearSlot::K, LinearSlot::V, LinearSlot::O, LinearSlot::Gate, LinearSlot::Up, LinearSlot::Down];

impl LayerWork {
    /// Reads layer `i`'s weights and makes its linears dense (a GGUF's blocks dequantized), so
    /// the recorded features are the float layer's.
    fn new<B: Backend>(model: &mut CausalLm<B>, i: usize, config: &AwqConfig) -> Result<Self> {
        let dtype = model.dtype();
        let device = model.device();
        let layer = &mut model.layers[i];
        let mut weights = Vec::with_capacity(DENSE_SLOTS.len());
        for slot in DENSE_SLOTS {
            let linear = layer.linear_mut(slot).ok_or_else(|| QuantError::config("model", format!("layer {i} has no {slot:?}")))?;
            let (d_out, d_in) = linear.dims();
            let w = host_f32(linear.dense_weight());
            if w.iter().any(|v| !v.is_finite()) {
                return Err(QuantError::NonFinite { what: format!("layer {i} {slot:?} weight") });
            }
            set_dense(linear, &w, [d_out, d_in], dtype, &device);
            weights.push((slot, w, [d_out, d_in]));
        }
        let (bits, group_size, partial) = (config.bits, config.group_size, config.partial_groups);
        let grid_for = Box::new(move |d_in: usize| -> Result<Grid> {
            Ok(Grid::new(bits, d_in, group_width(group_size, d_in, partial)?))
        });
        Ok(Self { layer: i, grid_for, weights, dtype })
    }

    fn weight(&self, slot: LinearSlot) -> (&[f32], [usize; 2]) {
        let (_, w, shape) = self.weights.iter().find(|(s, _, _)| *s == slot).expect("every dense slot is read");
        (w, *shape)
    }

    fn weight_mut(&mut self, slot: LinearSlot) -> &mut Vec<f32> {
        &mut self.weights.iter_mut().find(|(s, _, _)| *s == slot).expect("every dense slot is read").1
    }

    /// AutoAWQ's Llama groups; o after v only when their weights have one shape (no GQA).
    fn plan(&self) -> Vec<ScaleGroup> {
        let prefix = format!("model.layers.{}", self.layer);
        let mut plan = vec![ScaleGroup {
            input: LinearInput::Attention,
            linears: vec![LinearSlot::Q, LinearSlot::K, LinearSlot::V],
            prev: None,
            inspect: Inspect::Attention,
            name: format!("{prefix}.self_attn"),
        }];
        if self.weight(LinearSlot::V).1 == self.weight(LinearSlot::O).1 {
            plan.push(ScaleGroup {
                input: LinearInput::AttentionOutput,
                linears: vec![LinearSlot::O],
                prev: Some(LinearSlot::V),
                inspect: Inspect::Linear(LinearSlot::O),
                name: format!("{prefix}.self_attn.o_proj"),
            });
        }
        plan.push(ScaleGroup {
            input: LinearInput::Mlp,
            linears: vec![LinearSlot::Gate, LinearSlot::Up],
            prev: None,
            inspect: Inspect::Mlp,
            name: format!("{prefix}.mlp"),
        });
        plan.push(ScaleGroup {
            input: LinearInput::MlpHidden,
            linears: vec![LinearSlot::Down],
            prev: Some(LinearSlot::Up),
            inspect: Inspect::Linear(LinearSlot::Down),
            name: format!("{prefix}.mlp.down_proj"),
        });
        plan
    }

    /// The best scales of `group` on the float layer (which it leaves as it found it).
    fn search_scale<B: Backend>(
        &self,
        layer: &mut DecoderLayer<B>,
        group: &ScaleGroup,
        features: &Features<B>,
        contexts: &[LayerContext<B>],
    ) -> Result<(ScaleSearch, Vec<f32>)> {
        let device = layer.input_layernorm.weight.val().device();
        let d_in = self.weight(group.linears[0]).1[1];
        let grid = (self.grid_for)(d_in).map_err(|e| in_layer(e, self.layer, group.linears[0]))?;
        let inputs = features.of(group.input);
        let x_mean = abs_mean(inputs);
        let ws: Vec<&[f32]> = group.linears.iter().map(|&s| self.weight(s).0).collect();
        let w_mean = weight_mean(&ws, d_in, &grid);
        let reference: Vec<Tensor<B, 3>> =
            inputs.iter().zip(contexts).map(|(x, ctx)| inspect(layer, group.inspect, x.clone(), ctx)).collect();
        let mut loss_with = |scales: &[f32]| -> f64 {
            for &slot in &group.linears {
                let (w, shape) = self.weight(slot);
                let q = scaled_fake_quant(w, scales, &grid);
                set_dense(layer.linear_mut(slot).expect("planned slot"), &q, shape, self.dtype, &device);
            }
            mse(layer, group.inspect, inputs, contexts, &reference)
        };
        let rtn_loss = loss_with(&vec![1.0; d_in]);
        let (mut best, mut best_ratio, mut best_loss) = (None, -1.0f32, f64::INFINITY);
        for k in 0..N_GRID {
            let ratio = k as f32 / N_GRID as f32;
            let scales = candidate_scales(&x_mean, &w_mean, ratio);
            let loss = loss_with(&scales);
            if loss < best_loss {
                (best, best_ratio, best_loss) = (Some(scales), ratio, loss);
            }
        }
        for &slot in &group.linears {
            let (w, shape) = self.weight(slot);
            set_dense(layer.linear_mut(slot).expect("planned slot"), w, shape, self.dtype, &device);
        }
        let scales = best.ok_or_else(|| QuantError::NonFinite { what: format!("{} output under every AWQ scale", group.name) })?;
        Ok((ScaleSearch { name: group.name.clone(), ratio: best_ratio, loss: best_loss, rtn_loss }, scales))
    }

    /// Folds `scales` in: the previous op divided (the norm's weight or the previous linear's
    /// output rows), the group's linears multiplied along their input.
    fn apply_scale<B: Backend>(&mut self, layer: &mut DecoderLayer<B>, group: &ScaleGroup, scales: &[f32]) -> Result<()> {
        let device = layer.input_layernorm.weight.val().device();
        match group.prev {
            None => {
                let norm = match group.input {
                    LinearInput::Attention => &mut layer.input_layernorm,
                    _ => &mut layer.post_attention_layernorm,
                };
                let s = Tensor::<B, 1>::from_data(TensorData::new(scales.to_vec(), [scales.len()]), &device);
                let w = norm.weight.val();
                norm.weight = Param::from_tensor(w.clone() / s.cast(w.dtype()));
            }
            Some(prev) => {
                let shape = self.weight(prev).1;
                let w = self.weight_mut(prev);
                for (row, s) in w.chunks_exact_mut(shape[1]).zip(scales) {
                    row.iter_mut().for_each(|v| *v /= s);
                }
                let w = w.clone();
                let linear = layer.linear_mut(prev).expect("planned slot");
                set_dense(linear, &w, shape, self.dtype, &device);
                // The bias is part of the output the next linear now sees times s: divide it
                // too (AutoAWQ's scale_fc_fc).
                if let Some(bias) = &mut linear.bias {
                    let s = Tensor::<B, 1>::from_data(TensorData::new(scales.to_vec(), [scales.len()]), &device);
                    let b = bias.val();
                    *bias = Param::from_tensor(b.clone() / s.cast(b.dtype()));
                }
            }
        }
        for &slot in &group.linears {
            let shape = self.weight(slot).1;
            let w = self.weight_mut(slot);
            for row in w.chunks_exact_mut(shape[1]) {
                row.iter_mut().zip(scales).for_each(|(v, s)| *v *= s);
            }
            let w = w.clone();
            set_dense(layer.linear_mut(slot).expect("planned slot"), &w, shape, self.dtype, &device);
        }
        Ok(())
    }

    /// Clips `slot`'s weight to its best per-(row, group) bounds.
    fn clip<B: Backend>(&mut self, slot: LinearSlot, features: &Features<B>, clip_tokens: usize, device: &B::Device) -> Result<()> {
        let [d_out, d_in] = self.weight(slot).1;
        let grid = (self.grid_for)(d_in).map_err(|e| in_layer(e, self.layer, slot))?;
        let x = features.sample(input_of(slot), clip_tokens);
        let clipped = clip_weight::<B>(self.weight(slot).0, d_out, &x, &grid, device);
        *self.weight_mut(slot) = clipped;
        Ok(())
    }

    /// Replaces every linear of the layer with its AWQ codes. Returns how many.
    fn quantize<B: Backend>(&self, layer: &mut DecoderLayer<B>) -> Result<usize> {
        let device = layer.input_layernorm.weight.val().device();
        for (slot, w, [d_out, d_in]) in &self.weights {
            let grid = (self.grid_for)(*d_in).map_err(|e| in_layer(e, self.layer, *slot))?;
            let q = grid.quantize(w, *d_out)?;
            let linear = layer.linear_mut(*slot).expect("dense slot");
            let bias = linear.bias.as_ref().map(|b| b.val());
            *linear = Linear::quantized_as(QuantizedWeight::Affine(q), bias, QuantExecution::Auto, self.dtype, &device);
        }
        Ok(self.weights.len())
    }
}

fn in_layer(e: QuantError, layer: usize, slot: LinearSlot) -> QuantError {
    match e {
        QuantError::Config { field, message } => QuantError::Config { field, message: format!("layer {layer} {slot:?}: {message}") },
        other => other,
    }
}

/// Replaces the linear's weight with `w` (`[d_out, d_in]`), keeping its bias.
fn set_dense<B: Backend>(linear: &mut Linear<B>, w: &[f32], shape: [usize; 2], dtype: DType, device: &B::Device) {
    let bias = linear.bias.as_ref().map(|b| b.val());
    let t = Tensor::<B, 2>::from_data(TensorData::new(w.to_vec(), shape), (device, dtype));
    *linear = Linear::new(t, bias);
}

/// Per channel, the mean of `|x|` over every token of every batch. xs: each `[b, s, width]`.
fn abs_mean<B: Backend>(xs: &[Tensor<B, 3>]) -> Vec<f32> {
    let width = xs[0].dims()[2];
    let mut sum = vec![0f64; width];
    let mut n = 0usize;
    for x in xs {
        let [b, s, _] = x.dims();
        let col = x.clone().reshape([b * s, width]).cast(DType::F32).abs().sum_dim(0);
        for (acc, v) in sum.iter_mut().zip(host_f32(col)) {
            *acc += f64::from(v);
        }
        n += b * s;
    }
    sum.into_iter().map(|v| (v / n as f64) as f32).collect()
}

/// The inspected block's output. x: `[b, s, width]`.
fn inspect<B: Backend>(layer: &DecoderLayer<B>, which: Inspect, x: Tensor<B, 3>, ctx: &LayerContext<B>) -> Tensor<B, 3> {
    match (which, &layer.ffn) {
        (Inspect::Attention, _) => layer.self_attn.forward(x, &ctx.rope, ctx.mask(layer), None),
        (Inspect::Mlp, FeedForward::Dense(mlp)) => mlp.forward(x),
        (Inspect::Mlp, FeedForward::Moe(_)) => unreachable!("mixture-of-experts layers are refused up front"),
        (Inspect::Linear(slot), _) => layer.linear(slot).expect("planned slot").forward(x),
    }
}

/// Mean squared difference between the block's output now and `reference`, over all batches.
fn mse<B: Backend>(
    layer: &DecoderLayer<B>,
    which: Inspect,
    inputs: &[Tensor<B, 3>],
    contexts: &[LayerContext<B>],
    reference: &[Tensor<B, 3>],
) -> f64 {
    let (mut sum, mut n) = (0f64, 0usize);
    for ((x, ctx), r) in inputs.iter().zip(contexts).zip(reference) {
        let out = inspect(layer, which, x.clone(), ctx);
        n += out.dims().iter().product::<usize>();
        let d = (out - r.clone()).cast(DType::F32);
        sum += f64::from(host_f32(d.powi_scalar(2).sum())[0]);
    }
    sum / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_on_the_device_takes_the_rows_the_host_rule_takes() {
        type B = burn::backend::Flex;
        let device = Default::default();
        // Two batches of [2, 5, 3] and [1, 5, 3]: 15 tokens, every 3rd sampled for 5 asked.
        let batch = |b: usize, offset: f32| {
            let v: Vec<f32> = (0..b * 5 * 3).map(|i| offset + i as f32).collect();
            Tensor::<B, 3>::from_data(TensorData::new(v, [b, 5, 3]), &device)
        };
        let (x0, x1) = (batch(2, 0.0), batch(1, 100.0));
        let features = Features::<B> { inputs: [vec![], vec![], vec![x0.clone(), x1.clone()], vec![]], next: vec![] };
        let all: Vec<f32> = host_f32(x0).into_iter().chain(host_f32(x1)).collect();
        assert_eq!(features.sample(LinearInput::Mlp, 5), search::sample_rows(&all, 3, 5));
        assert_eq!(features.sample(LinearInput::Mlp, 100), all);
    }
}
