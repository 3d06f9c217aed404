//! GPTQ (Frantar et al. 2022) over a whole model: calibration activations collected layer by
//! layer through the model's own forward, each linear layer solved against its Hessian
//! `2/n·XᵀX`, and the quantized layer used when collecting the next inputs (sequential, as
//! GPTQModel's `true_sequential`), so later layers see the errors of earlier ones.

mod linalg;
mod solver;

use std::time::Instant;

use burn::tensor::{backend::Backend, ElementConversion, Tensor, TensorData};
use llm_core::model::{FeedForward, LinearId, LinearInput};
use llm_core::nn::Linear;
use llm_core::quant::{AffineWeight, QuantExecution, QuantizedWeight};
use llm_core::CausalLm;
use serde_json::Value;
use tracing::info;

pub use solver::{gptq_quantize, rtn_quantize, GptqOutput, GptqParams, Hessian};
pub(crate) use solver::group_width;

use crate::calib::Calibration;
use crate::error::{QuantError, Result};

/// GPTQ settings, with GPTQModel's names and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct GptqConfig {
    /// Solver settings: bits, group size, sym, damping, block size, act-order, static groups.
    pub params: GptqParams,
    /// Re-collect each sub-layer's input after quantizing the ones before it (GPTQModel's
    /// default); otherwise a layer's four inputs come from one pass.
    pub true_sequential: bool,
    /// Sequences per forward batch during calibration.
    pub batch_size: usize,
}

impl Default for GptqConfig {
    fn default() -> Self {
        Self { params: GptqParams::default(), true_sequential: true, batch_size: 4 }
    }
}

impl GptqConfig {
    /// `quantization_config` as GPTQModel writes it (`checkpoint_format: gptq`, v1 zeros).
    pub fn to_json(&self) -> Value {
        let p = &self.params;
        serde_json::json!({
            "bits": p.bits,
            "group_size": p.group_size.map_or(-1, |g| g as i64),
            "desc_act": p.act_order,
            "sym": p.sym,
            "lm_head": false,
            "quant_method": "gptq",
            "checkpoint_format": "gptq",
            "format": "gptq",
            "method": "gptq",
            "pack_dtype": "int32",
            "meta": {
                "quantizer": [format!("llm-quant:{}", env!("CARGO_PKG_VERSION"))],
                "damp_percent": p.damp_percent,
                "damp_auto_increment": p.damp_auto_increment,
                "static_groups": p.static_groups,
                "true_sequential": self.true_sequential,
                "act_group_aware": false,
                "mse": 0.0,
            },
        })
    }
}

/// What quantizing one linear layer did.
#[derive(Debug, Clone)]
pub struct LayerReport {
    /// Hugging Face prefix ([`llm_core::model::LinearId::hf`]).
    pub name: String,
    /// `‖(W − Q)·Xᵀ‖² / ‖W·Xᵀ‖²` over the calibration inputs (from the Hessian).
    pub relative_output_error: f64,
    /// The same measure for round-to-nearest at the same bits and groups, on the same inputs.
    pub rtn_relative_output_error: f64,
    /// GPTQ's own loss (sum of weighted squared errors).
    pub loss: f64,
    /// Damping used (raised from the configured one when the Hessian was not positive definite).
    pub damp_percent: f64,
    /// Times the damping was raised.
    pub damp_retries: u32,
    /// Calibration rows (tokens) behind the Hessian.
    pub n_samples: usize,
    /// Wall time for this layer's solve.
    pub seconds: f64,
}

/// What quantizing the model did.
#[derive(Debug, Clone, Default)]
pub struct GptqReport {
    /// One entry per quantized linear layer, in order.
    pub layers: Vec<LayerReport>,
    /// Total wall time.
    pub seconds: f64,
}

/// Quantizes every decoder linear layer of `model` in place (the LM head and embeddings stay
/// float, as GPTQModel's `lm_head: false`), calling `on_layer` after each.
///
/// Mixture-of-experts layers are refused: each expert sees a different token subset, which
/// this driver does not route yet.
pub fn quantize_gptq<B: Backend>(
    model: &mut CausalLm<B>,
    calibration: &Calibration,
    config: &GptqConfig,
    mut on_layer: impl FnMut(&LayerReport),
) -> Result<GptqReport> {
    config.params.validate()?;
    if config.batch_size == 0 {
        return Err(QuantError::config("batch_size", "must be at least 1"));
    }
    if model.layers.iter().any(|l| matches!(l.ffn, FeedForward::Moe(_))) {
        return Err(QuantError::config("model", "GPTQ calibration of mixture-of-experts layers is not supported"));
    }
    let started = Instant::now();
    let device = model.device();
    let batches = calibration.id_batches::<B>(config.batch_size, &device)?;
    let mut hidden: Vec<Tensor<B, 3>> = batches.into_iter().map(|ids| model.embed(ids)).collect::<llm_core::Result<_>>()?;
    let mut report = GptqReport::default();
    for i in 0..model.layers.len() {
        let stages: Vec<Vec<LinearInput>> = if config.true_sequential {
            LinearInput::ALL.iter().map(|&s| vec![s]).collect()
        } else {
            vec![LinearInput::ALL.to_vec()]
        };
        for stage in stages {
            let hessians = collect_hessians(model, i, &hidden, &stage)?;
            for (input, hessian) in stage.iter().zip(&hessians) {
                for &slot in input.consumers() {
                    let name = LinearId::Layer { layer: i, slot }.hf();
                    let layer = quantize_linear(model, &name, hessian, &config.params)?;
                    info!(layer = %layer.name, error = layer.relative_output_error, "GPTQ");
                    on_layer(&layer);
                    report.layers.push(layer);
                }
            }
        }
        hidden = propagate(model, i, hidden);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The Hessians of the given inputs of layer `i` over every calibration batch.
fn collect_hessians<B: Backend>(
    model: &CausalLm<B>,
    i: usize,
    hidden: &[Tensor<B, 3>],
    inputs: &[LinearInput],
) -> Result<Vec<Hessian>> {
    let layer = &model.layers[i];
    let mut sums: Vec<Option<(Vec<f64>, usize, usize)>> = vec![None; inputs.len()];
    for x in hidden {
        let [b, s, _] = x.dims();
        let ctx = model.layer_context(b, s);
        let mut observe = |which: LinearInput, t: Tensor<B, 3>| {
            if let Some(k) = inputs.iter().position(|&w| w == which) {
                let [b, s, width] = t.dims();
                // XᵀX on the backend (a dense matmul), accumulated on the host in f64.
                let x2 = t.reshape([b * s, width]).cast(burn::tensor::DType::F32);
                let xtx = x2.clone().transpose().matmul(x2);
                let host = llm_core::io::host_f32(xtx).1;
                let entry = sums[k].get_or_insert_with(|| (vec![0f64; width * width], 0, width));
                for (acc, v) in entry.0.iter_mut().zip(host) {
                    *acc += f64::from(v);
                }
                entry.1 += b * s;
            }
        };
        layer.forward_observed(x.clone(), &ctx.rope, ctx.mask(layer), &mut observe);
    }
    sums.into_iter()
        .zip(inputs)
        .map(|(sum, input)| {
            let (sum, n, cols) =
                sum.ok_or_else(|| QuantError::Calibration(format!("layer {i}: input {input:?} was never observed")))?;
            if sum.iter().any(|v| !v.is_finite()) {
                return Err(QuantError::NonFinite { what: format!("layer {i} calibration activations ({input:?})") });
            }
            let scale = 2.0 / n as f64;
            Ok(Hessian { cols, n_samples: n, h: sum.into_iter().map(|v| v * scale).collect() })
        })
        .collect()
}

/// Solves one layer and swaps its weight for the quantized one.
fn quantize_linear<B: Backend>(model: &mut CausalLm<B>, name: &str, hessian: &Hessian, params: &GptqParams) -> Result<LayerReport> {
    let started = Instant::now();
    let dtype = model.dtype();
    let device = model.device();
    let linear = model.linear_mut(name).ok_or_else(|| QuantError::config("layer", format!("no linear layer `{name}`")))?;
    let (d_out, d_in) = linear.dims();
    let w = host_f32(linear.dense_weight());
    let out = gptq_quantize(&w, d_out, d_in, hessian, params, name).map_err(|e| in_layer(e, name))?;
    let error = relative_output_error::<B>(&w, &out.dequant, d_out, d_in, &hessian.h, &device);
    let rtn = rtn_quantize(&w, d_out, d_in, params).map_err(|e| in_layer(e, name))?;
    let rtn_error = relative_output_error::<B>(&w, &rtn.dequant, d_out, d_in, &hessian.h, &device);
    let weight = AffineWeight::new(d_out, d_in, params.bits, &out.codes, fp16_scales(&out.scales), out.zeros, out.g_idx)?;
    let bias = linear.bias.as_ref().map(|b| b.val());
    *linear = Linear::quantized_as(QuantizedWeight::Affine(weight), bias, QuantExecution::Auto, dtype, &device);
    Ok(LayerReport {
        name: name.to_string(),
        relative_output_error: error,
        rtn_relative_output_error: rtn_error,
        loss: out.loss,
        damp_percent: out.damp_percent_used,
        damp_retries: out.damp_retries,
        n_samples: hessian.n_samples,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Prefixes a setting error with the layer it is about.
fn in_layer(e: QuantError, name: &str) -> QuantError {
    match e {
        QuantError::Config { field, message } => QuantError::Config { field, message: format!("{name}: {message}") },
        other => other,
    }
}

/// Runs layer `i` (now quantized) over every batch: the next layer's inputs.
fn propagate<B: Backend>(model: &CausalLm<B>, i: usize, hidden: Vec<Tensor<B, 3>>) -> Vec<Tensor<B, 3>> {
    let layer = &model.layers[i];
    hidden
        .into_iter()
        .map(|x| {
            let [b, s, _] = x.dims();
            let ctx = model.layer_context(b, s);
            layer.forward(x, &ctx.rope, ctx.mask(layer), None).0
        })
        .collect()
}

/// Scales rounded to fp16, as GPTQ checkpoints store them: the model in memory then computes
/// exactly what the saved checkpoint will.
pub(crate) fn fp16_scales(scales: &[f32]) -> Vec<f32> {
    scales.iter().map(|&s| half::f16::from_f32(s).to_f32()).collect()
}

pub(crate) fn host_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    llm_core::io::host_f32(t).1
}

/// `tr(D·H·Dᵀ) / tr(W·H·Wᵀ)` with `D = W − Q`: the output error over the calibration inputs
/// relative to the output energy, computed on the backend. w, q: `[d_out, d_in]`, h: `[d_in, d_in]`.
pub fn relative_output_error<B: Backend>(w: &[f32], q: &[f32], d_out: usize, d_in: usize, h: &[f64], device: &B::Device) -> f64 {
    let h = Tensor::<B, 2>::from_data(TensorData::new(h.iter().map(|&v| v as f32).collect::<Vec<_>>(), [d_in, d_in]), device);
    let w = Tensor::<B, 2>::from_data(TensorData::new(w.to_vec(), [d_out, d_in]), device);
    let q = Tensor::<B, 2>::from_data(TensorData::new(q.to_vec(), [d_out, d_in]), device);
    let quad = |v: Tensor<B, 2>| -> f64 { f64::from((v.clone().matmul(h.clone()) * v).sum().into_scalar().elem::<f32>()) };
    let energy = quad(w.clone());
    if energy > 0.0 {
        quad(w - q) / energy
    } else {
        0.0
    }
}
