//! Sharded checkpoints, f16/bf16 on disk, and f16/bf16 in memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::DType;
use llm_core::generate::argmax;
use llm_core::weights::{load_model, LoadOptions};
use llm_testkit::*;
use safetensors::{Dtype, SafeTensors};

fn tiny_llama() -> PathBuf {
    fixture("a_tiny_llama/llama")
}

/// (name, shape, f32 values) of every tensor in the tiny checkpoint.
fn tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(tiny_llama().join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let vals = v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            (n, v.shape().to_vec(), vals)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn write(path: &Path, items: &[(String, Vec<usize>, Vec<f32>)], dtype: Dtype) {
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = items
        .iter()
        .map(|(n, s, v)| {
            let bytes = match dtype {
                Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                Dtype::F16 => v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
                Dtype::BF16 => v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
                _ => unreachable!(),
            };
            (n.clone(), s.clone(), bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = encoded
        .iter()
        .map(|(n, s, b)| (n.clone(), safetensors::tensor::TensorView::new(dtype, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn prompt_logits(dir: &Path, dtype: DType) -> Vec<f32> {
    let device = Default::default();
    let model = load_model::<TestBackend>(dir, LoadOptions { dtype, ..Default::default() }, &device).unwrap();
    let ids = json_ids(&read_json(&tiny_llama().join("golden.json"))["prompts"][1]["input_ids"]);
    to_vec(model.forward(ids_tensor::<TestBackend>(&[ids], &device)))
}

fn golden_prompt1() -> Vec<f32> {
    read_f32(&tiny_llama().join("golden.safetensors"), "prompt1.logits").1
}

#[test]
fn sharded_checkpoint_loads_identically() {
    let dir = temp_dir("shards");
    std::fs::copy(tiny_llama().join("config.json"), dir.join("config.json")).unwrap();
    let all = tensors();
    let (a, b) = all.split_at(all.len() / 2);
    write(&dir.join("model-00001-of-00002.safetensors"), a, Dtype::F32);
    write(&dir.join("model-00002-of-00002.safetensors"), b, Dtype::F32);
    let weight_map: HashMap<&str, &str> = a
        .iter()
        .map(|t| (t.0.as_str(), "model-00001-of-00002.safetensors"))
        .chain(b.iter().map(|t| (t.0.as_str(), "model-00002-of-00002.safetensors")))
        .collect();
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    assert_eq!(prompt_logits(&dir, DType::F32), prompt_logits(&tiny_llama(), DType::F32));
}

#[test]
fn f16_and_bf16_on_disk_load_as_f32() {
    let want = golden_prompt1();
    for (dtype, tol) in [
        // Weights rounded to f16 (11-bit mantissa, rel. 2^-11) move logits of magnitude ~5 by ~1e-2.
        (Dtype::F16, 3e-2),
        // bf16 keeps 8 bits of mantissa (rel. 2^-8): eight times the f16 error.
        (Dtype::BF16, 2e-1),
    ] {
        let dir = temp_dir(&format!("disk-{dtype:?}"));
        std::fs::copy(tiny_llama().join("config.json"), dir.join("config.json")).unwrap();
        write(&dir.join("model.safetensors"), &tensors(), dtype);
        let got = prompt_logits(&dir, DType::F32);
        let diff = assert_close(&format!("{dtype:?} on disk"), &got, &want, tol);
        eprintln!("{dtype:?} on disk: max |diff| {diff:e}");
        assert!(diff > 0.0, "{dtype:?}: rounding must show, or the file was not {dtype:?}");
    }
}

#[test]
fn f16_and_bf16_in_memory_track_f32() {
    let want = golden_prompt1();
    // Weights and activations in half precision: the same bounds as above, plus activation rounding.
    for (dtype, tol) in [(DType::F16, 5e-2), (DType::BF16, 3e-1)] {
        let got = prompt_logits(&tiny_llama(), dtype);
        let diff = assert_close(&format!("{dtype:?} in memory"), &got, &want, tol);
        eprintln!("{dtype:?} in memory: max |diff| {diff:e}");
        assert!(diff > 0.0, "{dtype:?} compute should differ from f32");
        // Greedy choices survive where transformers' top-1 margin is clear.
        let vocab = 512;
        let agree = got.chunks(vocab).zip(want.chunks(vocab)).filter(|(g, w)| argmax(g) == argmax(w)).count();
        assert!(agree >= 11, "{dtype:?}: argmax agrees at {agree}/12 positions");
    }
}

#[test]
fn config_written_by_writers_reads_back_unchanged() {
    // Quantized checkpoints carry a config.json made by ModelConfig::to_hf_json.
    for variant in ["llama", "llama_rope_llama3", "llama_rope_yarn", "mixtral"] {
        let config = llm_core::ModelConfig::from_file(fixture(&format!("a_tiny_llama/{variant}/config.json"))).unwrap();
        let hf: llm_core::config::HfConfig = serde_json::from_value(config.to_hf_json()).unwrap();
        assert_eq!(llm_core::ModelConfig::from_hf(&hf).unwrap(), config, "{variant}");
    }
}
