//! Weight-only methods that need no calibration — int8 absmax / zero-point, LLM.int8(),
//! NF4/FP4, round-to-nearest at 2-8 bits, HQQ at 1-8 bits — applied to one weight or to a
//! whole model.

use std::time::Instant;

use burn::tensor::backend::Backend;
use llm_core::nn::Linear;
use llm_core::quant::{AffineWeight, DoubleQuantState, Fp4Weight, OutlierInt8Weight, QuantExecution, QuantizedWeight};
use llm_core::CausalLm;
use serde_json::Value;

use crate::error::{QuantError, Result};
use crate::gptq::{fp16_scales, host_f32, rtn_quantize, GptqParams};
use crate::hqq::{quantize_hqq, HqqParams};
use crate::int8::{int8_vectorwise, quantize_int8, Granularity, Int8Quantized, Int8Scheme};
use crate::nf4::{quantize_fp4, Fp4Kind, Fp4Quantized};

/// A calibration-free quantization method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// int8 absmax (symmetric) or zero-point (asymmetric) per tensor, row or group.
    Int8 {
        /// Symmetric or asymmetric.
        scheme: Int8Scheme,
        /// Which elements share a scale.
        granularity: Granularity,
    },
    /// LLM.int8(): vector-wise int8 weights; input columns with `|x| ≥ threshold` in float.
    LlmInt8 {
        /// Outlier threshold (bitsandbytes' default 6.0).
        threshold: f32,
    },
    /// NF4 / FP4 blocks (bitsandbytes).
    Fp4 {
        /// Code table.
        kind: Fp4Kind,
        /// Elements per absmax block (64 in bitsandbytes and QLoRA).
        blocksize: usize,
        /// Quantize the absmax values too (QLoRA's double quantization).
        double_quant: bool,
    },
    /// Round-to-nearest with GPTQ's group parameters: the baseline GPTQ is measured against.
    Rtn {
        /// 2, 3, 4 or 8.
        bits: u32,
        /// Columns per group; `None` for one group per row.
        group_size: Option<usize>,
        /// Symmetric.
        sym: bool,
        /// Allow a shorter last group when `group_size` does not divide a layer's width.
        partial_groups: bool,
    },
    /// HQQ: a per-group affine grid whose zero point a proximal solver fits (see [`crate::hqq`]).
    Hqq(HqqParams),
}

impl Method {
    /// `quantization_config` for a checkpoint of this method (see [`crate::save`]).
    pub fn config_json(&self) -> Value {
        match *self {
            Self::Int8 { scheme, granularity } => {
                let (gran, group) = match granularity {
                    Granularity::PerTensor => ("tensor", None),
                    Granularity::PerRow => ("row", None),
                    Granularity::PerGroup(g) => ("group", Some(g)),
                };
                serde_json::json!({
                    "quant_method": "llm-rs",
                    "format": "int8",
                    "scheme": if scheme == Int8Scheme::Absmax { "absmax" } else { "zeropoint" },
                    "granularity": gran,
                    "group_size": group,
                })
            }
            Self::LlmInt8 { threshold } => bnb_json(false, None, threshold),
            Self::Fp4 { kind, double_quant, .. } => bnb_json(true, Some((kind, double_quant)), 6.0),
            Self::Rtn { bits, group_size, sym, .. } => serde_json::json!({
                "bits": bits,
                "group_size": group_size.map_or(-1, |g| g as i64),
                "desc_act": false,
                "sym": sym,
                "lm_head": false,
                "quant_method": "gptq",
                "checkpoint_format": "gptq",
                "format": "gptq",
                "pack_dtype": "int32",
                "meta": { "quantizer": [format!("llm-quant:{} (round-to-nearest)", env!("CARGO_PKG_VERSION"))] },
            }),
            Self::Hqq(params) => crate::hqq::config_json(&params),
        }
    }
}

/// transformers' `BitsAndBytesConfig` as serialised in `config.json`.
fn bnb_json(four_bit: bool, fp4: Option<(Fp4Kind, bool)>, threshold: f32) -> Value {
    let (kind, double_quant) = fp4.unwrap_or((Fp4Kind::Nf4, false));
    serde_json::json!({
        "quant_method": "bitsandbytes",
        "load_in_4bit": four_bit,
        "load_in_8bit": !four_bit,
        "bnb_4bit_quant_type": kind.name(),
        "bnb_4bit_use_double_quant": double_quant,
        "bnb_4bit_compute_dtype": "float32",
        "bnb_4bit_quant_storage": "uint8",
        "llm_int8_threshold": threshold,
        "llm_int8_has_fp16_weight": false,
        "llm_int8_skip_modules": null,
        "llm_int8_enable_fp32_cpu_offload": false,
    })
}

/// Quantizes one weight. w: `[d_out, d_in]` row-major.
pub fn quantize_weight(w: &[f32], d_out: usize, d_in: usize, method: Method) -> Result<QuantizedWeight> {
    if w.len() != d_out * d_in {
        return Err(QuantError::Shape { what: "weight".into(), expected: format!("[{d_out}, {d_in}]"), got: format!("{} values", w.len()) });
    }
    Ok(match method {
        Method::Int8 { scheme, granularity } => QuantizedWeight::Affine(int8_to_affine(&quantize_int8(w, d_out, d_in, scheme, granularity)?)?),
        Method::LlmInt8 { threshold } => {
            let q = int8_vectorwise(w, d_out, d_in)?;
            QuantizedWeight::OutlierInt8(OutlierInt8Weight::new(d_out, d_in, q.codes, q.row_absmax, threshold)?)
        }
        Method::Fp4 { kind, blocksize, double_quant } => {
            QuantizedWeight::Fp4(fp4_to_weight(&quantize_fp4(w, kind, blocksize, double_quant)?, d_out, d_in)?)
        }
        Method::Rtn { bits, group_size, sym, partial_groups } => {
            let params = GptqParams { bits, group_size, sym, partial_groups, ..Default::default() };
            let out = rtn_quantize(w, d_out, d_in, &params)?;
            QuantizedWeight::Affine(AffineWeight::new(d_out, d_in, bits, &out.codes, fp16_scales(&out.scales), out.zeros, out.g_idx)?)
        }
        Method::Hqq(params) => {
            let q = quantize_hqq(w, d_out, d_in, &params)?;
            QuantizedWeight::Affine(q.to_affine(d_out, d_in, params.bits, params.group_size)?)
        }
    })
}

/// An int8 result as 8-bit affine codes (`q + 128`, zero `zp + 128`, step `1/scale`).
pub fn int8_to_affine(q: &Int8Quantized) -> Result<AffineWeight> {
    let (rows, cols) = (q.rows, q.cols);
    let n_groups = match q.granularity {
        Granularity::PerTensor | Granularity::PerRow => 1,
        Granularity::PerGroup(g) => cols / g,
    };
    let mut scales = Vec::with_capacity(rows * n_groups);
    let mut zeros = Vec::with_capacity(rows * n_groups);
    for r in 0..rows {
        for g in 0..n_groups {
            let i = q.scale_index(r, g * (cols / n_groups));
            scales.push(1.0 / q.scales[i]);
            zeros.push(q.zero_points.as_ref().map_or(0.0, |z| z[i]) + 128.0);
        }
    }
    let codes: Vec<u8> = q.codes.iter().map(|&c| (i16::from(c) + 128) as u8).collect();
    let g_idx = (0..cols).map(|c| (c / (cols / n_groups)) as u32).collect();
    Ok(AffineWeight::new(rows, cols, 8, &codes, scales, zeros, g_idx)?)
}

/// A 4-bit result as the runtime's weight `[d_out, d_in]`.
pub fn fp4_to_weight(q: &Fp4Quantized, d_out: usize, d_in: usize) -> Result<Fp4Weight> {
    let double_quant = q.double_quant.as_ref().map(|dq| DoubleQuantState {
        codes: dq.codes.clone(),
        code: dq.code.clone(),
        absmax2: dq.absmax2.clone(),
        blocksize2: dq.blocksize2,
        offset: dq.offset,
    });
    Ok(Fp4Weight::new(q.kind, q.kind.code_table(), d_out, d_in, q.blocksize, q.packed.clone(), q.absmax.clone(), double_quant)?)
}

/// What quantizing one layer cost in accuracy and bytes.
#[derive(Debug, Clone)]
pub struct WeightReport {
    /// Hugging Face prefix.
    pub name: String,
    /// `‖W − Q‖² / ‖W‖²`.
    pub relative_weight_error: f64,
    /// Bytes of the quantized layer.
    pub bytes: usize,
    /// Wall time.
    pub seconds: f64,
}

/// Quantizes every linear layer except those `skip` names (pass `|n| n == "lm_head"` to keep
/// the head float, as every tool does by default), calling `on_layer` after each.
pub fn quantize_model<B: Backend>(
    model: &mut CausalLm<B>,
    method: Method,
    skip: impl Fn(&str) -> bool,
    mut on_layer: impl FnMut(&WeightReport),
) -> Result<Vec<WeightReport>> {
    let names: Vec<String> = model.linears().into_iter().map(|(n, _)| n).filter(|n| !skip(n)).collect();
    let (dtype, device) = (model.dtype(), model.device());
    let mut reports = vec![];
    for name in names {
        let started = Instant::now();
        let linear = model.linear_mut(&name).expect("name listed by linears()");
        // A layer this crate already quantized stays as it is; GGML blocks (a GGUF loaded as
        // stored) are the model's own weights here, dequantized and quantized like dense ones.
        if linear.quantized_weight().is_some_and(|q| !matches!(q, llm_core::quant::QuantizedWeight::Ggml(_))) {
            continue;
        }
        let (d_out, d_in) = linear.dims();
        let w = host_f32(linear.dense_weight());
        let q = quantize_weight(&w, d_out, d_in, method).map_err(|e| match e {
            QuantError::Config { field, message } => QuantError::Config { field, message: format!("{name}: {message}") },
            other => other,
        })?;
        let deq = q.dequantize();
        let (num, den) = w.iter().zip(&deq).fold((0f64, 0f64), |(n, d), (&a, &b)| {
            (n + f64::from(a - b).powi(2), d + f64::from(a).powi(2))
        });
        let report = WeightReport {
            name: name.clone(),
            relative_weight_error: if den > 0.0 { num / den } else { 0.0 },
            bytes: q.storage_bytes(),
            seconds: started.elapsed().as_secs_f64(),
        };
        let bias = linear.bias.as_ref().map(|b| b.val());
        *linear = Linear::quantized_as(q, bias, QuantExecution::Auto, dtype, &device);
        on_layer(&report);
        reports.push(report);
    }
    Ok(reports)
}
