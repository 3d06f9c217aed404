//! Sampler cost per token on SmolLM2's 49152-entry vocabulary, and streaming decode speed.
//!
//! ```text
//! scripts/fetch-models.sh && cargo bench -p llm-benches --bench generate
//! ```

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use llm_benches::{criterion_mean_s, smollm2_gguf};
use llm_core::generate::{processors_for, GenerationConfig, Generator, Sampler};
use llm_core::weights::{GgufFile, LoadOptions};
use llm_core::{ModelBundle, Tokenizer};

type B = burn::backend::Flex;

const VOCAB: usize = 49152;
const STREAM_TOKENS: usize = 32;

/// A fixed, realistic-looking logits row: a few peaks over a smooth tail.
fn logits() -> Vec<f32> {
    (0..VOCAB).map(|i| ((i * 2654435761usize) % 1000) as f32 / 100.0 - 5.0 + if i % 997 == 0 { 8.0 } else { 0.0 }).collect()
}

fn sampler(c: &mut Criterion) {
    let row = logits();
    let history: Vec<u32> = (0..300).map(|i| (i * 37 % VOCAB) as u32).collect();
    let mut group = c.benchmark_group("sampler_49152");
    group.throughput(Throughput::Elements(1));
    for (name, config) in [
        ("chain_t0.7_k50_p0.9_rep1.1", GenerationConfig { do_sample: true, temperature: 0.7, top_k: 50, top_p: 0.9, repetition_penalty: 1.1, ..Default::default() }),
        ("top_p0.9_only", GenerationConfig { do_sample: true, top_k: 0, top_p: 0.9, ..Default::default() }),
        ("min_p0.05_only", GenerationConfig { do_sample: true, top_k: 0, min_p: Some(0.05), ..Default::default() }),
    ] {
        let chain = processors_for(&config);
        let mut sampler = Sampler::new(0);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut scores = row.clone();
                for p in &chain {
                    p.process(&history, 200, &mut scores);
                }
                sampler.sample(&scores)
            })
        });
    }
    group.finish();
}

fn stream(c: &mut Criterion) {
    let path = smollm2_gguf();
    let bundle = ModelBundle::<B>::load(&path, LoadOptions::default(), &Default::default()).expect("SmolLM2 loads");
    let tok = Tokenizer::from_gguf(&GgufFile::open(&path).expect("gguf")).expect("tokenizer");
    let prompt = tok.encode("The capital of France is", false).expect("encode").ids;
    let config = GenerationConfig { max_new_tokens: STREAM_TOKENS, eos_token_id: vec![], ..GenerationConfig::default() };
    let generator = Generator::new(&bundle.model, config).expect("config").with_tokenizer(&tok);
    let mut group = c.benchmark_group("smollm2_stream");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).throughput(Throughput::Elements(1));
    group.bench_function("greedy_text_deltas", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters.div_ceil(STREAM_TOKENS as u64) {
                let mut deltas = generator.stream(&prompt).expect("stream");
                deltas.next(); // prefill, not timed
                let start = Instant::now();
                for d in deltas {
                    std::hint::black_box(d.expect("delta"));
                }
                total += start.elapsed();
            }
            // iter_custom wants the time of `iters` tokens; scale the whole-stream time.
            total.mul_f64(iters as f64 / (iters.div_ceil(STREAM_TOKENS as u64) * (STREAM_TOKENS as u64 - 1)) as f64)
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    sampler(&mut c);
    stream(&mut c);
    c.final_summary();
    if let Some(step) = criterion_mean_s("smollm2_stream", "greedy_text_deltas") {
        println!("\nstreaming greedy decode: {:.1} tokens/s ({:.1} ms/token)", 1.0 / step, step * 1e3);
        for name in ["chain_t0.7_k50_p0.9_rep1.1", "top_p0.9_only", "min_p0.05_only"] {
            if let Some(s) = criterion_mean_s("sampler_49152", name) {
                println!("sampler {name}: {:.3} ms/token = {:.1}% of a decode step", s * 1e3, 100.0 * s / step);
            }
        }
    }
}
