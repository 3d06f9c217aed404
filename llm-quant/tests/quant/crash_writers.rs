//! The quantized-checkpoint writer under SIGKILL: a child saves version after version of a
//! GPTQ-layout checkpoint (`save_quantized`, the writer `save_model` shares) and is killed at
//! varied points; the directory is always absent or one complete version, byte for byte.

use llm_core::weights::InitWeights;
use llm_core::ModelConfig;
use llm_quant::{quantize_model, save_quantized, Method};
use llm_testkit::*;

const ENV: &str = "LLM_QUANT_CRASH_CHILD";

/// Runs only as the child of `a_killed_quantized_save_leaves_a_complete_checkpoint`.
#[test]
fn quantized_writer_child() {
    let config = ModelConfig::from_file(fixture("a_tiny_llama/llama/config.json")).unwrap();
    let method = Method::Rtn { bits: 4, group_size: Some(32), sym: false, partial_groups: false };
    crash_child_writes(ENV, |path, version| {
        let mut model = config.init_with::<TestBackend>(InitWeights::Random { seed: version }, &Default::default(), &Default::default());
        quantize_model(&mut model, method, |n| n == "lm_head", |_| {}).unwrap();
        save_quantized(&model, None, method.config_json(), path).unwrap();
    });
}

#[test]
fn a_killed_quantized_save_leaves_a_complete_checkpoint() {
    let found = assert_writes_survive_kills("crash_writers::quantized_writer_child", ENV, "quantized", 6);
    assert!(found > 0, "no kill landed after a first complete save; the child may not start");
}
