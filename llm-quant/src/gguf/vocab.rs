//! The tokenizer as GGUF metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`), written the
//! way `convert_hf_to_gguf.py` writes it, so that llama.cpp tokenizes as the source does:
//! byte-level BPE (`gpt2`: GPT-2, SmolLM2, Llama 3) with its merges and the pre-tokenizer
//! named by the hash of the token ids of a fixed text (convert's `get_vocab_base_pre`), and
//! SentencePiece-style BPE with byte fallback (`llama`), whose scores are the negated merge
//! ranks. A GGUF source's own `tokenizer.*` keys are copied as they are.

use std::collections::HashMap;
use std::path::Path;

use llm_core::tokenizer::Tokenizer;
use llm_core::weights::{GgufFile, GgufValue};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{QuantError, Result};

/// llama.cpp's token types (`llama_token_type`).
const NORMAL: i32 = 1;
const UNUSED: i32 = 5;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const BYTE: i32 = 6;

/// The metadata entries of a GGUF's tokenizer: every `tokenizer.*` key, as stored.
pub fn from_gguf(file: &GgufFile) -> Vec<(String, GgufValue)> {
    file.metadata.iter().filter(|(k, _)| k.starts_with("tokenizer.")).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The metadata entries for the tokenizer of a Hugging Face directory (`tokenizer.json` plus
/// `tokenizer_config.json` and the chat template), padded to `vocab_size` ids as convert pads
/// (`[PADn]`, unused). Errors name the file and what is not supported.
pub fn from_dir(dir: &Path, vocab_size: usize, config_ids: SpecialIds) -> Result<Vec<(String, GgufValue)>> {
    let path = dir.join("tokenizer.json");
    let tok = Tokenizer::from_dir(dir)?;
    let text = std::fs::read_to_string(&path).map_err(|e| QuantError::Io { path: path.clone(), source: e })?;
    let json: Value = serde_json::from_str(&text).map_err(|e| format_err(&path, e.to_string()))?;
    let model = &json["model"];
    if model["type"] != "BPE" {
        return Err(format_err(&path, format!("model type {} cannot be written to GGUF; supported: BPE", model["type"])));
    }
    let byte_level = mentions(&json["pre_tokenizer"], "ByteLevel");
    let byte_fallback = model["byte_fallback"] == Value::Bool(true);
    if !byte_level && !byte_fallback {
        return Err(format_err(&path, "a BPE without a ByteLevel pre-tokenizer or byte_fallback has no GGUF tokenizer model".into()));
    }
    let vocab = tok.inner().get_vocab(true);
    let max_id = vocab.values().copied().max().unwrap_or(0) as usize;
    if max_id >= vocab_size {
        return Err(format_err(&path, format!("token id {max_id} is outside the model's vocab_size {vocab_size}")));
    }
    let added: HashMap<u32, (bool, String)> = tok
        .inner()
        .get_added_tokens_decoder()
        .into_iter()
        .map(|(id, t)| (id, (t.special, t.content)))
        .collect();
    let mut by_id: Vec<Option<&str>> = vec![None; vocab_size];
    for (t, &id) in &vocab {
        by_id[id as usize] = Some(t);
    }
    let merges = merges(&path, model)?;
    let ranks: HashMap<String, usize> = merges.iter().enumerate().map(|(i, (a, b))| (format!("{a}{b}"), i)).collect();
    let (mut tokens, mut types, mut scores) = (vec![], vec![], vec![]);
    for (id, token) in by_id.iter().enumerate() {
        let Some(token) = token else {
            tokens.push(GgufValue::String(format!("[PAD{id}]")));
            types.push(GgufValue::I32(UNUSED));
            scores.push(GgufValue::F32(-1000.0));
            continue;
        };
        let ty = match added.get(&(id as u32)) {
            Some((special, content)) if *special || looks_special(content) => CONTROL,
            Some(_) => USER_DEFINED,
            None if byte_fallback && is_byte_token(token) => BYTE,
            None => NORMAL,
        };
        tokens.push(GgufValue::String(token.to_string()));
        types.push(GgufValue::I32(ty));
        scores.push(GgufValue::F32(ranks.get(*token).map_or(0.0, |&r| -(r as f32))));
    }
    let mut out = vec![];
    let mut put = |k: &str, v: GgufValue| out.push((format!("tokenizer.{k}"), v));
    if byte_level {
        put("ggml.model", GgufValue::String("gpt2".into()));
        put("ggml.pre", GgufValue::String(pre_tokenizer(&tok, &json["pre_tokenizer"])?));
    } else {
        put("ggml.model", GgufValue::String("llama".into()));
        put("ggml.pre", GgufValue::String("default".into()));
        // SentencePiece's dummy prefix: the Metaspace pre-tokenizer's `prepend_scheme`.
        let prepend = json["pre_tokenizer"]["prepend_scheme"].as_str().unwrap_or("first") != "never";
        put("ggml.add_space_prefix", GgufValue::Bool(prepend));
    }
    put("ggml.tokens", GgufValue::Array(tokens));
    if !byte_level {
        put("ggml.scores", GgufValue::Array(scores));
    }
    put("ggml.token_type", GgufValue::Array(types));
    let merges = merges.into_iter().map(|(a, b)| GgufValue::String(format!("{a} {b}"))).collect();
    put("ggml.merges", GgufValue::Array(merges));
    let id_of = |t: Option<&str>| t.and_then(|t| tok.token_to_id(t));
    let ids = [
        ("bos_token_id", id_of(tok.bos_token()).or(config_ids.bos)),
        ("eos_token_id", id_of(tok.eos_token()).or(config_ids.eos)),
        ("unknown_token_id", unk_token(dir, model).and_then(|t| tok.token_to_id(&t))),
        ("padding_token_id", tok.pad_token_id().or(config_ids.pad)),
    ];
    for (k, id) in ids {
        if let Some(id) = id {
            put(&format!("ggml.{k}"), GgufValue::U32(id));
        }
    }
    let (add_bos, add_eos) = adds_special(&tok);
    put("ggml.add_bos_token", GgufValue::Bool(add_bos));
    put("ggml.add_eos_token", GgufValue::Bool(add_eos));
    if let Some(t) = tok.chat_template() {
        put("chat_template", GgufValue::String(t.source().to_string()));
    }
    Ok(out)
}

/// Special token ids from `config.json`, used where the tokenizer files name none.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpecialIds {
    /// `bos_token_id`.
    pub bos: Option<u32>,
    /// `eos_token_id` (the first, when a list).
    pub eos: Option<u32>,
    /// `pad_token_id`.
    pub pad: Option<u32>,
}

/// The unknown token: the BPE model's, else `tokenizer_config.json`'s (transformers keeps it there).
fn unk_token(dir: &Path, model: &Value) -> Option<String> {
    if let Some(t) = model["unk_token"].as_str() {
        return Some(t.to_string());
    }
    let text = std::fs::read_to_string(dir.join("tokenizer_config.json")).ok()?;
    let config: Value = serde_json::from_str(&text).ok()?;
    match &config["unk_token"] {
        Value::String(t) => Some(t.clone()),
        v => v["content"].as_str().map(str::to_string),
    }
}

fn format_err(path: &Path, message: String) -> QuantError {
    QuantError::Format { path: path.to_path_buf(), message }
}

fn mentions(v: &Value, ty: &str) -> bool {
    match v {
        Value::Object(m) => m.get("type").is_some_and(|t| t == ty) || m.values().any(|v| mentions(v, ty)),
        Value::Array(a) => a.iter().any(|v| mentions(v, ty)),
        _ => false,
    }
}

/// `<0x0A>`: a SentencePiece byte-fallback piece.
fn is_byte_token(t: &str) -> bool {
    t.len() == 6 && t.starts_with("<0x") && t.ends_with('>') && u8::from_str_radix(&t[3..5], 16).is_ok()
}

/// convert's `does_token_look_special`, for added tokens that are not marked special.
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// The merges as pairs, from either spelling tokenizers writes (`"a b"` or `["a", "b"]`).
fn merges(path: &Path, model: &Value) -> Result<Vec<(String, String)>> {
    let list = model["merges"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    list.iter()
        .map(|m| {
            let pair = match m {
                Value::String(s) => s.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())),
                Value::Array(p) => match (p.first().and_then(Value::as_str), p.get(1).and_then(Value::as_str)) {
                    (Some(a), Some(b)) if p.len() == 2 => Some((a.to_string(), b.to_string())),
                    _ => None,
                },
                _ => None,
            };
            pair.ok_or_else(|| format_err(path, format!("a merge is neither \"a b\" nor [a, b]: {m}")))
        })
        .collect()
}

/// Whether encoding adds BOS / EOS (the post-processor's template), as convert reads them.
fn adds_special(tok: &Tokenizer) -> (bool, bool) {
    let Ok(enc) = tok.encode("a", true) else { return (false, false) };
    let ids = &enc.ids;
    let is = |t: Option<&str>, id: Option<&u32>| t.and_then(|t| tok.token_to_id(t)).is_some_and(|x| Some(&x) == id);
    (is(tok.bos_token(), ids.first()) && ids.len() > 1, is(tok.eos_token(), ids.last()) && ids.len() > 1)
}

/// convert_hf_to_gguf's `get_vocab_base_pre`: the pre-tokenizer llama.cpp must use, named by
/// the SHA-256 of the ids the tokenizer gives a fixed text (Python's `str(list)` of them).
fn pre_tokenizer(tok: &Tokenizer, spec: &Value) -> Result<String> {
    let enc = tok.encode(CHECK_TEXT, true)?;
    let listed = format!("[{}]", enc.ids.iter().map(u32::to_string).collect::<Vec<_>>().join(", "));
    let hash = format!("{:x}", Sha256::digest(listed.as_bytes()));
    if let Some((_, name)) = PRE_TOKENIZERS.iter().find(|(h, _)| *h == hash) {
        return Ok(name.to_string());
    }
    // Not in convert's table (convert refuses such a tokenizer). A bare ByteLevel pre-tokenizer
    // with its regex is GPT-2's, which llama.cpp's `gpt-2` applies; anything else gets
    // llama.cpp's default, with a warning.
    let gpt2 = spec["type"] == "ByteLevel" && spec["use_regex"] != Value::Bool(false);
    if !gpt2 {
        tracing::warn!(hash, "pre-tokenizer is not in convert_hf_to_gguf's table; writing `default`");
    }
    Ok(if gpt2 { "gpt-2" } else { "default" }.into())
}

/// convert_hf_to_gguf's `chktxt`.
const CHECK_TEXT: &str = include_str!("pre_check_text.txt");

/// convert_hf_to_gguf's table (llama.cpp b-release vendored by llama-cpp-python 0.3.36):
/// SHA-256 of the check text's ids -> `tokenizer.ggml.pre`.
const PRE_TOKENIZERS: &[(&str, &str)] = &[
    ("b6e8e1518dc4305be2fe39c313ed643381c4da5db34a98f6a04c093f8afbe99b", "chatglm-bpe"),
    ("81d72c7348a9f0ebe86f23298d37debe0a5e71149e29bd283904c02262b27516", "chatglm-bpe"),
    ("a1336059768a55c99a734006ffb02203cd450fed003e9a71886c88acf24fdbc2", "glm4"),
    ("9ca2dd618e8afaf09731a7cf6e2105b373ba6a1821559f258b272fe83e6eb902", "glm4"),
    ("cdf5f35325780597efd76153d4d1c16778f766173908894c04afc20108536267", "glm4"),
    ("1431a23e583c97432bc230bff598d103ddb5a1f89960c8f1d1051aaa944d0b35", "minerva-7b"),
    ("7e57df22b1fe23a7b1e1c7f3dc4e3f96d43a4eb0836d0c6bdc3436d7b2f1c664", "hunyuan"),
    ("bba3b3366b646dbdded5dbc42d59598b849371afc42f7beafa914afaa5b70aa6", "hunyuan-dense"),
    ("e6ddf9c6686791c12d698d34c31ab9be1fea9af5a3d9a6909783ab382198ae1c", "hy_v4"),
    ("a6b57017d60e6edb4d88ecc2845188e0eb333a70357e45dcc9b53964a73bbae6", "falcon-h1"),
    ("60476e1243776c4fb1b993dbd7a5f15ac22f83c80afdf425fa5ae01c8d44ef86", "falcon-h1"),
    ("3eda48b4c4dc7de733d1a8b3e3b4a85243dbbf704da2ee9d42c6beced8897896", "falcon-h1"),
    ("48f8e02c0359c0bbdd82f26909171fac1c18a457bb47573ed1fe3bbb2c1cfd4b", "falcon-h1"),
    ("81212dc7cdb7e0c1074ca62c5aeab0d43c9f52b8a737be7b12a777c953027890", "kimi-k2"),
    ("d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c", "qwen2"),
    ("1444df51289cfa8063b96f0e62b1125440111bc79a52003ea14b6eac7016fd5f", "qwen35"),
    ("66b8d4e19ab16c3bfd89bce5d785fb7e0155e8648708a1f42077cb9fe002c273", "grok-2"),
    ("b3d1dd861f1d4c5c0d2569ce36baf3f90fe8a102db3de50dd71ff860d91be3df", "jina-v2-de"),
    ("0fe1cf6eda062318a1af7270f3331a85c539a01778ff948e24388e949c5282f4", "gpt-2"),
    ("9e454714343b69b99b71795c1d27a68c2a1d15dab111f4d353109f966af29da7", "lfm2"),
    ("846deafc5b0fa786186fa4ae6c7b49903cf2f1d1895bdb80b9120d60be135252", "gemma4"),
    ("0a766d034107bc736a3f2dc4968fd62e54a3570f1454443e0c5a4cc6bd7941ed", "spark2_5"),
    ("0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5", "llama-bpe"),
    ("049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754", "deepseek-llm"),
    ("347715f544604f9118bb75ed199f68779f423cabb20db6de6f31b908d04d7821", "deepseek-coder"),
    ("8aeee3860c56296a157a1fe2fad249ec40aa59b1bb5709f4ade11c4e6fe652ed", "falcon"),
    ("0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f", "bert-bge"),
    ("9d032fcbd5501f4a38150912590928bfb36091efb5df11b8e2124b0390e3fb1e", "falcon3"),
    ("8e62295832751ca1e8f92f2226f403dea30dc5165e448b5bfa05af5340c64ec7", "bert-bge-large"),
    ("b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166", "mpt"),
    ("35d91631860c815f952d711435f48d356ebac988362536bed955d43bfa436e34", "starcoder"),
    ("3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454", "gpt-2"),
    ("32d85c31273f8019248f2559fed492d929ea28b17e51d81d3bb36fff23ca72b3", "stablelm2"),
    ("6221ad2852e85ce96f791f476e0b390cf9b474c9e3d1362f53a24a06dc8220ff", "refact"),
    ("9c2227e4dd922002fb81bde4fc02b0483ca4f12911410dee2255e4987644e3f8", "command-r"),
    ("d772b220ace2baec124bed8cfafce0ead7d6c38a4b65ef11261cf9d5d62246d1", "tiny_aya"),
    ("52df12b4c8d4176e7481aab4b6e8454d1fd0a210a04a574f6d4e067d10e23c3e", "cohere2moe"),
    ("e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea", "qwen2"),
    ("b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166", "olmo"),
    ("a8594e3edff7c29c003940395316294b2c623e09894deebbc65f33f1515df79e", "dbrx"),
    ("c7699093ba4255a91e702aa38a596aa81669f3525dae06c2953267dde580f448", "jina-v1-en"),
    ("0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f", "jina-v2-en"),
    ("171aeeedd6fb548d418a7461d053f11b6f1f1fc9b387bd66640d28a4b9f5c643", "jina-v2-es"),
    ("27949a2493fc4a9f53f5b9b029c82689cfbe5d3a1929bb25e043089e28466de6", "jina-v2-de"),
    ("a023e9fdc5a11f034d3ef515b92350e56fb2af1f66c6b6811a4444ea9bf8763d", "jina-v5-nano"),
    ("c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d", "smaug-bpe"),
    ("c7ea5862a53e4272c035c8238367063e2b270d51faa48c0f09e9d5b54746c360", "poro-chat"),
    ("7967bfa498ade6b757b064f31e964dddbb80f8f9a4d68d4ba7998fcf281c531a", "jina-v2-code"),
    ("7fc505bd3104ca1083b150b17d088b59534ede9bde81f0dd2090967d7fe52cee", "viking"),
    ("b53802fb28e26d645c3a310b34bfe07da813026ec7c7716883404d5e0f8b1901", "jais"),
    ("bc5108ee1eb6a3d600cadd065f63190fbd0554dbc9e4bbd6a0d977970afc8d2a", "jais-2"),
    ("7b3e7548e4308f52a76e8229e4e6cc831195d0d1df43aed21ac6c93da05fec5f", "codeshell"),
    ("63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e", "tekken"),
    ("855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249", "smollm"),
    ("3c30d3ad1d6b64202cd222813e7736c2db6e1bd6d67197090fc1211fbc612ae7", "bloom"),
    ("bc01ce58980e1db43859146dc51b1758b3b88729b217a74792e9f8d43e479d21", "gpt3-finnish"),
    ("4e2b24cc4770243d65a2c9ec19770a72f08cffc161adbb73fcbb6b7dd45a0aae", "exaone"),
    ("fcace8b9cac38ce847670c970cd5892031a753a1ef381abd1d9af00f713da085", "phi-2"),
    ("60824e3c0d9401f89943cbb2fff727f0e2d4c545ba4df2d6e4f09a6db0f5b450", "chameleon"),
    ("8b5a93ed704057481f240da0be7e7dca721d7f8f4755263b6807227a2cbeae65", "roberta-bpe"),
    ("ad851be1dba641f2e3711822f816db2c265f788b37c63b4e1aeacb9ee92de8eb", "gigachat"),
    ("d4c8f286ea6b520b3d495c4455483cfa2302c0cfcd4be05d781b6a8a0a7cdaf1", "megrez"),
    ("877081d19cf6996e2c4ff0e1236341e9b7bde288f5311a56a937f0afbbb3aeb5", "deepseek-v3"),
    ("b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5", "deepseek-r1-qwen"),
    ("ccc2ef013c104be7bae2965776d611e1d7a8a2a9c547dd93a682c9a9fc80352e", "gpt-4o"),
    ("7dec86086fcc38b66b7bc1575a160ae21cf705be7718b9d5598190d7c12db76f", "superbpe"),
    ("1994ffd01900cfb37395608534236ecd63f2bd5995d6cb1004dda1af50240f15", "trillion"),
    ("96a5f08be6259352137b512d4157e333e21df7edd3fcd152990608735a65b224", "bailingmoe"),
    ("d353350c764d8c3b39c763113960e4fb4919bea5fbf208a0e3b22e8469dc7406", "llama4"),
    ("0e9433cbbb161f89e264eb32e8e64bfe69e834973ffca5d41d3948a604a3e2a3", "pixtral"),
    ("d5f1dd6f980fec569fb218a81a7658ac45fc56b38c5a0adeb1c232fbe04ef5ec", "seed-coder"),
    ("b0a6b1c0bd5998ebd9df08611efde34a4ff03faed45ae09c43e6b31ebd4b94cf", "a.x-4.0"),
    ("f6791d196f87ce6b56a7d234be618e0d58f8cda3549416635b2bebcd22cd95c4", "midm-2.0"),
    ("169bf0296a13c4d9b7672313f749eb36501d931022de052aad6e36f2bf34dd51", "lfm2"),
    ("2085e1638f6c377a0aa4ead21b27bb4cb941bf800df86ed391011769c1758dfb", "exaone4"),
    ("a1e163ecab2e718a4c829d1148b6e86824ec36163bb71941c3dca9cd5ac25756", "mellum"),
    ("a0b64b4385f123663873756336c085744376d015ff328bb1d901598f63c44152", "modern-bert"),
    ("49fc0303c9e0d2c2c565c510f64b2d9b271276acdcdadff733249eda9f7d59df", "afmoe"),
    ("9b1be57e70d20d9501b2b3186e792d81181ae36ada3903c26f9fea418cf87206", "bailingmoe2"),
    ("53e325976a6e142379c19b09afcae354f2f496f147afa8f9e189a33fe4e3024e", "granite-docling"),
    ("f4f37b6c8eb9ea29b3eac6bb8c8487c5ab7885f8d8022e67edc1c68ce8403e95", "minimax-m2"),
    ("4a2e2abae11ca2b86d570fc5b44be4d5eb5e72cc8f22dd136a94b37da83ab665", "kormo"),
    ("9d70134b369a70e5735009b6de918f7581b5211f7c074d1f89f753aea8248af1", "youtu"),
    ("16389f0a1f51ee53e562ffd51c371dc508639ab0e4261502071836e50e223e91", "solar-open"),
    ("6c81ce329e0802883b22eabab0d3fa48357337ef1ecb45443828bf1f6254833f", "exaone-moe"),
    ("d30d75d9059f1aa2c19359de71047b3ae408c70875e8a3ccf8c5fba56c9d8af4", "qwen35"),
    ("b4b8ca1f9769494fbd956ebc4c249de6131fb277a4a3345a7a92c7dd7a55808d", "joyai-llm"),
    ("e4d54df1ebc1f2b91acd986c5b51aa50837d5faf7c7398e73c1f9e9ee5d19869", "kanana2"),
    ("862f827721df956049dff5ca81a57f29e575280bc622e290d3bf4e35eca29015", "f2llmv2"),
    ("62f6fb0a6fd5098caeabb19b07a5c1099cafc8b9c40eab6ea89ece4ec02fbc57", "sarvam-moe"),
    ("f728162c1315c26e40249849799b4ba3fe584c32084b4795b03eb295e63cb5af", "talkie"),
    ("36f3066e97b7f3994b379aaacde306c1444c6ae84e81a5ae3cd2b7ed3b8c42d4", "minicpm5"),
    ("f241072145675bf8322086f115aebad05e9f869557a238bf2150a2a417d1bf60", "granite-embed-multi-97m"),
    ("789696f5946cc0fc59371f39f6097cafed196b3acded6140432f26bbb1ae1669", "granite-embed-multi-311m"),
    ("9dcf830ee9990cdbf78cc523a5f7bd9ad8f3f9890c2d3581d2785ad10f07049d", "mellum2"),
    ("972da7b59cec44d1f0a490a86c96df53859e486e481563e5dddac155013d87ac", "laguna"),
    ("653660222fb704f61cbf2b618a8ae6502b7f8b20c980f9a5de07ed78e13319cd", "ufakzeka"),
];
