//! HNSW over real MiniLM vectors: build time, queries/s and recall@10 against exact search,
//! with faiss-cpu's HNSW (M 32, efConstruction 100, same efSearch) on the same vectors in the
//! same run.
//!
//! ```sh
//! scripts/fetch-models.sh
//! /path/to/venv/bin/pip install faiss-cpu numpy
//! LLM_TORCH_PYTHON=/path/to/venv/bin/python cargo bench -p llm-benches --bench index
//! ```
//!
//! Vectors: all-MiniLM-L6-v2 embeddings of 12-word windows (stride 6) of `lee_background.cor`
//! and `lee.cor` (the base, 10 646) and, as queries, 200 windows at the half-stride offsets (texts not in the
//! base). They are computed once and cached next to the models (`minilm-lee-windows-*.f32`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use burn::backend::Flex;
use llm_rag::embed::{default_model_dir, Embedder, SentenceTransformer};
use llm_rag::hnsw::{exact_top_k, HnswIndex, HnswParams};
use llm_rag::store::{FlatStore, Record, VectorStore};

const DIM: usize = 384;

fn windows(offset: usize) -> Vec<String> {
    let read = |name: &str| std::fs::read(llm_core::weights::cache_dir().join(name)).expect("run scripts/fetch-models.sh");
    let raw = [read("lee_background.cor"), read("lee.cor")].concat();
    let text: String = raw.iter().map(|&b| b as char).collect();
    let words: Vec<&str> = text.split_whitespace().collect();
    (offset..words.len().saturating_sub(12)).step_by(6).map(|i| words[i..i + 12].join(" ")).collect()
}

fn cached(path: &Path, texts: &[String], model: &SentenceTransformer<Flex>) -> Vec<Vec<f32>> {
    if let Ok(bytes) = std::fs::read(path) {
        let v: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if v.len() == texts.len() * DIM {
            return v.chunks(DIM).map(<[f32]>::to_vec).collect();
        }
    }
    let started = Instant::now();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let out = model.embed(&refs).expect("embeds");
    println!("embedded {} windows in {:.1} s ({:.0}/s)", texts.len(), started.elapsed().as_secs_f64(), texts.len() as f64 / started.elapsed().as_secs_f64());
    let bytes: Vec<u8> = out.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("cache write");
    std::fs::rename(&tmp, path).expect("cache rename");
    out
}

fn main() {
    let model = SentenceTransformer::<Flex>::load(default_model_dir(), &Default::default()).expect("MiniLM (scripts/fetch-models.sh)");
    let cache = llm_core::weights::cache_dir();
    let base_texts = windows(0);
    let query_texts: Vec<String> = windows(3).into_iter().step_by(50).take(200).collect();
    let base = cached(&cache.join(format!("minilm-lee-windows-{}.f32", base_texts.len())), &base_texts, &model);
    let queries = cached(&cache.join("minilm-lee-queries-200.f32"), &query_texts, &model);
    println!("{} base vectors, {} queries, dim {DIM}", base.len(), queries.len());

    let exact: Vec<Vec<usize>> = queries.iter().map(|q| exact_top_k(&base, q, 10)).collect();
    let mut store = FlatStore::new();
    let records = base.iter().enumerate().map(|(i, v)| Record { id: i.to_string(), text: String::new(), metadata: Default::default(), vector: v.clone() });
    store.upsert(records.collect()).expect("store");
    let started = Instant::now();
    for q in &queries {
        std::hint::black_box(store.search(q, 10, None).expect("search"));
    }
    let exact_qps = queries.len() as f64 / started.elapsed().as_secs_f64();

    let params = HnswParams { ef_construction: 100, ef_search: 64, seed: 0 };
    let ids: Vec<String> = (0..base.len()).map(|i| i.to_string()).collect();
    let started = Instant::now();
    let index = HnswIndex::build(ids, &base, params);
    let build_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let found: Vec<Vec<usize>> = queries.iter().map(|q| index.search(q, 10).into_iter().map(|(id, _)| id.parse().expect("index")).collect()).collect();
    let qps = queries.len() as f64 / started.elapsed().as_secs_f64();
    let recall = found.iter().zip(&exact).map(|(f, e)| f.iter().filter(|i| e.contains(i)).count()).sum::<usize>() as f64 / (10 * queries.len()) as f64;
    println!("exact search (FlatStore): {exact_qps:.0} queries/s");
    println!("llm-rag HNSW (instant-distance, M 32, efC 100, ef 64): build {build_s:.2} s, {qps:.0} queries/s, recall@10 {recall:.4}");

    let dir = std::env::temp_dir();
    let write = |name: &str, v: &[Vec<f32>]| -> PathBuf {
        let p = dir.join(format!("llm-bench-index-{}-{name}.f32", std::process::id()));
        std::fs::write(&p, v.iter().flatten().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).expect("temp file");
        p
    };
    let (bp, qp) = (write("base", &base), write("queries", &queries));
    let python = std::env::var("LLM_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/faiss_hnsw.py");
    let out = Command::new(&python)
        .arg(script)
        .args(["--vectors", &bp.display().to_string(), "--queries", &qp.display().to_string(), "--dim", &DIM.to_string(), "--ef-search", "64"])
        .output();
    let _ = (std::fs::remove_file(&bp), std::fs::remove_file(&qp));
    match out {
        Ok(o) if o.status.success() => {
            let v: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().last().unwrap_or("")).unwrap_or_default();
            println!(
                "faiss-cpu {} HNSW (M 32, efC 100, ef 64): build {:.2} s, {:.0} queries/s, recall@10 {:.4}",
                v["faiss"], v["build_s"].as_f64().unwrap_or(f64::NAN), v["queries_per_s"].as_f64().unwrap_or(f64::NAN), v["recall_at_10"].as_f64().unwrap_or(f64::NAN)
            );
        }
        Ok(o) => println!("faiss peer skipped: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")),
        Err(e) => println!("faiss peer skipped: {python}: {e}"),
    }
}
