//! Attaching trainable LoRA adapters to a model, as peft's `get_peft_model` does.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
pub use llm_core::adapter::{LoraConfig, TargetModules};
use llm_core::nn::LoraAdapter;
use llm_core::CausalLm;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Result, TrainError};
use crate::params::{is_lora, set_trainable};

/// The LoRA configuration attach_lora takes: llm-core's one [`LoraConfig`] (the same type
/// [`llm_core::adapter::PeftAdapter`] reads from `adapter_config.json`).
pub type LoraSpec = LoraConfig;

/// The modules of `all` that `targets` selects; [`TrainError::NoTargetMatch`] listing `all`
/// when none matches.
pub fn select_targets(targets: &TargetModules, all: &[String]) -> Result<Vec<String>> {
    let chosen = targets.matching(all)?;
    if chosen.is_empty() {
        return Err(TrainError::NoTargetMatch { pattern: targets.to_string(), modules: all.to_vec() });
    }
    Ok(chosen)
}

/// Adds a fresh adapter to every layer `spec` targets, initialised as peft does (A
/// Kaiming-uniform with `a = √5`, i.e. `U(-1/√d_in, 1/√d_in)`; B zero, so the model starts
/// unchanged), freezes every other parameter, and returns the adapted module names.
///
/// `seed` fixes A's draw. Layers that already carry an adapter get a new one.
pub fn attach_lora<B: Backend>(model: CausalLm<B>, spec: &LoraSpec, seed: u64) -> Result<(CausalLm<B>, Vec<String>)> {
    spec.validate()?;
    let mut model = model;
    let all: Vec<String> = model.linears().into_iter().map(|(n, _)| n).collect();
    let chosen = select_targets(&spec.targets, &all)?;
    let (dtype, device) = (model.dtype(), model.device());
    let mut rng = StdRng::seed_from_u64(seed);
    for name in &chosen {
        let (r, _, scaling) = spec.scaling_for(name);
        let linear = model.linear_mut(name).expect("selected from linears()");
        let (d_out, d_in) = linear.dims();
        let bound = 1.0 / (d_in as f64).sqrt();
        let a: Vec<f32> = (0..r * d_in).map(|_| rng.random_range(-bound..bound) as f32).collect();
        let a = Tensor::<B, 2>::from_data(TensorData::new(a, [r, d_in]), (&device, dtype));
        let b = Tensor::<B, 2>::zeros([d_out, r], (&device, dtype));
        let mut lora = LoraAdapter::new(a, b, scaling);
        lora.dropout = spec.dropout;
        linear.lora = Some(lora);
    }
    tracing::info!(modules = chosen.len(), r = spec.r, alpha = spec.alpha, "attached LoRA adapters");
    Ok((set_trainable(model, is_lora), chosen))
}
