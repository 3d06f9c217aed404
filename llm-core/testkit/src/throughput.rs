//! Prefill/decode throughput of an architecture with random weights, and the decode roofline.
//! Shared between the test `llm-core/tests/core/throughput.rs`, which `scripts/gpu-check.sh`
//! runs on CUDA, and the `throughput` example.

use std::time::Instant;

use burn::tensor::{backend::Backend, DType, Int, Tensor, TensorData};
use llm_core::config::ModelConfig;
use llm_core::weights::{build_model, expected_tensors, LoadOptions, RandomSource};
use llm_core::{CausalLm, ModelInput};
use serde_json::{json, Value};

/// Builds `config` with random weights in `dtype` and measures prefill of `prefill` tokens
/// (best of three after a warm-up) and greedy decode of `decode` tokens after it (one host
/// sync per token: the argmax id), against the decode roofline at `bandwidth_gbs`.
pub fn measure<B: Backend>(
    config: &ModelConfig,
    dtype: DType,
    prefill: usize,
    decode: usize,
    bandwidth_gbs: f64,
    device: &B::Device,
) -> llm_core::Result<Value> {
    let started = Instant::now();
    let options = LoadOptions { dtype, ..Default::default() };
    let model: CausalLm<B> = build_model(config.clone(), &RandomSource::new(config, 0), options, device)?;
    let load_s = started.elapsed().as_secs_f64();
    let prompt: Vec<u32> = (0..prefill).map(|i| ((i * 7919 + 13) % config.vocab_size) as u32).collect();
    let capacity = prefill + decode + 1;

    let mut prefill_s = f64::INFINITY;
    for round in 0..4 {
        let mut cache = model.new_cache(1, capacity);
        let start = Instant::now();
        greedy_step(&model, &mut cache, &prompt);
        if round > 0 {
            prefill_s = prefill_s.min(start.elapsed().as_secs_f64());
        }
    }
    let mut decode_s = f64::INFINITY;
    for _ in 0..2 {
        let mut cache = model.new_cache(1, capacity);
        let mut next = greedy_step(&model, &mut cache, &prompt);
        let start = Instant::now();
        for _ in 0..decode {
            next = greedy_step(&model, &mut cache, &[next]);
        }
        decode_s = decode_s.min(start.elapsed().as_secs_f64());
    }
    let bytes = bytes_per_token(config, dtype, prefill + decode / 2);
    let decode_tps = decode as f64 / decode_s;
    let roofline_tps = bandwidth_gbs * 1e9 / bytes;
    Ok(json!({
        "dtype": format!("{dtype:?}").to_lowercase(),
        "params": params(config),
        "load_s": round(load_s, 2),
        "prefill_tokens": prefill,
        "prefill_tok_s": round(prefill as f64 / prefill_s, 0),
        "decode_tokens": decode,
        "decode_tok_s": round(decode_tps, 1),
        "decode_ms_per_token": round(1e3 / decode_tps, 3),
        "bytes_per_token_mb": round(bytes / 1e6, 1),
        "roofline_tok_s": round(roofline_tps, 0),
        "fraction_of_roofline": round(decode_tps / roofline_tps, 3),
    }))
}

/// One greedy step: logits of the last position, argmax on the device, one id read back.
pub fn greedy_step<B: Backend>(model: &CausalLm<B>, cache: &mut llm_core::nn::KvCache<B>, ids: &[u32]) -> u32 {
    let data = TensorData::new(ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), [1, ids.len()]);
    let mut input = ModelInput::new(Tensor::<B, 2, Int>::from_data(data, &model.device()));
    input.last_logits_only = true;
    let logits = model.forward_with(input, Some(cache)).expect("cache has room").logits;
    logits.argmax(2).into_data().iter::<i64>().next().unwrap_or(0) as u32
}

/// Parameters of the architecture (a tied head counted once).
pub fn params(c: &ModelConfig) -> usize {
    expected_tensors(c).iter().map(|s| s.shape.iter().product::<usize>()).sum()
}

/// Bytes one decode step must read: every weight once (a tied head reads the whole embedding
/// matrix; the lookup itself one row), and the K/V cache at `context` positions.
pub fn bytes_per_token(c: &ModelConfig, dtype: DType, context: usize) -> f64 {
    let width = dtype.size() as f64;
    let embedding = c.vocab_size * c.d_model;
    let weights = if c.tie_word_embeddings { params(c) + c.d_model } else { params(c) - embedding + c.d_model } as f64;
    let kv = (2 * c.n_layers * c.n_kv_heads * c.head_dim * context) as f64;
    (weights + kv) * width
}

/// Device bandwidth (bytes read + written per second) of an elementwise op on 1 GiB of f32:
/// what a bandwidth-bound kernel can move here. Best of five after a warm-up.
pub fn copy_bandwidth_gbs<B: Backend>(device: &B::Device) -> f64 {
    let n = 1usize << 28;
    let x = Tensor::<B, 1>::ones([n], device);
    let sync = |t: &Tensor<B, 1>| t.clone().slice(0..1).into_data();
    sync(&(x.clone() * 2.0));
    (0..5)
        .map(|_| {
            let start = Instant::now();
            let y = x.clone() * 2.0;
            sync(&y);
            (2 * n * 4) as f64 / start.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}
