//! End-to-end RAG question latency on the CPU (Flex, f32), stage by stage, as the `rag` example
//! answers with its defaults: Lee background corpus (one document per line), 1000-character
//! chunks (overlap 100) embedded by all-MiniLM-L6-v2, hybrid retrieval (dense + BM25 top 20,
//! reciprocal rank fusion, k 4), sources packed into 1200 tokens, SmolLM2-135M-Instruct answers.
//!
//! ```sh
//! scripts/fetch-models.sh && cargo bench -p llm-benches --bench rag
//! ```
//!
//! Questions: the first 10 labelled ones of `examples/data/lee_questions.jsonl`. Decoding is
//! greedy with EOS and stop strings off, so every answer costs exactly [`NEW_TOKENS`] tokens
//! and the questions differ only in their prompts. The stages are the public pieces that
//! `llm_rag::answer::pipeline::answer` calls, in its order. `LLM_RAG_BENCH_MODEL` names another model
//! (HF directory or GGUF).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use burn::backend::Flex;
use llm_benches::smollm2_gguf;
use llm_core::generate::{GenerationConfig, Generator};
use llm_core::weights::LoadOptions;
use llm_core::ModelBundle;
use llm_rag::load::load_lines;
use llm_rag::embed::{default_model_dir, Embedder, SentenceTransformer};
use llm_rag::answer::pipeline::{build_messages, pack_context};
use llm_rag::retrieve::{hybrid_search, Bm25};
use llm_rag::split::RecursiveSplitter;
use llm_rag::store::{FlatStore, Hit, Record, VectorStore};

type B = Flex;

const QUESTIONS: usize = 10;
const NEW_TOKENS: usize = 64;
/// The `rag` example's defaults.
const K: usize = 4;
const BUDGET: usize = 1200;

/// Milliseconds of each stage for one question.
#[derive(Default)]
struct Stages {
    embed: f64,
    retrieve: f64,
    prompt: f64,
    prefill: f64,
    decode: f64,
    total: f64,
    prompt_tokens: usize,
    decode_tokens: usize,
    hit: bool,
}

fn questions() -> Vec<(String, HashSet<String>)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/data/lee_questions.jsonl");
    let text = std::fs::read_to_string(&path).expect("examples/data/lee_questions.jsonl");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .take(QUESTIONS)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSONL line");
            let sources = v["sources"].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect();
            (v["question"].as_str().expect("question").to_string(), sources)
        })
        .collect()
}

/// The example's index: chunks of every document in the store (embedded 32 at a time) and in BM25.
fn build_index(embedder: &SentenceTransformer<B>) -> (FlatStore, Bm25) {
    let docs = load_lines(&llm_core::weights::cache_dir().join("lee_background.cor"), "lee").expect("run scripts/fetch-models.sh");
    let splitter = RecursiveSplitter::new(1000, 100).expect("splitter");
    let mut chunks: Vec<(String, String, BTreeMap<String, String>)> = vec![];
    for d in &docs {
        for (n, c) in splitter.split_with_offsets(&d.text).into_iter().enumerate() {
            let mut meta = d.metadata.clone();
            meta.insert("document".into(), d.id.clone());
            chunks.push((format!("{}#{n}", d.id), c.text, meta));
        }
    }
    let started = Instant::now();
    let mut store = FlatStore::new();
    for batch in chunks.chunks(32) {
        let texts: Vec<&str> = batch.iter().map(|c| c.1.as_str()).collect();
        let vectors = embedder.embed(&texts).expect("embeds");
        let records = batch.iter().zip(vectors).map(|((id, text, meta), vector)| Record { id: id.clone(), text: text.clone(), metadata: meta.clone(), vector });
        store.upsert(records.collect()).expect("store");
    }
    let bm25 = Bm25::new(chunks.iter().map(|(id, text, _)| (id.as_str(), text.as_str())));
    let s = started.elapsed().as_secs_f64();
    println!("index: {} documents -> {} chunks, embedded + BM25 in {s:.1} s ({:.1} chunks/s)", docs.len(), chunks.len(), chunks.len() as f64 / s);
    (store, bm25)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One question through every stage, timed.
fn ask(q: &str, relevant: &HashSet<String>, embedder: &SentenceTransformer<B>, index: &(FlatStore, Bm25), bundle: &ModelBundle<B>, generation: &GenerationConfig) -> Stages {
    let (store, bm25) = index;
    let by_id: BTreeMap<&str, &Record> = store.records().iter().map(|r| (r.id.as_str(), r)).collect();
    let start = Instant::now();
    let v = embedder.embed(&[q]).expect("embeds").remove(0);
    let embedded = Instant::now();
    let hits: Vec<Hit> = hybrid_search(store, bm25, q, &v, K, 4 * K.max(5), None)
        .expect("search")
        .into_iter()
        .map(|(id, score)| {
            let r = by_id[id.as_str()];
            Hit { id: r.id.clone(), score: score as f32, text: r.text.clone(), metadata: r.metadata.clone() }
        })
        .collect();
    let retrieved = Instant::now();
    let sources = pack_context(&hits, &bundle.tokenizer, BUDGET).expect("pack");
    let prompt = bundle.tokenizer.apply_chat_template(&build_messages(q, &sources), true).expect("template");
    let ids = bundle.tokenizer.encode(&prompt, false).expect("encode").ids;
    let prompted = Instant::now();
    let out = Generator::new(&bundle.model, generation.clone()).expect("config").with_tokenizer(&bundle.tokenizer).generate(&[ids.clone()]).expect("generate");
    std::hint::black_box(bundle.tokenizer.decode(&out.sequences[0], true).expect("decode"));
    let total = start.elapsed();
    let decode: Duration = out.decode_steps.iter().sum();
    let hit = sources.iter().any(|s| s.metadata.get("document").is_some_and(|d| relevant.contains(d)));
    Stages {
        embed: ms(embedded - start),
        retrieve: ms(retrieved - embedded),
        prompt: ms(prompted - retrieved),
        prefill: ms(out.prefill),
        decode: ms(decode),
        total: ms(total),
        prompt_tokens: ids.len(),
        decode_tokens: out.decode_steps.len(),
        hit,
    }
}

/// The 1-minute load average (Linux), to show whether something else shared the cores.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next().map(String::from)).unwrap_or_else(|| "n/a".into())
}

/// (median, p90 by nearest rank).
fn median_p90(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    (median, v[((0.9 * n as f64).ceil() as usize).max(1) - 1])
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load_before = load_average();
    let embedder = SentenceTransformer::<B>::load(default_model_dir(), &Default::default()).expect("MiniLM (scripts/fetch-models.sh)");
    let index = build_index(&embedder);
    let model_path = std::env::var_os("LLM_RAG_BENCH_MODEL").map(PathBuf::from).unwrap_or_else(smollm2_gguf);
    let bundle = ModelBundle::<B>::load(&model_path, LoadOptions::default(), &Default::default()).expect("model loads");
    let model_name = model_path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let generation = GenerationConfig {
        do_sample: false,
        max_new_tokens: NEW_TOKENS,
        eos_token_id: vec![],
        stop_strings: vec![],
        ..bundle.generation.clone()
    };
    let questions = questions();
    // Warm-up (not counted): first-call allocations of the encoder and the decoder.
    ask(&questions[0].0, &questions[0].1, &embedder, &index, &bundle, &GenerationConfig { max_new_tokens: 2, ..generation.clone() });
    let runs: Vec<Stages> = questions.iter().map(|(q, rel)| ask(q, rel, &embedder, &index, &bundle, &generation)).collect();

    println!("1-min load average: {load_before} at start, {} at end", load_average());
    println!("model: {model_name} (f32 weights), Flex backend, {threads} CPU threads; {} questions, greedy, {NEW_TOKENS} new tokens each", runs.len());
    let hits = runs.iter().filter(|r| r.hit).count();
    let (prompt_med, _) = median_p90(runs.iter().map(|r| r.prompt_tokens as f64).collect());
    println!("prompt tokens: median {prompt_med:.0} (min {}, max {}); labelled source among the packed chunks for {hits}/{}", runs.iter().map(|r| r.prompt_tokens).min().unwrap_or(0), runs.iter().map(|r| r.prompt_tokens).max().unwrap_or(0), runs.len());
    println!("| stage | median ms | p90 ms |\n| --- | --- | --- |");
    let stages: [(&str, fn(&Stages) -> f64); 6] = [
        ("query embedding (MiniLM)", |r| r.embed),
        ("retrieval (hybrid: dense + BM25 top 20, RRF, k 4)", |r| r.retrieve),
        ("context packing + chat prompt + tokenize", |r| r.prompt),
        ("prefill (prompt, first token)", |r| r.prefill),
        ("decode (remaining tokens)", |r| r.decode),
        ("total", |r| r.total),
    ];
    for (name, f) in stages {
        let (median, p90) = median_p90(runs.iter().map(f).collect());
        println!("| {name} | {median:.1} | {p90:.1} |");
    }
    let (prefill_tps, _) = median_p90(runs.iter().map(|r| r.prompt_tokens as f64 / r.prefill * 1e3).collect());
    let (decode_tps, _) = median_p90(runs.iter().map(|r| r.decode_tokens as f64 / r.decode * 1e3).collect());
    let (total_s, _) = median_p90(runs.iter().map(|r| r.total / 1e3).collect());
    println!("prefill {prefill_tps:.1} tokens/s, decode {decode_tps:.1} tokens/s (medians); {total_s:.2} s per question");
}
