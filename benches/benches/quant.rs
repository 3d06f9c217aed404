//! Quantized weights on the default backend (Flex, CPU):
//! - `quant_matvec_*`: one linear layer of SmolLM2's MLP shape (`[1536, 576]`), dense f32
//!   (Burn's matmul) against each format's fused dequantize-matmul kernel, for one input row
//!   (decode) and 128 rows (prefill, where `Auto` dequantizes and uses the dense matmul);
//! - `smollm2_decode_quant`: per-token decode of SmolLM2-135M with every decoder linear layer
//!   in each format (the LM head stays f32 as in every tool), the bytes of those weights, and
//!   each format's time against its memory bound (bytes read per token over the measured
//!   read bandwidth).
//!
//! GPTQ output runs on the same group-affine kernel as `rtn4-g64` (same layout, same bits), so
//! its speed is that row's.
//!
//! ```text
//! scripts/fetch-models.sh && cargo bench -p llm-benches --bench quant
//! ```

use std::time::Duration;

use burn::tensor::{Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput};
use llm_benches::{criterion_mean_s, prompt_ids, read_bandwidth_gbs, smollm2_gguf, timed_decode};
use llm_core::nn::Linear;
use llm_core::quant::QuantExecution;
use llm_core::weights::{load_model, LoadOptions};
use llm_core::CausalLm;
use llm_quant::int8::{Granularity, Int8Scheme};
use llm_quant::nf4::Fp4Kind;
use llm_quant::{quantize_model, quantize_weight, Method};

type B = burn::backend::Flex;

fn formats() -> Vec<(&'static str, Method)> {
    vec![
        ("int8-absmax-row", Method::Int8 { scheme: Int8Scheme::Absmax, granularity: Granularity::PerRow }),
        ("rtn8-row", Method::Rtn { bits: 8, group_size: None, sym: true, partial_groups: false }),
        ("rtn4-g64", Method::Rtn { bits: 4, group_size: Some(64), sym: true, partial_groups: false }),
        ("rtn3-g64", Method::Rtn { bits: 3, group_size: Some(64), sym: true, partial_groups: false }),
        ("nf4", Method::Fp4 { kind: Fp4Kind::Nf4, blocksize: 64, double_quant: false }),
        ("nf4-dq", Method::Fp4 { kind: Fp4Kind::Nf4, blocksize: 64, double_quant: true }),
        ("llm.int8", Method::LlmInt8 { threshold: 6.0 }),
    ]
}

fn matvec(c: &mut Criterion) {
    let device = Default::default();
    let (d_out, d_in) = (1536, 576);
    let w: Vec<f32> = (0..d_out * d_in).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.05).collect();
    let dense = Linear::<B>::new(Tensor::from_data(TensorData::new(w.clone(), [d_out, d_in]), &device), None);
    for rows in [1usize, 128] {
        let x = Tensor::<B, 2>::from_data(
            TensorData::new((0..rows * d_in).map(|i| (i * 31 % 97) as f32 / 48.0 - 1.0).collect::<Vec<_>>(), [rows, d_in]),
            &device,
        );
        let mut group = c.benchmark_group(format!("quant_matvec_1536x576_rows{rows}"));
        group.sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
        group.throughput(Throughput::Elements((d_out * d_in) as u64));
        group.bench_function("dense-f32", |b| b.iter(|| dense.forward(x.clone()).into_data()));
        for (name, method) in formats() {
            let q = quantize_weight(&w, d_out, d_in, method).expect("quantizes");
            let layer = Linear::<B>::quantized(q, None, QuantExecution::Auto, &device);
            group.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(|| layer.forward(x.clone()).into_data()));
        }
        group.finish();
    }
}

fn linear_bytes(model: &CausalLm<B>) -> usize {
    model
        .linears()
        .iter()
        .filter(|(n, _)| n != "lm_head")
        .map(|(_, l)| l.quantized_weight().map_or_else(|| 4 * l.dims().0 * l.dims().1, |q| q.storage_bytes()))
        .sum()
}

fn decode(c: &mut Criterion) {
    const PROMPT: usize = 32;
    const CHUNK: u64 = 16;
    let device = Default::default();
    let dense = LoadOptions { ggml_blocks: false, ..Default::default() };
    let mut models = vec![("dense-f32", load_model::<B>(smollm2_gguf(), dense, &device).expect("loads"))];
    for (name, method) in formats() {
        let mut m = load_model::<B>(smollm2_gguf(), dense, &device).expect("loads");
        quantize_model(&mut m, method, |n| n == "lm_head", |_| {}).expect("quantizes");
        models.push((name, m));
    }
    let prompt = prompt_ids(PROMPT, models[0].1.config.vocab_size);
    let mut group = c.benchmark_group("smollm2_decode_quant");
    group.sample_size(10).measurement_time(Duration::from_secs(10)).throughput(Throughput::Elements(1));
    for (name, model) in &models {
        println!("{name}: decoder linear weights {:.1} MB", linear_bytes(model) as f64 / 1e6);
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| timed_decode(model, &prompt, iters, CHUNK))
        });
    }
    group.finish();
    memory_bound_table(&models);
}

/// Each format's decode against its memory bound: the bytes a token reads (decoder linear
/// weights, the f32 head, norms) over the machine's read bandwidth.
fn memory_bound_table(models: &[(&str, CausalLm<B>)]) {
    let bandwidth = read_bandwidth_gbs();
    println!("\nread bandwidth {bandwidth:.1} GB/s");
    println!("| format | decoder linear weights | bytes read per token | ms / token | memory bound, ms | % of bound | vs dense |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let ms = |name: &str| criterion_mean_s("smollm2_decode_quant", name).map(|s| s * 1e3);
    let dense_ms = ms("dense-f32");
    for (name, model) in models {
        let c = &model.config;
        let other = 4 * (c.vocab_size * c.d_model + (2 * c.n_layers + 1) * c.d_model);
        let bytes = (linear_bytes(model) + other) as f64;
        let bound_ms = bytes / (bandwidth * 1e9) * 1e3;
        let Some(t) = ms(name) else { continue };
        let vs = dense_ms.map_or("-".into(), |d| format!("{:.2}x", d / t));
        println!("| {name} | {:.1} MB | {:.1} MB | {t:.2} | {bound_ms:.2} | {:.0}% | {vs} |", linear_bytes(model) as f64 / 1e6, bytes / 1e6, 100.0 * bound_ms / t);
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    matvec(&mut c);
    decode(&mut c);
    c.final_summary();
}
