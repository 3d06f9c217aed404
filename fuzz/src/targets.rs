//! One function per fuzz target: bytes in, the library's loaders run on them, errors ignored.

use burn::backend::Flex;
use llm_core::chat::{ChatTemplate, RenderContext};
use llm_core::config::CheckpointQuantization;
use llm_core::generate::GenerationConfig;
use llm_core::weights::gguf::{quants, GgmlType};
use llm_core::weights::{load_model, GgufSource, LoadOptions, SafetensorsSource, TensorSource};
use llm_core::{ModelConfig, Tokenizer};
use llm_rag::load::{pdf_pages, HtmlLoader, JsonLoader};
use llm_rag::store::{FlatStore, VectorStore};

use crate::fixtures::{conversation, micro_config, tiny_tokenizer, tools};
use crate::{put, scratch, split_two};

type B = Flex;

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Every tensor of a source read.
fn read_all(source: &dyn TensorSource) {
    for name in source.tensor_names() {
        let _ = source.read(&name);
    }
}

/// `config.json` + `model.safetensors` (split by [`split_two`]): the safetensors header and
/// data, every tensor read, and the model (dense or quantized layouts) built and loaded.
pub fn checkpoint(data: &[u8]) {
    let Some((config, weights)) = split_two(data) else { return };
    let dir = scratch("checkpoint");
    put(&dir, "config.json", config);
    let model = put(&dir, "model.safetensors", weights);
    if let Ok(source) = SafetensorsSource::open_dir(&dir) {
        read_all(&source);
    }
    let _ = llm_core::io::safetensors::read_f32_safetensors(&model);
    let _ = load_model::<B>(&dir, LoadOptions::default(), &Default::default());
}

/// `adapter_config.json` + `adapter_model.safetensors`: a PEFT adapter applied to the micro
/// model and merged.
pub fn adapter(data: &[u8]) {
    let Some((config, weights)) = split_two(data) else { return };
    let dir = scratch("adapter");
    put(&dir, "adapter_config.json", config);
    put(&dir, "adapter_model.safetensors", weights);
    let Ok(adapter) = llm_core::adapter::PeftAdapter::load(&dir) else { return };
    let mut model = micro_config().init::<B>(&Default::default());
    if adapter.apply(&mut model).is_ok() {
        let _ = llm_core::adapter::merge_adapters(&mut model);
    }
}

/// A `.gguf` file: header, metadata, tensor infos, every tensor dequantised, the model built,
/// and the tokenizer and chat template its vocabulary metadata describes.
pub fn gguf(data: &[u8]) {
    let dir = scratch("gguf");
    let path = put(&dir, "model.gguf", data);
    let Ok(source) = GgufSource::open(&path) else { return };
    read_all(&source);
    let _ = load_model::<B>(&path, LoadOptions::default(), &Default::default());
    if let Ok(tok) = Tokenizer::from_gguf(source.file()) {
        if let Ok(enc) = tok.encode("hello world <s>", true) {
            let _ = tok.decode(&enc.ids, false);
        }
        let _ = tok.apply_chat_template(&conversation(), true);
    }
}

/// One GGML block type (first byte, an index into the supported types) and whole blocks of
/// it: dequantized, and (quantized types) run as one weight row by the integer-dot kernel.
pub fn gguf_blocks(data: &[u8]) {
    const TYPES: [GgmlType; 13] = [
        GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0,
        GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
        GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
    ];
    let Some((&first, rest)) = data.split_first() else { return };
    let ty = TYPES[first as usize % TYPES.len()];
    let (block, block_bytes) = ty.block_layout().expect("supported type");
    let whole = rest.len() / block_bytes * block_bytes;
    let values = quants::dequantize(ty, &rest[..whole]);
    assert_eq!(values.len(), whole / block_bytes * block);
    if block > 1 && whole > 0 {
        let n = values.len();
        let w = llm_core::quant::GgmlWeight::new("fuzz", ty, 1, n, rest[..whole].to_vec()).expect("whole blocks");
        let x: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
        assert_eq!(w.matmul(&x, 1).len(), 1);
    }
}

/// The same bytes as `config.json` (then the model built lazily), `generation_config.json`,
/// a `quantization_config` and `adapter_config.json`.
pub fn configs(data: &[u8]) {
    let dir = scratch("configs");
    let config = put(&dir, "config.json", data);
    if let Ok(config) = ModelConfig::from_file(&config) {
        let _ = llm_core::weights::expected_tensors(&config);
    }
    let generation = put(&dir, "generation_config.json", data);
    if let Ok(g) = GenerationConfig::from_file(&generation) {
        let _ = g.validate();
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = CheckpointQuantization::from_json(&json);
    if let Some(q) = json.get("quantization_config") {
        let _ = CheckpointQuantization::from_json(q);
    }
    let _ = llm_core::adapter::LoraConfig::from_json(&json, &dir.join("adapter_config.json"));
}

/// A `tokenizer.json`: parsed, then text encoded and decoded.
pub fn tokenizer_json(data: &[u8]) {
    let dir = scratch("tokenizer_json");
    let path = put(&dir, "tokenizer.json", data);
    let Ok(tok) = Tokenizer::from_file(&path) else { return };
    for text in ["hello world", "Héllo  wörld\n\t<s> 123 \u{1F600}", ""] {
        if let Ok(enc) = tok.encode(text, true) {
            let _ = tok.decode(&enc.ids, false);
            let _ = tok.decode(&enc.ids, true);
        }
    }
    let _ = tok.decode(&[0, 1, 2, 3, u32::MAX], false);
}

/// A `tokenizer_config.json` beside the tiny tokenizer: special tokens and the chat template
/// it carries, rendered.
pub fn tokenizer_config(data: &[u8]) {
    let dir = scratch("tokenizer_config");
    put(&dir, "tokenizer.json", crate::fixtures::TINY_TOKENIZER.as_bytes());
    put(&dir, "tokenizer_config.json", data);
    let Ok(tok) = Tokenizer::from_dir(&dir) else { return };
    let _ = tok.apply_chat_template(&conversation(), true);
    let _ = (tok.bos_token(), tok.eos_token_id(), tok.pad_token_id());
}

/// A chat template's source, compiled and rendered on a conversation with tools.
pub fn chat_template(data: &[u8]) {
    let Some(source) = text(data) else { return };
    let Ok(template) = ChatTemplate::new("fuzz.jinja", source) else { return };
    let (messages, tools) = (conversation(), tools());
    for tools in [None, Some(&tools)] {
        let ctx = RenderContext { messages: &messages, add_generation_prompt: true, bos_token: "<s>", eos_token: "</s>", tools };
        let _ = template.render(&ctx);
    }
}

/// SFT JSONL: parsed, then tokenized with the tiny tokenizer's ChatML template.
pub fn sft_jsonl(data: &[u8]) {
    let Some(source) = text(data) else { return };
    let Ok(examples) = llm_train::data::parse_jsonl(source, "fuzz.jsonl".as_ref()) else { return };
    let tok = tiny_tokenizer();
    let _ = llm_train::sft::SftTokenizer { tokenizer: &tok, max_length: 64 }.tokenize_all(&examples);
}

/// Preference JSONL: parsed, then tokenized.
pub fn pref_jsonl(data: &[u8]) {
    let Some(source) = text(data) else { return };
    let Ok(pairs) = llm_train::pref::parse_preferences(source, "fuzz.jsonl".as_ref()) else { return };
    let tok = tiny_tokenizer();
    let tokenizer = llm_train::pref::PrefTokenizer { tokenizer: &tok, max_length: Some(64), max_prompt_length: Some(32), max_completion_length: None };
    let _ = tokenizer.tokenize_all(&pairs);
}

/// An HTML page: parsed by sections and whole, from a file as the directory loader reads it.
pub fn html(data: &[u8]) {
    let dir = scratch("html");
    let path = put(&dir, "page.html", data);
    let _ = HtmlLoader::new().load(&path);
    let _ = HtmlLoader::new().whole_page().load(&path);
}

/// A PDF: every page's text.
pub fn pdf(data: &[u8]) {
    let _ = pdf_pages(data);
}

/// A JSON path (first line) and a JSON / JSON Lines document (the rest).
pub fn json_docs(data: &[u8]) {
    let Some(source) = text(data) else { return };
    let (schema, doc) = source.split_once('\n').unwrap_or((".", source));
    let dir = scratch("json_docs");
    let json = put(&dir, "doc.json", doc.as_bytes());
    let jsonl = put(&dir, "doc.jsonl", doc.as_bytes());
    for loader in [JsonLoader::new(schema), Ok(JsonLoader::default())].into_iter().flatten() {
        let _ = loader.load_json(&json);
        let _ = loader.load_jsonl(&jsonl);
    }
    if let Ok(loader) = JsonLoader::new(".[]").and_then(|l| l.content_key(schema)) {
        let _ = loader.load_jsonl(&jsonl);
    }
}

/// A FlatStore `store.bin`: opened, searched.
pub fn flat_store(data: &[u8]) {
    let dir = scratch("flat_store");
    put(&dir, "store.bin", data);
    let Ok(store) = FlatStore::open(&dir) else { return };
    let dim = store.dim().unwrap_or(4);
    let query: Vec<f32> = (0..dim).map(|i| i as f32).collect();
    let _ = store.search(&query, 3, None);
    let _ = store.count();
}
