//! Fixed inputs the targets pair with the fuzzed bytes: a micro Llama config, a tiny
//! tokenizer, a conversation.

use llm_core::chat::Message;
use llm_core::config::HfConfig;
use llm_core::{ModelConfig, Tokenizer};

/// A one-layer Llama small enough to build in microseconds (d_model 32, two heads of 16,
/// one KV head, vocabulary 64, row length a multiple of every GGML block size).
pub const MICRO_CONFIG: &str = r#"{
  "architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 32, "intermediate_size": 32, "num_hidden_layers": 1,
  "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
  "vocab_size": 64, "max_position_embeddings": 64, "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0, "tie_word_embeddings": false,
  "bos_token_id": 1, "eos_token_id": 2
}"#;

/// A word-level `tokenizer.json` with `<s>`, `</s>`, `<unk>` and a few words.
pub const TINY_TOKENIZER: &str = r#"{
  "version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [
    {"id": 0, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 1, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
  "model": {"type": "WordLevel", "vocab": {"<s>": 0, "</s>": 1, "<unk>": 2, "hello": 3, "world": 4, "user": 5, "assistant": 6, "system": 7}, "unk_token": "<unk>"}
}"#;

/// The micro config.
pub fn micro_config() -> ModelConfig {
    let hf: HfConfig = serde_json::from_str(MICRO_CONFIG).expect("micro config parses");
    ModelConfig::from_hf(&hf).expect("micro config is valid")
}

/// The tiny tokenizer with ChatML as its template.
pub fn tiny_tokenizer() -> Tokenizer {
    let dir = crate::scratch("fixture-tokenizer");
    crate::put(&dir, "tokenizer.json", TINY_TOKENIZER.as_bytes());
    let mut tok = Tokenizer::from_dir(&dir).expect("tiny tokenizer loads");
    tok.set_chat_template(llm_core::chat::BuiltinTemplate::ChatMl.compile().expect("ChatML compiles"));
    tok
}

/// A four-turn conversation.
pub fn conversation() -> Vec<Message> {
    vec![
        Message::new("system", "You are terse."),
        Message::new("user", "hello world"),
        Message::new("assistant", "hello"),
        Message::new("user", "world?"),
    ]
}

/// One tool schema, as an OpenAI request carries it.
pub fn tools() -> serde_json::Value {
    serde_json::json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}
