//! llm-train's own test helpers (the tiny model under autodiff, j_train's SFT examples); the
//! shared ones (fixtures, comparisons, `backend_test!`) come from `llm-testkit`.

pub use llm_testkit::*;

use llm_core::chat::Message;
use llm_core::weights::{load_model, LoadOptions};
use llm_core::{CausalLm, Tokenizer};
use llm_train::data::{SftExample, Turns};
use llm_train::sft::{SftTokenizer, TokenizedExample};

/// Training runs on Flex under autodiff.
pub type TrainBackend = burn::backend::Autodiff<burn::backend::Flex>;

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
