//! Quantized weights on the default backend (Flex, CPU):
//! - `quant_matvec_*`: one linear layer of SmolLM2's MLP shape (`[1536, 576]`), dense f32
//!   (Burn's matmul) against each format's fused dequantize-matmul kernel, for one input row
//!   (decode) and 128 rows (prefill, where `Auto` dequantizes and uses the dense matmul);
//! - `smollm2_decode_quant`: per-token decode of SmolLM2-135M with every decoder linear layer
//!   in each format (the LM head stays f32 as in every tool), and the bytes of those weights.
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
use llm_benches::{prompt_ids, smollm2_gguf, timed_decode};
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
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    matvec(&mut c);
    decode(&mut c);
    c.final_summary();
}
