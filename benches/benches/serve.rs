//! Continuous batching's step: one `forward_packed` decode pass of SmolLM2 (Q4_1 GGUF, GGML
//! blocks) over 1 to 32 sequences, each with its own KV cache holding 64 positions (room for
//! 64 + 256, as the server allocates). Prints
//! tokens/s of the step against one sequence's: what batching buys the server before any
//! HTTP (`scripts/serve-bench.sh` measures the server itself against llama.cpp's).
//!
//! ```text
//! scripts/fetch-models.sh && cargo bench -p llm-benches --bench serve
//! ```

use criterion::{BenchmarkId, Criterion, Throughput};
use llm_benches::{criterion_mean_s, smollm2_gguf};
use llm_core::model::PackedSequence;
use llm_core::nn::KvCache;
use llm_core::weights::{load_model, LoadOptions};
use llm_core::CausalLm;

type B = burn::backend::Flex;

const BATCHES: [usize; 5] = [1, 4, 8, 16, 32];
const PAST: usize = 64;

/// `n` caches, each prefilled (in one packed pass) with 64 different tokens.
fn caches(model: &CausalLm<B>, n: usize) -> Vec<KvCache<B>> {
    let mut caches: Vec<KvCache<B>> = (0..n).map(|_| model.new_cache(1, PAST + llm_core::generate::FIRST_ROOM)).collect();
    let pasts: Vec<Vec<u32>> = (0..n).map(|i| (0..PAST).map(|t| (100 + 13 * i + 7 * t) as u32 % 40_000).collect()).collect();
    let mut seqs: Vec<PackedSequence<B>> =
        caches.iter_mut().zip(&pasts).map(|(cache, p)| PackedSequence { tokens: p, cache }).collect();
    model.forward_packed(&mut seqs).expect("prefill");
    caches
}

fn bench(c: &mut Criterion) {
    let model: CausalLm<B> = load_model(smollm2_gguf(), LoadOptions::default(), &Default::default()).expect("SmolLM2 loads");
    let mut group = c.benchmark_group("serve_step");
    group.sample_size(10);
    let mut rates = vec![];
    // SERVE_BENCH_BATCHES=16 (comma list) runs only those sizes, e.g. under a profiler.
    let only: Option<Vec<usize>> =
        std::env::var("SERVE_BENCH_BATCHES").ok().map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    for n in BATCHES.into_iter().filter(|n| only.as_ref().is_none_or(|o| o.contains(n))) {
        let mut caches = caches(&model, n);
        let tokens: Vec<[u32; 1]> = (0..n).map(|i| [500 + i as u32]).collect();
        group.throughput(Throughput::Elements(n as u64));
        let id = BenchmarkId::new("decode_rows", n);
        group.bench_function(id.clone(), |b| {
            b.iter(|| {
                for c in caches.iter_mut() {
                    c.truncate(PAST);
                }
                let mut seqs: Vec<PackedSequence<B>> =
                    caches.iter_mut().zip(&tokens).map(|(cache, t)| PackedSequence { tokens: t, cache }).collect();
                model.forward_packed(&mut seqs).expect("step")
            })
        });
        if let Some(s) = criterion_mean_s("serve_step", &format!("decode_rows/{n}")) {
            rates.push((n, n as f64 / s));
        }
    }
    group.finish();
    let single = rates.first().map_or(0.0, |r| r.1);
    for (n, rate) in rates {
        println!("serve step, {n:>2} sequences: {rate:7.1} tokens/s ({:.2}x one sequence)", rate / single);
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
