//! Shared helpers for llm-train's tests: fixtures, the test backends, comparisons.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use llm_core::chat::Message;
use llm_core::weights::{load_model, LoadOptions};
use llm_core::{CausalLm, Tokenizer};
use llm_train::data::{SftExample, Turns};
use llm_train::sft::{SftTokenizer, TokenizedExample};
use safetensors::SafeTensors;

/// Training runs on Flex under autodiff.
pub type TrainBackend = burn::backend::Autodiff<burn::backend::Flex>;

/// `<repo>/fixtures/<rel>` (copied from `../shared/fixtures`).
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(rel)
}

pub fn read_json(file: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(file).expect("fixture exists")).expect("fixture is JSON")
}

/// (shape, values as f32) of a tensor in a safetensors fixture (f32 or i64/i32).
pub fn read_tensor(file: &Path, name: &str) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let st = SafeTensors::deserialize(&bytes).expect("fixture parses");
    let view = st.tensor(name).unwrap_or_else(|_| panic!("{name} in {}", file.display()));
    let values = match view.dtype() {
        safetensors::Dtype::F32 => {
            view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect()
        }
        safetensors::Dtype::I64 => {
            view.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect()
        }
        safetensors::Dtype::I32 => {
            view.data().chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64).collect()
        }
        other => panic!("unexpected fixture dtype {other:?}"),
    };
    (view.shape().to_vec(), values)
}

/// Largest absolute difference; panics when above `tol`.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (i, d) = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .enumerate()
        .fold((0, 0.0f64), |acc, (i, d)| if d > acc.1 || d.is_nan() { (i, d) } else { acc });
    assert!(d <= tol, "{what}: max |diff| {d} at {i} (got {}, want {}) exceeds {tol}", got[i], want[i]);
    d
}

pub fn assert_rel(what: &str, got: f64, want: f64, rel: f64) {
    eprintln!("{what}: got {got}, want {want}, relative diff {:.2e}", ((got - want) / want).abs());
    assert!(((got - want) / want).abs() <= rel, "{what}: got {got}, want {want} (relative tolerance {rel})");
}

pub fn tiny_model() -> CausalLm<TrainBackend> {
    tiny_model_on::<TrainBackend>(&Default::default())
}

pub fn tiny_model_on<B: burn::tensor::backend::Backend>(device: &B::Device) -> CausalLm<B> {
    load_model::<B>(fixture("a_tiny_llama/llama"), LoadOptions::default(), device).unwrap()
}

pub fn tiny_tokenizer() -> Tokenizer {
    Tokenizer::from_dir(fixture("b_tokenizer/bytelevel_bpe512")).unwrap()
}

fn messages(v: &serde_json::Value) -> Vec<Message> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| Message::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect()
}

/// j_train's three prompt/completion chat examples.
pub fn sft_examples() -> Vec<SftExample> {
    let golden = read_json(&fixture("j_train/golden.json"));
    golden["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| SftExample::PromptCompletion {
            prompt: Turns::Chat(messages(&e["prompt"])),
            completion: Turns::Chat(messages(&e["completion"])),
        })
        .collect()
}

pub fn tokenized() -> Vec<TokenizedExample> {
    let tok = tiny_tokenizer();
    SftTokenizer { tokenizer: &tok, max_length: 1024 }.tokenize_all(&sft_examples()).unwrap()
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-train-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
