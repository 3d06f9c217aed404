//! Sentence embeddings with all-MiniLM-L6-v2: sentences/s on the default backend, and
//! sentence-transformers (PyTorch, CPU) on the same sentences in the same run.
//!
//! ```sh
//! scripts/fetch-models.sh
//! LLM_TORCH_PYTHON=/path/to/venv/bin/python cargo bench -p llm-benches --bench embed
//! ```
//!
//! Sentences: the first 256 sentences of `lee_background.cor` (news text, 5-60 words).
//! The peer needs torch and sentence-transformers (`LLM_TORCH_PYTHON`, default `python3`).

use std::path::PathBuf;
use std::process::Command;

use burn::backend::Flex;
use criterion::{criterion_group, criterion_main, Criterion};
use llm_benches::criterion_mean_s;
use llm_rag::embed::{default_model_dir, Embedder, SentenceTransformer};

fn sentences(n: usize) -> Vec<String> {
    let raw = std::fs::read(llm_core::weights::cache_dir().join("lee_background.cor")).expect("run scripts/fetch-models.sh");
    let text: String = raw.iter().map(|&b| b as char).collect();
    text.split(". ").map(|s| s.trim().to_string()).filter(|s| s.split_whitespace().count() >= 5).take(n).collect()
}

fn bench(c: &mut Criterion) {
    let dir = default_model_dir();
    let model = SentenceTransformer::<Flex>::load(&dir, &Default::default()).expect("MiniLM loads (scripts/fetch-models.sh)");
    let texts = sentences(256);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut group = c.benchmark_group("embed");
    group.sample_size(10);
    group.bench_function("minilm_256_sentences", |b| b.iter(|| model.embed(&refs).expect("embeds")));
    group.finish();
    let ours = criterion_mean_s("embed", "minilm_256_sentences");
    if let Some(s) = ours {
        println!("llm-rag MiniLM: {:.3} s for {} sentences, {:.1} sentences/s", s, texts.len(), texts.len() as f64 / s);
    }
    let tmp = std::env::temp_dir();
    let texts_path = tmp.join(format!("llm-bench-embed-texts-{}.json", std::process::id()));
    let ours_path = tmp.join(format!("llm-bench-embed-ours-{}.json", std::process::id()));
    std::fs::write(&texts_path, serde_json::to_string(&texts).expect("json")).expect("temp file");
    std::fs::write(&ours_path, serde_json::to_string(&model.embed(&refs).expect("embeds")).expect("json")).expect("temp file");
    let python = std::env::var("LLM_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/st_embed.py");
    let out = Command::new(&python)
        .arg(script)
        .args(["--model", &dir.display().to_string(), "--texts", &texts_path.display().to_string(), "--ours", &ours_path.display().to_string()])
        .output();
    let _ = (std::fs::remove_file(&texts_path), std::fs::remove_file(&ours_path));
    match out {
        Ok(o) if o.status.success() => {
            let line = String::from_utf8_lossy(&o.stdout);
            let v: serde_json::Value = serde_json::from_str(line.lines().last().unwrap_or("")).unwrap_or_default();
            let peer = v["sentences_per_second"].as_f64().unwrap_or(f64::NAN);
            println!("sentence-transformers {} (torch {}): {peer:.1} sentences/s; max |diff| vs ours {}", v["sentence_transformers"], v["torch"], v["max_abs_diff_vs_ours"]);
            if let Some(s) = ours {
                println!("ratio (ours / sentence-transformers, sentences/s): {:.2}x", texts.len() as f64 / s / peer);
            }
        }
        Ok(o) => println!("sentence-transformers peer skipped: {}", String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")),
        Err(e) => println!("sentence-transformers peer skipped: {python}: {e}"),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
