//! Rebuilding a `tokenizers` tokenizer from a GGUF file's `tokenizer.ggml.*` metadata, the way
//! transformers' GGUF converters do.

use serde_json::{json, Map, Value};

use super::Tokenizer;
use crate::chat::ChatTemplate;
use crate::error::{LlmError, Result};
use crate::weights::{GgufFile, GgufValue};

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_CONTROL: u64 = 3;
const TOKEN_USER_DEFINED: u64 = 4;

pub(super) fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
    let source = file.path().display().to_string();
    let err = |m: String| LlmError::Tokenizer { source_name: source.clone(), message: m };
    let strings = |key: &str| -> Result<Vec<String>> {
        let arr = file.get(key).and_then(GgufValue::as_array).ok_or_else(|| err(format!("metadata `{key}` is missing")))?;
        arr.iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| err(format!("`{key}` holds a non-string"))))
            .collect()
    };
    let model = file.get("tokenizer.ggml.model").and_then(GgufValue::as_str).unwrap_or("");
    let tokens = strings("tokenizer.ggml.tokens")?;
    let types: Vec<u64> = file
        .get("tokenizer.ggml.token_type")
        .and_then(GgufValue::as_array)
        .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(1)).collect())
        .unwrap_or_else(|| vec![1; tokens.len()]);
    let id = |key: &str| file.get(&format!("tokenizer.ggml.{key}")).and_then(GgufValue::as_u64).map(|v| v as usize);
    let flag = |key: &str| matches!(file.get(&format!("tokenizer.ggml.{key}")), Some(GgufValue::Bool(true)));
    let token_at = |i: Option<usize>| i.and_then(|i| tokens.get(i).cloned());
    let (bos, eos, pad) = (token_at(id("bos_token_id")), token_at(id("eos_token_id")), token_at(id("padding_token_id")));

    let vocab: Map<String, Value> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let added: Vec<Value> = types
        .iter()
        .enumerate()
        .filter(|(_, &t)| t == TOKEN_CONTROL || t == TOKEN_USER_DEFINED)
        .map(|(i, &t)| {
            json!({"id": i, "content": tokens[i], "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": t == TOKEN_USER_DEFINED, "special": t == TOKEN_CONTROL})
        })
        .collect();
    let add_bos = flag("add_bos_token");
    let post_processor = match (&bos, add_bos) {
        (Some(b), true) => json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": b, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {b.as_str(): {"id": b, "ids": [id("bos_token_id")], "tokens": [b]}}
        }),
        _ => Value::Null,
    };
    let spec = match model {
        "gpt2" => {
            let merges = strings("tokenizer.ggml.merges")?;
            let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
            json!({
                "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
                "normalizer": null, "pre_tokenizer": byte_level, "post_processor": post_processor,
                "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
                "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                          "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false,
                          "ignore_merges": false, "vocab": vocab, "merges": merges}
            })
        }
        other => {
            return Err(err(format!(
                "tokenizer.ggml.model `{other}` is not supported; supported: gpt2 (byte-level BPE)"
            )))
        }
    };
    let bytes = serde_json::to_vec(&spec).map_err(|e| err(e.to_string()))?;
    let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| err(e.to_string()))?;
    let template = file
        .get("tokenizer.chat_template")
        .and_then(GgufValue::as_str)
        .map(|t| ChatTemplate::new(format!("{source}:tokenizer.chat_template"), t.to_string()))
        .transpose()?;
    Ok(Tokenizer::wrap(inner, source).with_specials(bos, eos, pad, template))
}
