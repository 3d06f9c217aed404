//! `max_position_embeddings` is the trained length, not a limit: a model with dynamic NTK
//! RoPE evaluates a window twice that long, as transformers does.

use burn::tensor::{activation::log_softmax, Int, Tensor, TensorData};
use llm_core::eval::perplexity;
use llm_core::weights::{load_model, LoadOptions};
use llm_core::CausalLm;
use llm_testkit::*;

#[test]
fn dynamic_rope_model_scores_a_window_past_its_trained_length() {
    let dir = temp_dir("dynamic-rope");
    let mut cfg = read_json(&fixture("a_tiny_llama/llama/config.json"));
    cfg["max_position_embeddings"] = 32.into();
    cfg["rope_parameters"] = serde_json::json!({"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0});
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(fixture("a_tiny_llama/llama/model.safetensors"), dir.join("model.safetensors")).unwrap();
    let device = Default::default();
    let model: CausalLm<TestBackend> = load_model(&dir, LoadOptions::default(), &device).unwrap();
    let ids: Vec<u32> = (0..64u32).map(|i| (i * 37 + 11) % model.config.vocab_size as u32).collect();
    // Before: "prompt of 64 tokens does not fit the model's context of 32".
    let report = perplexity(&model, &ids, 64, 64).unwrap();
    assert_eq!((report.windows, report.n_tokens()), (1, 63));
    // The same NLL straight from one forward over all 64 positions (dynamic NTK rescales the
    // base from the longest position, 64 > 32).
    let input = Tensor::<TestBackend, 2, Int>::from_data(TensorData::new(ids.iter().map(|&i| i64::from(i)).collect(), [1, 64]), &device);
    let logp = to_vec(log_softmax(model.forward(input), 2));
    let vocab = model.config.vocab_size;
    let nll: Vec<f32> = (1..64).map(|t| -logp[(t - 1) * vocab + ids[t] as usize]).collect();
    assert_close("per-token NLL past the trained length", &nll, &report.nll, 1e-5);
    assert!(report.perplexity.is_finite() && report.perplexity > 1.0, "{}", report.perplexity);
}
