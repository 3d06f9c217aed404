//! Rebuilding a `tokenizers` tokenizer from a GGUF file's `tokenizer.ggml.*` metadata, the way
//! transformers' GGUF converters do.

use serde_json::{json, Map, Value};

use super::Tokenizer;
use crate::chat::ChatTemplate;
use crate::error::{LlmError, Result};
use crate::weights::{GgufFile, GgufValue};

/// BPE merges implied by SentencePiece scores (transformers' `generate_merges`): every split
/// of a piece into two pieces of the vocabulary, ordered by the merged piece's score, then by
/// the lengths of the halves, highest first; ties keep vocabulary order.
fn merges_from_scores(tokens: &[String], scores: &[f64]) -> Vec<(String, String)> {
    let ids: std::collections::HashMap<&str, usize> = tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
    let mut merges: Vec<(usize, usize, f64, usize, usize)> = vec![];
    for (piece, &score) in tokens.iter().zip(scores) {
        let mut local: Vec<(usize, usize, f64, usize, usize)> = piece
            .char_indices()
            .skip(1)
            .filter_map(|(at, _)| {
                let (l, r) = piece.split_at(at);
                Some((*ids.get(l)?, *ids.get(r)?, score, l.chars().count(), r.chars().count()))
            })
            .collect();
        local.sort_by_key(|m| (m.0, m.1));
        merges.extend(local);
    }
    // Python's sort(reverse=True) is stable and reverses the key order only.
    merges.sort_by(|a, b| b.2.total_cmp(&a.2).then(b.3.cmp(&a.3)).then(b.4.cmp(&a.4)));
    merges.into_iter().map(|(l, r, ..)| (tokens[l].clone(), tokens[r].clone())).collect()
}

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
    if types.len() != tokens.len() {
        return Err(err(format!("{} token types for {} tokens (tokenizer.ggml.token_type)", types.len(), tokens.len())));
    }
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
        "llama" => {
            let scores: Vec<f64> = file
                .get("tokenizer.ggml.scores")
                .and_then(GgufValue::as_array)
                .map(|a| a.iter().map(|v| v.as_f64().unwrap_or(0.0)).collect())
                .ok_or_else(|| err("metadata `tokenizer.ggml.scores` is missing".into()))?;
            if scores.len() != tokens.len() {
                return Err(err(format!("{} scores for {} tokens", scores.len(), tokens.len())));
            }
            // Older files carry no merges: derive them from the scores as transformers does.
            let merges = match strings("tokenizer.ggml.merges") {
                Ok(m) => m.into_iter().map(Value::String).collect::<Vec<_>>(),
                Err(_) => merges_from_scores(&tokens, &scores).into_iter().map(|(l, r)| json!([l, r])).collect(),
            };
            let prepend = if flag("add_space_prefix") || file.get("tokenizer.ggml.add_space_prefix").is_none() { "first" } else { "never" };
            let mut decoders = vec![
                json!({"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}),
                json!({"type": "ByteFallback"}),
                json!({"type": "Fuse"}),
            ];
            if prepend == "first" {
                decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
            }
            json!({
                "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
                "normalizer": null,
                "pre_tokenizer": {"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": prepend, "split": false},
                "post_processor": post_processor,
                "decoder": {"type": "Sequence", "decoders": decoders},
                "model": {"type": "BPE", "dropout": null, "unk_token": token_at(id("unknown_token_id")),
                          "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": true,
                          "byte_fallback": true, "ignore_merges": false, "vocab": vocab, "merges": merges}
            })
        }
        other => {
            return Err(err(format!(
                "tokenizer.ggml.model `{other}` is not supported; supported: gpt2 (byte-level BPE), llama (SentencePiece BPE)"
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
