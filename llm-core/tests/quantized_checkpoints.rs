//! Quantized checkpoints made by the Python tools run here with the same numbers:
//! a real GPTQModel 7.7 checkpoint (4-bit, group 16, act-order, asymmetric, v1 zero points).

mod common;

use common::*;
use llm_core::quant::{QuantExecution, QuantizedWeight};
use llm_core::weights::{load_model, LoadOptions};

fn gptq_dir() -> std::path::PathBuf {
    fixture("k_gptq_ckpt")
}

fn load(execution: QuantExecution) -> llm_core::CausalLm<TestBackend> {
    let options = LoadOptions { quant_execution: execution, ..Default::default() };
    load_model::<TestBackend>(gptq_dir(), options, &Default::default()).expect("GPTQModel checkpoint loads")
}

#[test]
fn gptqmodel_layer_dequantizes_to_its_own_weights_codes_and_zeros() {
    let model = load(QuantExecution::Dequantize);
    let golden = gptq_dir().join("golden.safetensors");
    let q = model.layers[0].self_attn.q_proj.quantized_weight().expect("q_proj is quantized");
    let QuantizedWeight::Affine(w) = q else { panic!("GPTQ loads as an affine weight, got {q:?}") };
    assert_eq!((w.bits, w.n_groups()), (4, 4));
    assert!(w.describe().ends_with("act-order"), "{}", w.describe());
    // Bit-exact: fp16 scales upcast, integer codes and zeros.
    let (_, want) = read_f32(&golden, "q_proj0.dequant_weight");
    assert_close("q_proj0 dequantized", &w.dequantize(), &want, 0.0);
    // codes_in_out is [in, out]; ours are [out, in].
    let (_, codes_in_out) = read_f32(&golden, "q_proj0.codes_in_out");
    let codes = w.codes();
    let mismatches = (0..64 * 64).filter(|&i| f32::from(codes[(i % 64) * 64 + i / 64]) != codes_in_out[i]).count();
    assert_eq!(mismatches, 0, "codes differ from GPTQModel's");
    // zeros [groups, out] after the v1 offset is undone.
    let (_, zeros) = read_f32(&golden, "q_proj0.zeros");
    let ours: Vec<f32> = (0..4 * 64).map(|i| w.zeros()[(i % 64) * 4 + i / 64]).collect();
    assert_eq!(ours, zeros, "zero points differ (v1 word offset?)");
}

#[test]
fn gptqmodel_checkpoint_logits_match_its_dequantized_fp32_model() {
    let golden = gptq_dir().join("golden.safetensors");
    let prompts = read_json(&gptq_dir().join("golden.json"))["prompts_ids"].clone();
    let device = Default::default();
    // The reference path (dequantize, dense matmul) and the fused kernel on every prompt row.
    for execution in [QuantExecution::Dequantize, QuantExecution::Fused] {
        let model = load(execution);
        for (p, name) in [(0usize, "prompt0"), (1, "prompt1"), (3, "prompt3")] {
            let ids = json_ids(&prompts[p]);
            let logits = to_vec(model.forward(ids_tensor::<TestBackend>(&[ids], &device)));
            let (_, want) = read_f32(&golden, &format!("{name}.logits_fp32_dequant"));
            // f32 throughout: 1e-4 absolute, as the dense parity tests.
            let diff = assert_close(&format!("{execution:?} {name} logits"), &logits, &want, 1e-4);
            eprintln!("{execution:?} {name}: max |diff| {diff:e}");
        }
    }
}

#[test]
fn gptqmodel_fp16_run_agrees_loosely() {
    // GPTQModel's own CPU kernel runs in fp16; ours in f32 from the same codes.
    let golden = gptq_dir().join("golden.safetensors");
    let prompts = read_json(&gptq_dir().join("golden.json"))["prompts_ids"].clone();
    let model = load(QuantExecution::Auto);
    let logits = to_vec(model.forward(ids_tensor::<TestBackend>(&[json_ids(&prompts[0])], &Default::default())));
    let (_, want) = read_f32(&golden, "prompt0.logits_gptqmodel_torch_fp16");
    let diff = assert_close("vs GPTQModel fp16 kernel", &logits, &want, 2e-2);
    eprintln!("vs GPTQModel fp16: max |diff| {diff:e}");
}
