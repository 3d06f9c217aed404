//! Tokenizers and chat templates against transformers (`fixtures/b_tokenizer`,
//! `fixtures/i_generate/chat_templates.json`).

use llm_core::chat::{BuiltinTemplate, ChatTemplate, Message, RenderContext};
use llm_core::weights::GgufFile;
use llm_core::{LlmError, Tokenizer};
use llm_testkit::*;

fn check_encodings(tok: &Tokenizer, golden: &serde_json::Value, name: &str) {
    let cases = golden["encodings"].as_array().unwrap();
    assert!(cases.len() >= 10, "{name}: the fixture's strings are all here");
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let add = case["add_special_tokens"].as_bool().unwrap();
        let enc = tok.encode(text, add).unwrap();
        assert_eq!(enc.ids, json_ids(&case["ids"]), "{name} ids of {text:?}");
        let tokens: Vec<String> = case["tokens"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().into()).collect();
        assert_eq!(enc.tokens, tokens, "{name} tokens of {text:?}");
        let offsets: Vec<(usize, usize)> = case["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize))
            .collect();
        assert_eq!(enc.offsets, offsets, "{name} offsets of {text:?}");
        assert_eq!(tok.decode(&enc.ids, false).unwrap(), case["decoded"].as_str().unwrap(), "{name} decode of {text:?}");
    }
}

#[test]
fn bytelevel_bpe512_matches_transformers() {
    let dir = fixture("b_tokenizer/bytelevel_bpe512");
    let tok = Tokenizer::from_dir(&dir).unwrap();
    check_encodings(&tok, &read_json(&dir.join("golden.json")), "bpe512");
    assert_eq!((tok.bos_token(), tok.eos_token(), tok.pad_token_id()), (Some("<s>"), Some("</s>"), Some(0)));
}

#[test]
fn mistral_sentencepiece_matches_transformers() {
    let dir = fixture("b_tokenizer/mistral_v1_sentencepiece");
    let tok = Tokenizer::from_dir(&dir).unwrap();
    check_encodings(&tok, &read_json(&dir.join("golden.json")), "mistral");
}

#[test]
fn smollm2_tokenizer_built_from_gguf_matches_transformers() {
    let file = GgufFile::open(smollm2_gguf()).unwrap();
    let tok = Tokenizer::from_gguf(&file).unwrap();
    check_encodings(&tok, &read_json(&fixture("b_tokenizer/smollm2_from_gguf/golden.json")), "smollm2 (gguf)");
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.eos_token(), Some("<|im_end|>"));
    // The prompt of the SmolLM2 parity fixture.
    assert_eq!(tok.encode("The capital of France is", false).unwrap().ids, [504, 3575, 282, 4649, 314]);
}

fn chat_cases(key: &str) -> Vec<serde_json::Value> {
    read_json(&fixture("i_generate/chat_templates.json"))[key]["cases"].as_array().unwrap().clone()
}

fn messages(case: &serde_json::Value) -> Vec<Message> {
    serde_json::from_value(case["messages"].clone()).unwrap()
}

#[test]
fn chat_templates_render_and_tokenize_like_transformers() {
    let file = GgufFile::open(smollm2_gguf()).unwrap();
    let tokenizers = [
        ("smollm2_from_gguf", Tokenizer::from_gguf(&file).unwrap()),
        ("bytelevel_bpe512", Tokenizer::from_dir(fixture("b_tokenizer/bytelevel_bpe512")).unwrap()),
    ];
    for (key, tok) in tokenizers {
        for case in chat_cases(key) {
            let name = format!("{key}/{}", case["name"].as_str().unwrap());
            let gen = case["add_generation_prompt"].as_bool().unwrap();
            let rendered = tok.apply_chat_template(&messages(&case), gen).unwrap();
            assert_eq!(rendered, case["rendered"].as_str().unwrap(), "{name}");
            if case.get("ids").is_some() {
                assert_eq!(tok.encode(&rendered, false).unwrap().ids, json_ids(&case["ids"]), "{name} ids");
            }
        }
    }
}

#[test]
fn template_from_chat_template_jinja_file_is_used() {
    let tok = Tokenizer::from_dir(fixture("b_tokenizer/bytelevel_bpe512")).unwrap();
    let out = tok.apply_chat_template(&[Message::new("user", "Hi")], true).unwrap();
    assert_eq!(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

#[test]
fn raise_exception_is_a_template_error_with_name_and_line() {
    let template = ChatTemplate::new(
        "strict.jinja",
        "{% for m in messages %}\n{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}{% endfor %}",
    )
    .unwrap();
    let msgs = [Message::new("system", "x")];
    let ctx = RenderContext { messages: &msgs, add_generation_prompt: false, bos_token: "", eos_token: "", tools: None };
    match template.render(&ctx) {
        Err(LlmError::Template { name, line, message }) => {
            assert_eq!(name, "strict.jinja");
            assert_eq!(line, Some(2));
            assert!(message.contains("no system role"), "{message}");
        }
        other => panic!("expected a template error, got {other:?}"),
    }
    // A syntax error is reported at compile time, with the line.
    let err = ChatTemplate::new("broken.jinja", "line one\n{% if %}").unwrap_err().to_string();
    assert!(err.contains("broken.jinja line 2"), "{err}");
}

#[test]
fn builtin_templates_render_a_conversation() {
    let msgs = [Message::new("user", "Hi"), Message::new("assistant", "Hello!"), Message::new("user", "Bye")];
    let ctx = RenderContext { messages: &msgs, add_generation_prompt: true, bos_token: "<s>", eos_token: "</s>", tools: None };
    let render = |t: BuiltinTemplate| t.compile().unwrap().render(&ctx).unwrap();
    assert_eq!(render(BuiltinTemplate::MistralInstruct), "<s>[INST] Hi [/INST] Hello!</s>[INST] Bye [/INST]");
    assert_eq!(
        render(BuiltinTemplate::Zephyr),
        "<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n<|user|>\nBye</s>\n<|assistant|>\n"
    );
    assert!(render(BuiltinTemplate::Llama3).starts_with("<s><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"));
    assert!(render(BuiltinTemplate::Alpaca).ends_with("### Instruction:\nBye\n\n### Response:\n"));
    assert!(render(BuiltinTemplate::ChatMl).ends_with("<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"));
}

#[test]
fn tokenizer_file_that_is_not_json_is_an_error() {
    let path = std::env::temp_dir().join(format!("llm-core-bad-tokenizer-{}.json", std::process::id()));
    std::fs::write(&path, "this is not json").unwrap();
    let err = Tokenizer::from_file(&path).unwrap_err();
    assert!(matches!(&err, LlmError::Json { path: p, .. } if p == &path), "{err}");
    assert!(err.to_string().contains("bad-tokenizer"), "{err}");
}

#[test]
fn streaming_decoder_never_splits_characters() {
    let file = GgufFile::open(smollm2_gguf()).unwrap();
    let tok = Tokenizer::from_gguf(&file).unwrap();
    let text = "naïve café – déjà vu 🤖🚀 你好，世界";
    let ids = tok.encode(text, false).unwrap().ids;
    let mut stream = tok.stream_decoder(false);
    let mut out = String::new();
    for &id in &ids {
        if let Some(delta) = stream.push(id).unwrap() {
            assert!(!delta.contains('\u{FFFD}'), "delta {delta:?} holds a broken character");
            out += &delta;
        }
    }
    out += &stream.flush().unwrap().unwrap_or_default();
    assert_eq!(out, text);
}

#[test]
fn left_padded_batch_uses_the_pad_token() {
    let tok = Tokenizer::from_dir(fixture("b_tokenizer/bytelevel_bpe512")).unwrap();
    let batch = tok.encode_batch(&["Hello world", "Hi"], true, llm_core::tokenizer::PaddingSide::Left, None).unwrap();
    assert_eq!(batch.ids[0].len(), batch.ids[1].len());
    let pads = batch.attention_mask[1].iter().filter(|m| !**m).count();
    assert!(pads > 0 && batch.ids[1][..pads].iter().all(|&i| i == 0));
    assert_eq!(batch.ids[0][0], 1, "BOS from the post-processor");
}

/// Writes a GGUF v3 file holding only tokenizer metadata.
fn write_tokenizer_gguf(path: &std::path::Path, tokens: &[String], scores: &[f32], types: &[i32]) {
    fn string(b: &mut Vec<u8>, s: &str) {
        b.extend((s.len() as u64).to_le_bytes());
        b.extend(s.as_bytes());
    }
    let mut b = Vec::new();
    b.extend(b"GGUF");
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(8u64.to_le_bytes());
    string(&mut b, "tokenizer.ggml.model");
    b.extend(8u32.to_le_bytes());
    string(&mut b, "llama");
    string(&mut b, "tokenizer.ggml.tokens");
    b.extend(9u32.to_le_bytes());
    b.extend(8u32.to_le_bytes());
    b.extend((tokens.len() as u64).to_le_bytes());
    tokens.iter().for_each(|t| string(&mut b, t));
    string(&mut b, "tokenizer.ggml.scores");
    b.extend(9u32.to_le_bytes());
    b.extend(6u32.to_le_bytes());
    b.extend((scores.len() as u64).to_le_bytes());
    scores.iter().for_each(|s| b.extend(s.to_le_bytes()));
    string(&mut b, "tokenizer.ggml.token_type");
    b.extend(9u32.to_le_bytes());
    b.extend(5u32.to_le_bytes());
    b.extend((types.len() as u64).to_le_bytes());
    types.iter().for_each(|t| b.extend(t.to_le_bytes()));
    for (key, v) in [("tokenizer.ggml.bos_token_id", 1u32), ("tokenizer.ggml.eos_token_id", 2), ("tokenizer.ggml.unknown_token_id", 0)] {
        string(&mut b, key);
        b.extend(4u32.to_le_bytes());
        b.extend(v.to_le_bytes());
    }
    string(&mut b, "tokenizer.ggml.add_bos_token");
    b.extend(7u32.to_le_bytes());
    b.push(1);
    std::fs::write(path, b).unwrap();
}

#[test]
fn sentencepiece_vocabulary_from_gguf_metadata_matches_transformers() {
    // The Mistral v1 vocabulary as llama.cpp stores it: pieces, scores (SentencePiece BPE gives
    // piece i the score -i), types (3 control, 6 byte, 1 normal). Merges are derived from the
    // scores, as for GGUF files that carry none.
    let dir = fixture("b_tokenizer/mistral_v1_sentencepiece");
    let json = read_json(&dir.join("tokenizer.json"));
    let vocab = json["model"]["vocab"].as_object().unwrap();
    let mut tokens = vec![String::new(); vocab.len()];
    for (piece, id) in vocab {
        tokens[id.as_u64().unwrap() as usize] = piece.clone();
    }
    let types: Vec<i32> = (0..tokens.len()).map(|i| if i < 3 { 3 } else if i < 259 { 6 } else { 1 }).collect();
    let scores: Vec<f32> = (0..tokens.len()).map(|i| if i < 259 { 0.0 } else { -(i as f32) }).collect();
    let path = std::env::temp_dir().join(format!("llm-core-spm-{}.gguf", std::process::id()));
    write_tokenizer_gguf(&path, &tokens, &scores, &types);
    let tok = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    check_encodings(&tok, &read_json(&dir.join("golden.json")), "mistral (gguf)");
    assert_eq!(tok.encode("Hello", true).unwrap().ids[0], 1, "add_bos_token puts <s> first");
}

#[test]
fn templates_see_tools_loop_and_python_string_methods() {
    let mut tok = Tokenizer::from_dir(fixture("b_tokenizer/bytelevel_bpe512")).unwrap();
    tok.set_chat_template(
        ChatTemplate::new(
            "tools.jinja",
            "{% if tools %}{{ tools | tojson }}\n{% endif %}{% for m in messages %}{{ loop.index }}:{{ m['content'].strip() | upper }}{% if not loop.last %},{% endif %}{% endfor %}",
        )
        .unwrap(),
    );
    let tools = serde_json::json!([{"name": "get_weather", "parameters": {"city": "string"}}]);
    let msgs = [Message::new("user", "  hi "), Message::new("assistant", "yo")];
    let out = tok.apply_chat_template_with_tools(&msgs, false, Some(&tools)).unwrap();
    assert_eq!(out, "[{\"name\":\"get_weather\",\"parameters\":{\"city\":\"string\"}}]\n1:HI,2:YO");
}

/// tokenizers 0.22 loads such a file and panics at the first encode; here it is a load error.
#[test]
fn a_post_processor_naming_an_undefined_special_token_is_a_load_error() {
    let mut json = read_json(&fixture("b_tokenizer/bytelevel_bpe512/tokenizer.json"));
    json["post_processor"] = serde_json::json!({
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<cls>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {}
    });
    let path = std::env::temp_dir().join(format!("llm-core-undefined-special-{}.json", std::process::id()));
    std::fs::write(&path, json.to_string()).unwrap();
    let err = Tokenizer::from_file(&path).unwrap_err();
    assert!(matches!(&err, LlmError::Tokenizer { .. }) && err.to_string().contains("`<cls>`"), "{err}");
}
