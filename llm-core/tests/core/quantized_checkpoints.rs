//! Quantized checkpoints made by the Python tools run here with the same numbers:
//! a real GPTQModel 7.7 checkpoint (4-bit, group 16, act-order, asymmetric, v1 zero points).

use burn::tensor::backend::Backend;
use llm_core::quant::{QuantExecution, QuantizedWeight};
use llm_core::weights::{load_model, LoadOptions};
use llm_testkit::*;

fn gptq_dir() -> std::path::PathBuf {
    fixture("k_gptq_ckpt")
}

fn load(execution: QuantExecution) -> llm_core::CausalLm<TestBackend> {
    load_on::<TestBackend>(execution, &Default::default())
}

fn load_on<B: Backend>(execution: QuantExecution, device: &B::Device) -> llm_core::CausalLm<B> {
    let options = LoadOptions { quant_execution: execution, ..Default::default() };
    load_model::<B>(gptq_dir(), options, device).expect("GPTQModel checkpoint loads")
}

#[test]
fn gptqmodel_layer_dequantizes_to_its_own_weights_codes_and_zeros() {
    let model = load(QuantExecution::Dequantize);
    let golden = gptq_dir().join("golden.safetensors");
    let q = model.layers[0].self_attn.query.quantized_weight().expect("q_proj is quantized");
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

llm_testkit::backend_test! {
    fn gptqmodel_checkpoint_logits_match_its_dequantized_fp32_model<B>(device, kind) {
        let golden = gptq_dir().join("golden.safetensors");
        let prompts = read_json(&gptq_dir().join("golden.json"))["prompts_ids"].clone();
        // The reference path (dequantize, dense matmul) and the fused kernel on every prompt row.
        // Materialize: the dequantized weight kept on the device (what GPU backends run).
        for execution in [QuantExecution::Dequantize, QuantExecution::Fused, QuantExecution::Materialize] {
            let model = load_on::<B>(execution, device);
            for (p, name) in [(0usize, "prompt0"), (1, "prompt1"), (3, "prompt3")] {
                let ids = json_ids(&prompts[p]);
                let logits = to_vec(model.forward(ids_tensor::<B>(&[ids], device)));
                let (_, want) = read_f32(&golden, &format!("{name}.logits_fp32_dequant"));
                // f32 throughout: as the dense parity tests (1e-4; TF32 on CUDA).
                let diff = assert_close(&format!("{execution:?} {name} logits"), &logits, &want, logits_tol(kind));
                eprintln!("{execution:?} {name}: max |diff| {diff:e}");
            }
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

type Tensors = Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>;

/// A copy of the GPTQModel checkpoint with `edit` applied to its tensors.
fn edited_gptq(name: &str, edit: impl Fn(&mut Tensors)) -> std::path::PathBuf {
    edited(&gptq_dir(), name, edit)
}

/// A copy of the checkpoint in `src` (config and weights) with `edit` applied to its tensors.
fn edited(src: &std::path::Path, name: &str, edit: impl Fn(&mut Tensors)) -> std::path::PathBuf {
    let dir = temp_dir(name);
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<_> =
        st.iter().map(|(n, v)| (n.to_string(), v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    edit(&mut tensors);
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    dir
}

fn load_error(dir: &std::path::Path) -> llm_core::LlmError {
    load_model::<TestBackend>(dir, LoadOptions::default(), &Default::default()).expect_err("must not load")
}

#[test]
fn gptq_qweight_of_the_wrong_shape_names_the_tensor() {
    let dir = edited_gptq("gptq-bad-shape", |t| {
        let q = t.iter_mut().find(|(n, ..)| n == "model.layers.0.self_attn.q_proj.qweight").unwrap();
        q.2 = vec![7, 64];
        q.3.truncate(7 * 64 * 4);
    });
    let err = load_error(&dir);
    assert!(matches!(&err, llm_core::LlmError::Quant { tensor, .. } if tensor.ends_with("q_proj.qweight")), "{err}");
    assert!(err.to_string().contains("[7, 64]"), "{err}");
}

#[test]
fn gptq_layer_missing_its_zeros_is_listed() {
    let dir = edited_gptq("gptq-missing", |t| t.retain(|(n, ..)| n != "model.layers.1.mlp.up_proj.qzeros"));
    let err = load_error(&dir);
    assert!(err.to_string().contains("model.layers.1.mlp.up_proj.qzeros"), "{err}");
}

#[test]
fn gptq_group_index_out_of_range_is_an_error() {
    let dir = edited_gptq("gptq-gidx", |t| {
        let g = t.iter_mut().find(|(n, ..)| n == "model.layers.0.mlp.down_proj.g_idx").unwrap();
        g.3[0..4].copy_from_slice(&99i32.to_le_bytes());
    });
    let err = load_error(&dir);
    assert!(err.to_string().contains("down_proj.g_idx") && err.to_string().contains("99"), "{err}");
}

#[test]
fn unsupported_quant_method_names_the_supported_ones() {
    let dir = temp_dir("aqlm");
    let mut cfg = read_json(&gptq_dir().join("config.json"));
    cfg["quantization_config"]["quant_method"] = "aqlm".into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let err = llm_core::ModelConfig::from_file(dir.join("config.json")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("aqlm") && msg.contains("gptq, awq, hqq, bitsandbytes, llm-rs"), "{msg}");
    // AWQ's GEMV and kernel-specific packings are refused by name, as is a width GEMM cannot pack.
    cfg["quantization_config"] = serde_json::json!({"quant_method": "awq", "version": "gemv", "bits": 4, "group_size": 128});
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let msg = llm_core::ModelConfig::from_file(dir.join("config.json")).unwrap_err().to_string();
    assert!(msg.contains("quantization_config.version") && msg.contains("gemv"), "{msg}");
    cfg["quantization_config"] = serde_json::json!({"quant_method": "awq", "version": "GEMM", "bits": 3, "group_size": 128});
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let msg = llm_core::ModelConfig::from_file(dir.join("config.json")).unwrap_err().to_string();
    assert!(msg.contains("quantization_config.bits"), "{msg}");
}

fn tensor<'a>(t: &'a mut Tensors, name: &str) -> &'a mut (String, safetensors::Dtype, Vec<usize>, Vec<u8>) {
    t.iter_mut().find(|(n, ..)| n == name).unwrap_or_else(|| panic!("{name} in the fixture"))
}

/// AutoAWQ's tiny checkpoint (fixtures/awq_ref/checkpoint) with one tensor spoiled: each is a
/// typed error naming that tensor, never a panic or a silently wrong weight.
#[test]
fn a_malformed_awq_checkpoint_names_the_tensor() {
    let src = repo_path("fixtures/awq_ref/checkpoint");
    let p = "model.layers.0.mlp.up_proj";
    let cases: Vec<(&str, Box<dyn Fn(&mut Tensors)>)> = vec![
        ("qweight", Box::new(move |t| {
            let q = tensor(t, &format!("{p}.qweight"));
            q.2 = vec![32, 16];
            q.3.truncate(32 * 16 * 4);
        })),
        ("scales", Box::new(move |t| {
            let s = tensor(t, &format!("{p}.scales"));
            s.3[0..2].copy_from_slice(&half::f16::NAN.to_le_bytes());
        })),
        ("scales", Box::new(move |t| {
            let s = tensor(t, &format!("{p}.scales"));
            s.2 = vec![3, 128];
            s.3.extend(vec![0u8; 128 * 2]);
        })),
        ("qzeros", Box::new(move |t| {
            let z = tensor(t, &format!("{p}.qzeros"));
            z.1 = safetensors::Dtype::F32;
        })),
    ];
    for (k, (suffix, edit)) in cases.into_iter().enumerate() {
        let err = load_error(&edited(&src, &format!("awq-bad-{k}"), edit));
        assert!(matches!(&err, llm_core::LlmError::Quant { tensor, .. } if *tensor == format!("{p}.{suffix}")), "case {k}: {err}");
    }
}

/// transformers' tiny HQQ checkpoint (fixtures/hqq_ref/tiny) with one tensor spoiled.
#[test]
fn a_malformed_hqq_checkpoint_names_the_tensor() {
    let src = repo_path("fixtures/hqq_ref/tiny");
    let p = "model.layers.1.mlp.down_proj";
    let cases: Vec<(&str, Box<dyn Fn(&mut Tensors)>)> = vec![
        // One packed row too many would shift every block of rows.
        ("W_q", Box::new(move |t| {
            let w = tensor(t, &format!("{p}.W_q"));
            w.2[0] += 1;
            let extra = w.2[1];
            w.3.extend(vec![0u8; extra]);
        })),
        // 4-bit codes stored as int32 words.
        ("W_q", Box::new(move |t| {
            let w = tensor(t, &format!("{p}.W_q"));
            w.1 = safetensors::Dtype::I32;
            w.2[0] /= 4;
        })),
        ("zero", Box::new(move |t| {
            let z = tensor(t, &format!("{p}.zero"));
            z.3[0..4].copy_from_slice(&f32::INFINITY.to_le_bytes());
        })),
        ("shape", Box::new(move |t| tensor(t, &format!("{p}.shape")).3[0..8].copy_from_slice(&65i64.to_le_bytes()))),
        ("nbits", Box::new(move |t| tensor(t, &format!("{p}.nbits")).3.copy_from_slice(&(-4i32).to_le_bytes()))),
        ("group_size", Box::new(move |t| tensor(t, &format!("{p}.group_size")).3.copy_from_slice(&0i32.to_le_bytes()))),
        ("axis", Box::new(move |t| tensor(t, &format!("{p}.axis")).3.copy_from_slice(&0i32.to_le_bytes()))),
        ("packing", Box::new(move |t| {
            let k = tensor(t, &format!("{p}.packing"));
            k.3 = b"9bit_u8".to_vec();
        })),
    ];
    for (k, (suffix, edit)) in cases.into_iter().enumerate() {
        let err = load_error(&edited(&src, &format!("hqq-bad-{k}"), edit));
        assert!(matches!(&err, llm_core::LlmError::Quant { tensor, .. } if *tensor == format!("{p}.{suffix}")), "case {k}: {err}");
    }
}
