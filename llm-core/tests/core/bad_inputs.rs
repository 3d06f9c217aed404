//! Corrupt, truncated and lying files, and configs we do not support, give typed errors that
//! name the file, tensor or field — never a panic or a huge allocation.

use std::io::Write;
use std::path::Path;

use llm_core::LlmError;
use llm_core::config::ModelConfig;
use llm_core::weights::{load_model, GgufSource, LoadOptions};
use llm_testkit::*;

fn copy_config(from: &str, to: &Path) {
    std::fs::copy(fixture(&format!("a_tiny_llama/{from}/config.json")), to.join("config.json")).unwrap();
}

fn load_err(path: &Path) -> LlmError {
    match load_model::<TestBackend>(path, LoadOptions::default(), &Default::default()) {
        Ok(_) => panic!("{} loaded but should not", path.display()),
        Err(e) => e,
    }
}

#[test]
fn gpt2_model_type_is_a_config_error_naming_the_field() {
    let dir = temp_dir("gpt2");
    let mut cfg = read_json(&fixture("a_tiny_llama/llama/config.json"));
    cfg["model_type"] = "gpt2".into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let err = ModelConfig::from_file(dir.join("config.json")).unwrap_err();
    assert!(matches!(&err, LlmError::Config { field, .. } if field == "model_type"), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("gpt2") && msg.contains("llama, mistral, qwen2, mixtral"), "{msg}");
}

#[test]
fn corrupt_safetensors_names_the_file() {
    let dir = temp_dir("corrupt-st");
    copy_config("llama", &dir);
    let mut bytes = std::fs::read(fixture("a_tiny_llama/llama/model.safetensors")).unwrap();
    // Header length claims far more bytes than the file holds.
    bytes[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    std::fs::write(dir.join("model.safetensors"), &bytes).unwrap();
    let err = load_err(&dir);
    assert!(matches!(&err, LlmError::Safetensors { path, .. } if path.ends_with("model.safetensors")), "{err:?}");

    // Truncated data section.
    let good = std::fs::read(fixture("a_tiny_llama/llama/model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &good[..good.len() / 2]).unwrap();
    assert!(matches!(load_err(&dir), LlmError::Safetensors { .. }));
}

#[test]
fn checkpoint_mismatch_lists_every_problem_at_once() {
    let dir = temp_dir("mismatch");
    // Config says 3 layers and a wider MLP than the 2-layer checkpoint holds.
    let mut cfg = read_json(&fixture("a_tiny_llama/llama/config.json"));
    cfg["num_hidden_layers"] = 3.into();
    cfg["intermediate_size"] = 96.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(fixture("a_tiny_llama/llama/model.safetensors"), dir.join("model.safetensors")).unwrap();
    match load_err(&dir) {
        LlmError::WeightMismatch { missing, unexpected, mis_shaped, .. } => {
            assert_eq!(missing.len(), 9, "every tensor of layer 2: {missing:?}");
            assert!(missing.iter().all(|m| m.starts_with("model.layers.2.")));
            assert!(unexpected.is_empty(), "{unexpected:?}");
            assert_eq!(mis_shaped.len(), 6, "gate/up/down of layers 0 and 1: {mis_shaped:?}");
            assert!(mis_shaped.contains(&("model.layers.0.mlp.up_proj.weight".into(), vec![96, 64], vec![128, 64])));
        }
        other => panic!("expected WeightMismatch, got {other:?}"),
    }
}

#[test]
fn unexpected_tensors_are_reported_by_name() {
    let dir = temp_dir("unexpected");
    // The Mixtral checkpoint under a Llama config: experts are unexpected, MLPs missing.
    copy_config("llama", &dir);
    std::fs::copy(fixture("a_tiny_llama/mixtral/model.safetensors"), dir.join("model.safetensors")).unwrap();
    match load_err(&dir) {
        LlmError::WeightMismatch { missing, unexpected, .. } => {
            assert!(missing.contains(&"model.layers.0.mlp.gate_proj.weight".to_string()));
            assert!(unexpected.contains(&"model.layers.1.block_sparse_moe.experts.3.w2.weight".to_string()));
        }
        other => panic!("expected WeightMismatch, got {other:?}"),
    }
}

#[test]
fn truncated_gguf_is_an_error_naming_the_tensor() {
    let real = std::fs::read(smollm2_gguf()).unwrap();
    let dir = temp_dir("trunc-gguf");
    let path = dir.join("truncated.gguf");
    // Metadata and tensor infos are intact; the data section is cut short.
    std::fs::write(&path, &real[..40 << 20]).unwrap();
    let err = GgufSource::open(&path).err().expect("truncated file must not open");
    let msg = err.to_string();
    assert!(matches!(err, LlmError::Gguf { .. }), "{msg}");
    assert!(msg.contains("truncated.gguf") && msg.contains("past the end"), "{msg}");

    // Cut inside the metadata (the token list).
    std::fs::write(&path, &real[..200_000]).unwrap();
    assert!(matches!(GgufSource::open(&path), Err(LlmError::Gguf { .. })));
}

/// A minimal GGUF v3 header with one metadata array whose count is a lie.
fn lying_gguf(count: u64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(b"GGUF");
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes()); // tensors
    b.extend(1u64.to_le_bytes()); // metadata
    let key = b"tokenizer.ggml.tokens";
    b.extend((key.len() as u64).to_le_bytes());
    b.extend(key);
    b.extend(9u32.to_le_bytes()); // array
    b.extend(8u32.to_le_bytes()); // of strings
    b.extend(count.to_le_bytes());
    b
}

#[test]
fn lying_gguf_counts_do_not_allocate() {
    let dir = temp_dir("lying-gguf");
    let path = dir.join("lying.gguf");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&lying_gguf(u64::MAX)).unwrap();
    drop(f);
    let err = GgufSource::open(&path).err().expect("lying file must not open");
    assert!(err.to_string().contains("claims"), "{err}");

    // Wrong magic and unknown tensor types are errors too.
    std::fs::write(&path, b"GGML\x03\0\0\0").unwrap();
    assert!(GgufSource::open(&path).err().unwrap().to_string().contains("magic"));
}

#[test]
fn unknown_gguf_tensor_type_is_named() {
    let mut b = Vec::new();
    b.extend(b"GGUF");
    b.extend(3u32.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    let name = b"blk.0.attn_q.weight";
    b.extend((name.len() as u64).to_le_bytes());
    b.extend(name);
    b.extend(2u32.to_le_bytes());
    b.extend(256u64.to_le_bytes());
    b.extend(4u64.to_le_bytes());
    b.extend(16u32.to_le_bytes()); // IQ2_XXS
    b.extend(0u64.to_le_bytes());
    let path = temp_dir("iq2").join("iq2_xxs.gguf");
    std::fs::write(&path, &b).unwrap();
    let err = GgufSource::open(&path).err().unwrap();
    assert!(matches!(&err, LlmError::UnsupportedDtype { tensor, dtype, .. }
        if tensor == "blk.0.attn_q.weight" && dtype.contains("IQ2_XXS")), "{err}");
}

#[test]
fn a_config_claiming_a_million_layers_fails_at_once_naming_the_field() {
    // A million is past any model (config error on its own); 4000 is plausible but not what
    // this 2-layer file holds (error from the file's tensor names, before building a layer).
    for (claimed, says) in [(1_000_000, "exceeds the supported maximum 4096"), (4000, "for 2")] {
        let dir = temp_dir(&format!("many-layers-{claimed}"));
        let mut cfg = read_json(&fixture("a_tiny_llama/llama/config.json"));
        cfg["num_hidden_layers"] = claimed.into();
        std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
        std::fs::copy(fixture("a_tiny_llama/llama/model.safetensors"), dir.join("model.safetensors")).unwrap();
        let started = std::time::Instant::now();
        let err = load_err(&dir);
        // Before: 63 s and 3 GB building and listing a million layers.
        assert!(started.elapsed().as_secs_f64() < 2.0, "took {:?}", started.elapsed());
        assert!(matches!(&err, LlmError::Config { field, .. } if field == "num_hidden_layers"), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&claimed.to_string()) && msg.contains(says), "{msg}");
    }
}
