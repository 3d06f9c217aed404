//! QLoRA: the frozen base held in NF4 (optionally double-quantized) with LoRA in float, and the
//! choice of base when merging.

use std::collections::HashMap;

use burn::tensor::backend::Backend;
use burn::tensor::ElementConversion;
use llm_core::adapter::merge_adapters;
use llm_core::nn::Linear;
use llm_core::CausalLm;
use llm_quant::method::WeightReport;
use llm_quant::nf4::Fp4Kind;
use llm_quant::{quantize_model, Method};

use crate::error::{Result, TrainError};

/// QLoRA's base format: NF4 in blocks of 64, the output head kept float.
pub fn nf4_method(double_quant: bool) -> Method {
    Method::Fp4 { kind: Fp4Kind::Nf4, blocksize: 64, double_quant }
}

/// Quantizes every linear layer but `lm_head` to NF4 in place (call before attaching LoRA).
/// Under an autodiff backend the layers dequantize per call, so gradients flow through the
/// dequantized base to the adapters while the base itself has no trainable parameter.
pub fn quantize_base_nf4<B: Backend>(model: &mut CausalLm<B>, double_quant: bool) -> Result<Vec<WeightReport>> {
    Ok(quantize_model(model, nf4_method(double_quant), |n| n == llm_core::model::arch::LM_HEAD_MODULE, |_| {})?)
}

/// Which weights a QLoRA adapter is merged into.
pub enum MergeBase<'a, B: Backend> {
    /// The dequantized NF4 weights the adapter was trained against.
    Dequantized,
    /// The original float model (same architecture) the NF4 base was made from.
    Original(&'a CausalLm<B>),
}

/// How far the two possible merge bases are apart, per adapted layer.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeDifference {
    /// Hugging Face prefix.
    pub name: String,
    /// `max |W_nf4 − W_float|`: the merged weights differ by exactly this.
    pub max_abs: f64,
    /// `‖W_nf4 − W_float‖ / ‖W_float‖`.
    pub relative: f64,
}

/// Merges `model`'s adapters into the chosen base and returns a dense model (every layer
/// float, ready for [`llm_quant::save_model`]) with the per-layer difference between merging
/// into the dequantized NF4 weights and into the original float weights (empty when `model`
/// holds no quantized layer or no original is given).
pub fn merge_qlora<B: Backend>(model: &CausalLm<B>, base: MergeBase<'_, B>) -> Result<(CausalLm<B>, Vec<MergeDifference>)> {
    let mut differences = vec![];
    let merged = match base {
        MergeBase::Dequantized => {
            let mut m = model.clone();
            merge_adapters(&mut m)?;
            dequantize_all(&mut m);
            m
        }
        MergeBase::Original(original) => {
            let originals: HashMap<String, &Linear<B>> = original.linears().into_iter().collect();
            let mut m = original.clone();
            for (name, linear) in model.linears() {
                let orig = originals.get(&name).ok_or_else(|| {
                    TrainError::config("original model", format!("has no layer {name}: not the model the base was made from"))
                })?;
                if orig.dims() != linear.dims() {
                    return Err(TrainError::config("original model", format!("{name}: {:?} vs {:?}", orig.dims(), linear.dims())));
                }
                if linear.quantized_weight().is_some() && linear.lora.is_some() {
                    differences.push(difference(&name, linear.dense_weight(), orig.dense_weight()));
                }
                let target = m.linear_mut(&name).expect("same architecture");
                target.lora = linear.lora.clone();
                target.merge_lora().map_err(|e| TrainError::config(name.clone(), e.to_string()))?;
            }
            m
        }
    };
    Ok((merged, differences))
}

fn difference<B: Backend>(name: &str, quantized: burn::tensor::Tensor<B, 2>, original: burn::tensor::Tensor<B, 2>) -> MergeDifference {
    let d = quantized - original.clone();
    let max_abs = d.clone().abs().max().into_scalar().elem::<f64>();
    let num = d.square().sum().into_scalar().elem::<f64>().sqrt();
    let den = original.square().sum().into_scalar().elem::<f64>().sqrt();
    MergeDifference { name: name.to_string(), max_abs, relative: if den > 0.0 { num / den } else { 0.0 } }
}

fn dequantize_all<B: Backend>(model: &mut CausalLm<B>) {
    let names: Vec<String> =
        model.linears().into_iter().filter(|(_, l)| l.quantized_weight().is_some()).map(|(n, _)| n).collect();
    for n in names {
        let l = model.linear_mut(&n).expect("listed");
        let w = l.dense_weight();
        let bias = l.bias.take().map(|b| b.val());
        *l = Linear::new(w, bias);
    }
}
