//! Writes `fuzz/seeds/<target>/`: the repository's fixtures where they fit, and micro
//! checkpoints (dense, each quantized layout, a PEFT adapter, a GGUF with every block type,
//! a FlatStore) built with the library's own writers. Run from anywhere:
//! `cargo run -p llm-fuzz --features seeds --bin make-seeds`.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use llm_core::weights::gguf::GgmlType;
use llm_fuzz::fixtures::{micro_config, MICRO_CONFIG, TINY_TOKENIZER};
use llm_fuzz::join_two;
use llm_quant::int8::{Granularity, Int8Scheme};
use llm_quant::Method;
use llm_rag::store::{FlatStore, Record, VectorStore};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = root.parent().expect("fuzz/ sits in the repository");
    let seeds = root.join("seeds");
    let _ = std::fs::remove_dir_all(&seeds);
    let fixture = |p: &str| std::fs::read(repo.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let put = |target: &str, name: &str, bytes: Vec<u8>| {
        let dir = seeds.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };

    for (name, dir) in micro_checkpoints() {
        let config = std::fs::read(dir.join("config.json")).unwrap();
        put("checkpoint", &name, join_two(&config, &std::fs::read(dir.join("model.safetensors")).unwrap()));
        put("configs", &format!("{name}.json"), config);
    }
    put("checkpoint", "k_gptq_ckpt", join_two(&fixture("fixtures/k_gptq_ckpt/config.json"), &fixture("fixtures/k_gptq_ckpt/model.safetensors")));
    let adapter = micro_adapter();
    put("adapter", "micro_lora", join_two(&std::fs::read(adapter.join("adapter_config.json")).unwrap(), &std::fs::read(adapter.join("adapter_model.safetensors")).unwrap()));
    put("adapter", "c_lora", join_two(&fixture("fixtures/c_lora/adapter/adapter_config.json"), &fixture("fixtures/c_lora/adapter/adapter_model.safetensors")));
    put("configs", "adapter_config.json", fixture("fixtures/c_lora/adapter/adapter_config.json"));

    put("gguf", "micro.gguf", micro_gguf());
    for (i, ty) in BLOCK_TYPES.iter().enumerate() {
        let (_, bytes) = ty.block_layout().unwrap();
        let mut seed = vec![i as u8];
        seed.extend(blocks(*ty, 2 * bytes, i as u64));
        put("gguf_blocks", &ty.name(), seed);
    }

    for f in ["a_tiny_llama/llama", "a_tiny_llama/llama_rope_llama3", "a_tiny_llama/llama_rope_yarn", "a_tiny_llama/mixtral", "k_gptq_ckpt"] {
        put("configs", &format!("{}.json", f.replace('/', "_")), fixture(&format!("fixtures/{f}/config.json")));
    }
    put("configs", "generation_config.json", fixture("fixtures/k_gptq_ckpt/generation_config.json"));
    put("configs", "quantize_config.json", fixture("fixtures/k_gptq_ckpt/quantize_config.json"));
    put("configs", "micro.json", MICRO_CONFIG.as_bytes().to_vec());

    put("tokenizer_json", "bytelevel_bpe512.json", fixture("fixtures/b_tokenizer/bytelevel_bpe512/tokenizer.json"));
    put("tokenizer_json", "tiny_wordlevel.json", TINY_TOKENIZER.as_bytes().to_vec());
    for t in ["bytelevel_bpe512", "mistral_v1_sentencepiece", "smollm2_from_gguf"] {
        put("tokenizer_config", &format!("{t}.json"), fixture(&format!("fixtures/b_tokenizer/{t}/tokenizer_config.json")));
    }
    put("tokenizer_config", "k_gptq_ckpt.json", fixture("fixtures/k_gptq_ckpt/tokenizer_config.json"));

    put("chat_template", "bytelevel_bpe512.jinja", fixture("fixtures/b_tokenizer/bytelevel_bpe512/chat_template.jinja"));
    put("chat_template", "smollm2.jinja", fixture("fixtures/b_tokenizer/smollm2_from_gguf/chat_template.jinja"));
    for t in [llm_core::chat::BuiltinTemplate::ChatMl, llm_core::chat::BuiltinTemplate::Llama3, llm_core::chat::BuiltinTemplate::MistralInstruct, llm_core::chat::BuiltinTemplate::Alpaca, llm_core::chat::BuiltinTemplate::Zephyr] {
        put("chat_template", &format!("{}.jinja", t.name()), t.source().as_bytes().to_vec());
    }

    let head = |p: &str, n: usize| String::from_utf8(fixture(p)).unwrap().lines().take(n).collect::<Vec<_>>().join("\n").into_bytes();
    put("sft_jsonl", "answer_format.jsonl", head("examples/data/answer_format.jsonl", 4));
    put("sft_jsonl", "chat.jsonl", br#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}, {"role": "assistant", "content": "world"}]}
{"prompt": "hello", "completion": " world"}
{"text": "hello world"}"#.to_vec());
    put("pref_jsonl", "polite_prefs.jsonl", head("examples/data/polite_prefs.jsonl", 3));
    put("pref_jsonl", "chat.jsonl", br#"{"prompt": [{"role": "user", "content": "hello"}], "chosen": [{"role": "assistant", "content": "world"}], "rejected": [{"role": "assistant", "content": "no"}]}"#.to_vec());

    let loaders = "llm-rag/tests/data/loaders";
    put("html", "page.html", fixture(&format!("{loaders}/page.html")));
    put("html", "sub_page.html", fixture(&format!("{loaders}/dir/sub/page.html")));
    for p in ["two_pages.pdf", "no_text.pdf", "corrupt.pdf"] {
        put("pdf", p, fixture(&format!("{loaders}/{p}")));
    }
    let with_schema = |schema: &str, doc: Vec<u8>| [schema.as_bytes(), b"\n", &doc].concat();
    put("json_docs", "notes.jsonl", with_schema(".content", fixture(&format!("{loaders}/notes.jsonl"))));
    put("json_docs", "records.jsonl", with_schema(".text", fixture(&format!("{loaders}/dir/records.jsonl"))));
    put("json_docs", "nested.json", with_schema(".messages[].content", br#"{"messages": [{"content": "a", "n": 1}, {"content": "b"}]}"#.to_vec()));

    put("flat_store", "store.bin", flat_store());
    println!("seeds written to {}", seeds.display());
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-fuzz-seeds-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The micro model saved dense and in every quantized layout the loader reads.
fn micro_checkpoints() -> Vec<(String, PathBuf)> {
    let config = micro_config();
    let device = Default::default();
    let model = || config.init_with::<Flex>(llm_core::weights::InitWeights::Random { seed: 7 }, &Default::default(), &device);
    let mut out = vec![];
    let dense = temp("dense");
    llm_quant::save_model(&model(), None, &dense).unwrap();
    out.push(("dense".to_string(), dense));
    let methods = [
        ("gptq_rtn4", Method::Rtn { bits: 4, group_size: Some(16), sym: false, partial_groups: false }),
        ("int8_rows", Method::Int8 { scheme: Int8Scheme::ZeroPoint, granularity: Granularity::PerRow }),
        ("nf4", Method::Fp4 { kind: llm_core::quant::Fp4Kind::Nf4, blocksize: 64, double_quant: true }),
        ("llm_int8", Method::LlmInt8 { threshold: 6.0 }),
    ];
    for (name, method) in methods {
        let mut m = model();
        llm_quant::quantize_model(&mut m, method, |n| n == "lm_head", |_| {}).unwrap();
        let dir = temp(name);
        llm_quant::save_quantized(&m, None, method.config_json(), &dir).unwrap();
        out.push((name.to_string(), dir));
    }
    out
}

/// A rank-2 LoRA on every projection of the micro model, saved as peft saves it.
fn micro_adapter() -> PathBuf {
    let config = micro_config();
    let model = config.init_with::<Flex>(llm_core::weights::InitWeights::Random { seed: 7 }, &Default::default(), &Default::default());
    let spec = llm_train::lora::LoraSpec { r: 2, alpha: 4.0, targets: llm_core::adapter::TargetModules::parse("all-linear"), ..Default::default() };
    let (model, _) = llm_train::lora::attach_lora(model, &spec, 3).unwrap();
    let dir = temp("adapter");
    llm_train::peft::save_adapter(&model, &spec, "micro", &dir).unwrap();
    dir
}

/// A three-record store with metadata, as `FlatStore` persists it.
fn flat_store() -> Vec<u8> {
    let dir = temp("store");
    let mut store = FlatStore::open(&dir).unwrap();
    let records = (0..3)
        .map(|i| Record {
            id: format!("doc-{i}"),
            text: format!("text {i}"),
            metadata: [("source".to_string(), format!("file{i}.md"))].into(),
            vector: (0..4).map(|j| (i * 4 + j) as f32 * 0.25 - 1.0).collect(),
        })
        .collect();
    store.upsert(records).unwrap();
    std::fs::read(dir.join("store.bin")).unwrap()
}

const BLOCK_TYPES: [GgmlType; 8] = [
    GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0,
    GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
];

/// `n` bytes of whole blocks of `ty`: scales 0.01 (f16), the rest pseudo-random.
fn blocks(ty: GgmlType, n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    let (_, block_bytes) = ty.block_layout().unwrap();
    let scale = half::f16::from_f32(0.01).to_bits();
    let small = |b: u8| (b as f32 / 255.0 - 0.5) * 0.2;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n / block_bytes {
        let start = out.len();
        match ty {
            GgmlType::F32 => out.extend(small(next()).to_le_bytes()),
            GgmlType::F16 => out.extend(half::f16::from_f32(small(next())).to_bits().to_le_bytes()),
            GgmlType::BF16 => out.extend(((small(next()).to_bits() >> 16) as u16).to_le_bytes()),
            _ => {
                // Scale (and min) first, as every quantized block starts.
                let scales = if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) { 2 } else { 1 };
                for _ in 0..scales {
                    out.extend(scale.to_le_bytes());
                }
                while out.len() - start < block_bytes {
                    out.push(next());
                }
            }
        }
    }
    out
}

/// A GGUF v3 writer just big enough for the seed.
struct Gguf {
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    data: Vec<u8>,
    n_tensors: u64,
}

fn gguf_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

impl Gguf {
    fn key(&mut self, key: &str, ty: u32) -> &mut Vec<u8> {
        self.n_kv += 1;
        gguf_str(&mut self.kv, key);
        self.kv.extend(ty.to_le_bytes());
        &mut self.kv
    }
    fn u32(&mut self, key: &str, v: u32) {
        self.key(key, 4).extend(v.to_le_bytes());
    }
    fn f32(&mut self, key: &str, v: f32) {
        self.key(key, 6).extend(v.to_le_bytes());
    }
    fn str(&mut self, key: &str, v: &str) {
        let kv = self.key(key, 8);
        gguf_str(kv, v);
    }
    fn strs(&mut self, key: &str, v: &[String]) {
        let kv = self.key(key, 9);
        kv.extend(8u32.to_le_bytes());
        kv.extend((v.len() as u64).to_le_bytes());
        for s in v {
            gguf_str(kv, s);
        }
    }
    fn i32s(&mut self, key: &str, v: &[i32]) {
        let kv = self.key(key, 9);
        kv.extend(5u32.to_le_bytes());
        kv.extend((v.len() as u64).to_le_bytes());
        for x in v {
            kv.extend(x.to_le_bytes());
        }
    }
    /// dims in ggml order (fastest first).
    fn tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType) {
        self.n_tensors += 1;
        gguf_str(&mut self.infos, name);
        self.infos.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend(d.to_le_bytes());
        }
        self.infos.extend(ty.0.to_le_bytes());
        self.infos.extend((self.data.len() as u64).to_le_bytes());
        let (block, block_bytes) = ty.block_layout().unwrap();
        let elements: u64 = dims.iter().product();
        self.data.extend(blocks(ty, elements as usize / block * block_bytes, self.n_tensors));
        while self.data.len() % 32 != 0 {
            self.data.push(0);
        }
    }
    fn finish(self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(self.kv);
        out.extend(self.infos);
        while out.len() % 32 != 0 {
            out.push(0);
        }
        out.extend(self.data);
        out
    }
}

/// The micro model as a GGUF: every supported block type among its tensors, a byte-level
/// BPE vocabulary of 64 tokens with merges, and a chat template.
fn micro_gguf() -> Vec<u8> {
    let mut g = Gguf { kv: vec![], n_kv: 0, infos: vec![], data: vec![], n_tensors: 0 };
    g.str("general.architecture", "llama");
    for (k, v) in [("embedding_length", 32), ("block_count", 1), ("feed_forward_length", 32), ("attention.head_count", 2), ("attention.head_count_kv", 1), ("context_length", 64)] {
        g.u32(&format!("llama.{k}"), v);
    }
    g.f32("llama.attention.layer_norm_rms_epsilon", 1e-5);
    g.f32("llama.rope.freq_base", 10000.0);
    let mut tokens: Vec<String> = ["<s>", "</s>", "\u{120}"].iter().map(|s| s.to_string()).collect();
    tokens.extend(('a'..='z').chain('A'..='Z').map(String::from));
    tokens.extend(["he", "ll", "\u{120}w", "wo", "or", "ld"].map(String::from));
    tokens.extend(('0'..='2').map(String::from));
    assert_eq!(tokens.len(), 64);
    let types: Vec<i32> = (0..64).map(|i| if i < 2 { 3 } else { 1 }).collect();
    g.str("tokenizer.ggml.model", "gpt2");
    g.strs("tokenizer.ggml.tokens", &tokens);
    g.i32s("tokenizer.ggml.token_type", &types);
    g.strs("tokenizer.ggml.merges", &["h e", "l l", "\u{120} w", "w o", "o r", "l d"].map(String::from));
    g.u32("tokenizer.ggml.bos_token_id", 0);
    g.u32("tokenizer.ggml.eos_token_id", 1);
    g.str("tokenizer.chat_template", llm_core::chat::BuiltinTemplate::ChatMl.source());
    g.tensor("token_embd.weight", &[32, 64], GgmlType::F16);
    g.tensor("blk.0.attn_norm.weight", &[32], GgmlType::F32);
    g.tensor("blk.0.attn_q.weight", &[32, 32], GgmlType::Q8_0);
    g.tensor("blk.0.attn_k.weight", &[32, 16], GgmlType::Q4_0);
    g.tensor("blk.0.attn_v.weight", &[32, 16], GgmlType::Q4_1);
    g.tensor("blk.0.attn_output.weight", &[32, 32], GgmlType::Q5_0);
    g.tensor("blk.0.ffn_norm.weight", &[32], GgmlType::F32);
    g.tensor("blk.0.ffn_gate.weight", &[32, 32], GgmlType::Q5_1);
    g.tensor("blk.0.ffn_up.weight", &[32, 32], GgmlType::BF16);
    g.tensor("blk.0.ffn_down.weight", &[32, 32], GgmlType::F32);
    g.tensor("output_norm.weight", &[32], GgmlType::F32);
    g.tensor("output.weight", &[32, 64], GgmlType::Q8_0);
    g.finish()
}
