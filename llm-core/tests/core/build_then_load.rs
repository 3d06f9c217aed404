//! Build, then load: `ModelConfig::init_with` builds lazy weights, `load_into` fills them;
//! loading through the two steps is the loader, random init is `RandomSource` exactly, and a
//! mismatched checkpoint leaves the built model untouched.

use burn::tensor::{Int, Tensor, TensorData};
use llm_core::config::ModelConfig;
use llm_core::weights::{build_model, load_into, load_model, InitWeights, LoadOptions, RandomSource, SafetensorsSource};
use llm_core::{CausalLm, LlmError};
use llm_testkit::*;

fn ids() -> Tensor<TestBackend, 2, Int> {
    Tensor::from_data(TensorData::new(vec![1i64, 5, 9, 2, 7], [1, 5]), &Default::default())
}

fn logits(model: &CausalLm<TestBackend>) -> Vec<f32> {
    model.forward(ids()).into_data().convert::<f32>().into_vec().unwrap()
}

#[test]
fn init_is_lazy_and_load_into_matches_load_model_bit_for_bit() {
    for variant in ["llama", "mixtral"] {
        let dir = fixture(&format!("a_tiny_llama/{variant}"));
        let config = ModelConfig::from_file(dir.join("config.json")).unwrap();
        let device = Default::default();
        let mut model: CausalLm<TestBackend> = config.init(&device);
        assert!(!model.embed_tokens.is_initialized(), "{variant}: init allocated the embedding");
        let source = SafetensorsSource::open_dir(&dir).unwrap();
        load_into(&mut model, &source, &LoadOptions::default()).unwrap();
        let loaded = load_model::<TestBackend>(&dir, LoadOptions::default(), &device).unwrap();
        assert_eq!(logits(&model), logits(&loaded), "{variant}");
    }
}

#[test]
fn random_init_is_random_source_exactly() {
    let config = ModelConfig::from_file(fixture("a_tiny_llama/mixtral/config.json")).unwrap();
    let device = Default::default();
    let options = LoadOptions::default();
    let built: CausalLm<TestBackend> = config.init_with(InitWeights::Random { seed: 3 }, &options, &device);
    let sourced: CausalLm<TestBackend> = build_model(config.clone(), &RandomSource::new(&config, 3), options, &device).unwrap();
    assert_eq!(logits(&built), logits(&sourced));
    let other: CausalLm<TestBackend> = config.init_with(InitWeights::Random { seed: 4 }, &options, &device);
    assert_ne!(logits(&built), logits(&other));
}

#[test]
fn a_mismatched_checkpoint_is_reported_whole_and_leaves_the_model_as_built() {
    let llama = fixture("a_tiny_llama/llama");
    let mixtral = ModelConfig::from_file(fixture("a_tiny_llama/mixtral/config.json")).unwrap();
    let device = Default::default();
    let mut model: CausalLm<TestBackend> = mixtral.init_with(InitWeights::Random { seed: 1 }, &LoadOptions::default(), &device);
    let before = logits(&model);
    let err = load_into(&mut model, &SafetensorsSource::open_dir(&llama).unwrap(), &LoadOptions::default()).unwrap_err();
    let LlmError::WeightMismatch { missing, unexpected, .. } = &err else { panic!("{err:?}") };
    assert!(missing.iter().any(|n| n.ends_with("block_sparse_moe.experts.0.w1.weight")), "{missing:?}");
    assert!(unexpected.iter().any(|n| n.ends_with("mlp.gate_proj.weight")), "{unexpected:?}");
    assert_eq!(logits(&model), before);
}
