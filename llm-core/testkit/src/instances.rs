//! One copy of the generic code every test binary would otherwise compile again.
//!
//! A test that loads a model and runs it on `B` makes rustc generate (monomorphize) the model,
//! Burn's tensor ops and, for WGPU, its fusion and kernel-launch code for `B`: about four
//! minutes of one core per binary for `Wgpu`. At `opt-level` 0 and 1 (the dev and test
//! profiles) rustc shares generics: a crate reuses the instances its dependencies already
//! compiled. The functions below instantiate the common paths (load, forward with and without
//! a KV cache, generation, beam search, perplexity; forward and backward under autodiff) once
//! per compiled-in backend here, and every test binary that links this crate reuses them.
//!
//! Compiled only with debug assertions (the dev and test profiles; in release, rustc does not
//! share generics, and an example built in release would pay for them for nothing).

use burn::backend::Autodiff;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use llm_core::generate::{GenerationConfig, Generator};
use llm_core::weights::{load_model, LoadOptions};
use llm_core::{CausalLm, ModelInput};

use crate::fixture;

/// Entry points of the shared instances, one set per compiled-in backend. Never called: taking
/// their addresses is what makes rustc generate them in this crate.
#[doc(hidden)]
pub fn shared_instances() -> Vec<*const ()> {
    #[allow(unused_mut)]
    let mut entries: Vec<*const ()> = Vec::new();
    #[cfg(feature = "flex")]
    entries.extend(entries_for::<llm_core::backend::Flex>());
    #[cfg(feature = "wgpu")]
    entries.extend(entries_for::<llm_core::backend::Wgpu>());
    #[cfg(feature = "cuda")]
    entries.extend(entries_for::<llm_core::backend::Cuda>());
    entries
}

fn entries_for<B: Backend>() -> [*const (); 2] {
    [inference::<B> as *const (), training::<Autodiff<B>> as *const ()]
}

fn ids<B: Backend>(device: &B::Device) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(vec![1i64, 328, 384], [1, 3]), device)
}

/// What the inference tests run on `B`.
fn inference<B: Backend>(device: &B::Device) -> llm_core::Result<()> {
    let model: CausalLm<B> = load_model(fixture("a_tiny_llama/llama"), LoadOptions::default(), device)?;
    let _ = model.forward(ids(device)).into_data();
    let mut cache = model.new_cache(1, 8);
    let mut input = ModelInput::new(ids(device));
    input.last_logits_only = true;
    let _ = model.forward_with(input, Some(&mut cache))?.logits.argmax(2).into_data();
    let _ = model.forward_hidden(ModelInput::new(ids(device)), None)?;
    let generator = Generator::new(&model, GenerationConfig::greedy(2))?;
    let _ = generator.generate(&[vec![1, 328, 384]])?;
    let _ = Generator::new(&model, GenerationConfig { num_beams: 2, ..GenerationConfig::greedy(2) })?.beam_search(&[vec![1, 328]])?;
    let _ = llm_core::eval::perplexity(&model, &[1, 328, 384, 353], 4, 2)?;
    Ok(())
}

/// What the training tests run on `B` (an autodiff backend): forward, a loss, backward.
fn training<B: AutodiffBackend>(device: &B::Device) -> llm_core::Result<()> {
    let model: CausalLm<B> = load_model(fixture("a_tiny_llama/llama"), LoadOptions::default(), device)?;
    let logits = model.forward(ids(device));
    let loss = burn::tensor::activation::log_softmax(logits, 2).mean();
    let _ = loss.backward();
    Ok(())
}
