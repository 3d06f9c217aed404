//! Prefill (128 tokens) and per-token decode of SmolLM2-135M-Instruct on the default backend,
//! against candle on the same GGUF in the same run:
//! - `candle-f32`: candle's quantized llama with every weight dequantised to f32
//!   (`CANDLE_DEQUANTIZE_ALL`): the same arithmetic and bytes as ours;
//! - `candle-q4_1`: candle's Q4_1 kernels (4.5 bits/weight, int8 activations): the speed a
//!   llama.cpp-style engine gets, for reference.
//!
//! Prints tokens/s, the ratio to candle, and the memory-bandwidth bound of decode.
//!
//! ```text
//! scripts/fetch-models.sh && cargo bench -p llm-benches --bench decode
//! ```

use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_transformers::models::quantized_llama::ModelWeights;
use criterion::{BenchmarkId, Criterion, Throughput};
use llm_benches::{criterion_mean_s, greedy_step, prompt_ids, read_bandwidth_gbs, smollm2_gguf};
use llm_core::weights::{load_model, LoadOptions};
use llm_core::CausalLm;

type B = burn::backend::Flex;

const PREFILL: usize = 128;
/// Decode steps timed after each (untimed) prefill.
const DECODE_CHUNK: u64 = 32;

fn load_candle(dequantize: bool) -> ModelWeights {
    let path = smollm2_gguf();
    // candle reads CANDLE_DEQUANTIZE_ALL once per thread: load each variant on a fresh thread.
    std::thread::spawn(move || {
        if dequantize {
            std::env::set_var("CANDLE_DEQUANTIZE_ALL", "1");
        } else {
            std::env::remove_var("CANDLE_DEQUANTIZE_ALL");
        }
        let mut file = std::fs::File::open(&path).expect("gguf opens");
        let content = gguf_file::Content::read(&mut file).expect("gguf parses");
        ModelWeights::from_gguf(content, &mut file, &candle_core::Device::Cpu).expect("candle loads")
    })
    .join()
    .expect("loader thread")
}

fn candle_step(model: &mut ModelWeights, ids: &[u32], pos: usize) -> u32 {
    let x = candle_core::Tensor::new(ids, &candle_core::Device::Cpu).and_then(|t| t.unsqueeze(0)).expect("ids");
    let logits = model.forward(&x, pos).expect("candle forward");
    logits.argmax(candle_core::D::Minus1).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1::<u32>()).expect("argmax")[0]
}

fn bench(c: &mut Criterion) {
    let device = Default::default();
    let ours = load_model::<B>(smollm2_gguf(), LoadOptions::default(), &device).expect("SmolLM2 loads");
    let candle = [("candle-f32", load_candle(true)), ("candle-q4_1", load_candle(false))];
    let prompt = prompt_ids(PREFILL, ours.config.vocab_size);

    let mut group = c.benchmark_group("smollm2_prefill_128");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).throughput(Throughput::Elements(PREFILL as u64));
    group.bench_function("llm-core-f32", |b| {
        b.iter(|| {
            let mut cache = ours.new_cache(1, PREFILL);
            greedy_step(&ours, &mut cache, &prompt)
        })
    });
    for (name, model) in &candle {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| candle_step(&mut model.clone(), &prompt, 0))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("smollm2_decode");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).throughput(Throughput::Elements(1));
    group.bench_function("llm-core-f32", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(DECODE_CHUNK);
                let mut cache = ours.new_cache(1, PREFILL + DECODE_CHUNK as usize);
                let mut next = greedy_step(&ours, &mut cache, &prompt);
                let start = Instant::now();
                for _ in 0..n {
                    next = greedy_step(&ours, &mut cache, &[next]);
                }
                total += start.elapsed();
                left -= n;
            }
            total
        })
    });
    for (name, model) in &candle {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(DECODE_CHUNK);
                    let mut m = model.clone();
                    let mut next = candle_step(&mut m, &prompt, 0);
                    let start = Instant::now();
                    for i in 0..n as usize {
                        next = candle_step(&mut m, &[next], PREFILL + i);
                    }
                    total += start.elapsed();
                    left -= n;
                }
                total
            })
        });
    }
    group.finish();
    summary(&ours);
}

fn summary(ours: &CausalLm<B>) {
    let c = &ours.config;
    // Weights read per decoded token: every layer and the (tied) head; one embedding row.
    let per_layer = c.d_model * (c.n_heads + 2 * c.n_kv_heads) * c.head_dim
        + c.n_heads * c.head_dim * c.d_model
        + 3 * c.d_model * c.d_ff
        + 2 * c.d_model;
    let params_read = c.n_layers * per_layer + c.vocab_size * c.d_model + c.d_model;
    let bytes_f32 = params_read as f64 * 4.0;
    let bandwidth = read_bandwidth_gbs();
    let bound = bandwidth * 1e9 / bytes_f32;
    println!("\nSmolLM2-135M on {} threads; read bandwidth {bandwidth:.1} GB/s", std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!("f32 weights read per token: {:.0} MB -> decode bound {bound:.1} tokens/s", bytes_f32 / 1e6);
    for (group, tokens) in [("smollm2_prefill_128", PREFILL as f64), ("smollm2_decode", 1.0)] {
        let Some(ours_s) = criterion_mean_s(group, "llm-core-f32") else { continue };
        println!("{group}: llm-core-f32 {:.1} tokens/s", tokens / ours_s);
        for peer in ["candle-f32", "candle-q4_1"] {
            if let Some(s) = criterion_mean_s(group, peer) {
                println!("  {peer}: {:.1} tokens/s; llm-core / {peer} = {:.2}x", tokens / s, s / ours_s);
            }
        }
        if group == "smollm2_decode" {
            println!("  llm-core-f32 reaches {:.0}% of the bandwidth bound", 100.0 * (1.0 / ours_s) / bound);
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
