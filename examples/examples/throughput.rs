//! Prefill and decode throughput of a Llama architecture on any compiled-in backend, against
//! the memory-bandwidth roofline of decode (bytes read per token / measured bandwidth).
//!
//! Weights are random ([`RandomSource`]) with the config's exact shapes, so a 1B model needs no
//! download: the speed is the checkpoint's, the text would not be.
//!
//! ```text
//! cargo run --release --features cuda --example throughput -- --backend cuda \
//!     --config benches/configs/smollm2-135m.json --config benches/configs/llama-3.2-1b.json \
//!     --dtype f32 --dtype bf16 --dtype f16
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::{backend::Backend, DType, Int, Tensor, TensorData};
use clap::Parser;
use llm_core::backend::{BackendKind, BackendTask};
use llm_examples::run_on;
use llm_core::config::ModelConfig;
use llm_core::weights::{build_model, LoadOptions, RandomSource};
use llm_core::{CausalLm, ModelInput};
use llm_examples::{parse_backend, parse_dtype};
use serde_json::json;

#[derive(Parser, Debug, Clone)]
#[command(about = "Prefill/decode tokens per second and the decode roofline")]
struct Cli {
    /// flex, wgpu or cuda (the last two need `--features wgpu|cuda`).
    #[arg(long, default_value = "flex", value_parser = parse_backend)]
    backend: BackendKind,
    /// Device index for GPU backends.
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Hugging Face config.json of the architecture (repeatable).
    #[arg(long = "config", required = true)]
    configs: Vec<PathBuf>,
    /// Weight dtype (repeatable): f32, f16, bf16.
    #[arg(long = "dtype", default_value = "f32", value_parser = parse_dtype)]
    dtypes: Vec<DType>,
    /// Prompt tokens of the prefill.
    #[arg(long, default_value_t = 512)]
    prefill: usize,
    /// Tokens decoded after the prefill (timed).
    #[arg(long, default_value_t = 128)]
    decode: usize,
    /// Append one JSON line per run to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

struct Task(Cli);

impl BackendTask for Task {
    type Output = anyhow::Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<()> {
        let cli = self.0;
        let bandwidth = copy_bandwidth_gbs::<B>(&device);
        println!("backend {} ({}); device copy bandwidth {bandwidth:.0} GB/s (read + write)", cli.backend, B::name(&device));
        for path in &cli.configs {
            let config = ModelConfig::from_file(path).with_context(|| format!("reading {}", path.display()))?;
            for &dtype in &cli.dtypes {
                let row = measure::<B>(&config, dtype, &cli, bandwidth, &device)?;
                let row = json!({ "config": path.file_stem().and_then(|s| s.to_str()), "backend": cli.backend.name(), "row": row });
                println!("{row}");
                if let Some(out) = &cli.json {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(out)?;
                    writeln!(f, "{row}")?;
                }
            }
        }
        Ok(())
    }
}

fn measure<B: Backend>(
    config: &ModelConfig,
    dtype: DType,
    cli: &Cli,
    bandwidth_gbs: f64,
    device: &B::Device,
) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let options = LoadOptions { dtype, ..Default::default() };
    let model: CausalLm<B> = build_model(config.clone(), &RandomSource::new(config, 0), options, device)?;
    let load_s = started.elapsed().as_secs_f64();
    let prompt: Vec<u32> = (0..cli.prefill).map(|i| ((i * 7919 + 13) % config.vocab_size) as u32).collect();
    let capacity = cli.prefill + cli.decode + 1;

    // Prefill: warm-up once (kernel compilation, autotune), then best of three.
    let mut prefill_s = f64::INFINITY;
    for round in 0..4 {
        let mut cache = model.new_cache(1, capacity);
        let start = Instant::now();
        greedy_step(&model, &mut cache, &prompt);
        if round > 0 {
            prefill_s = prefill_s.min(start.elapsed().as_secs_f64());
        }
    }
    // Decode: one warm-up pass, then the timed one; one host sync per token (the argmax id).
    let mut decode_s = f64::INFINITY;
    for _ in 0..2 {
        let mut cache = model.new_cache(1, capacity);
        let mut next = greedy_step(&model, &mut cache, &prompt);
        let start = Instant::now();
        for _ in 0..cli.decode {
            next = greedy_step(&model, &mut cache, &[next]);
        }
        decode_s = start.elapsed().as_secs_f64();
    }
    let bytes = bytes_per_token(config, dtype, cli.prefill + cli.decode / 2);
    let decode_tps = cli.decode as f64 / decode_s;
    let roofline_tps = bandwidth_gbs * 1e9 / bytes;
    Ok(json!({
        "dtype": format!("{dtype:?}").to_lowercase(),
        "params": params(config),
        "load_s": round(load_s, 2),
        "prefill_tokens": cli.prefill,
        "prefill_tok_s": round(cli.prefill as f64 / prefill_s, 0),
        "decode_tokens": cli.decode,
        "decode_tok_s": round(decode_tps, 1),
        "decode_ms_per_token": round(1e3 / decode_tps, 3),
        "bytes_per_token_mb": round(bytes / 1e6, 1),
        "roofline_tok_s": round(roofline_tps, 0),
        "fraction_of_roofline": round(decode_tps / roofline_tps, 3),
    }))
}

/// One greedy step: logits of the last position, argmax on the device, one id read back.
fn greedy_step<B: Backend>(model: &CausalLm<B>, cache: &mut llm_core::nn::KvCache<B>, ids: &[u32]) -> u32 {
    let data = TensorData::new(ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), [1, ids.len()]);
    let mut input = ModelInput::new(Tensor::<B, 2, Int>::from_data(data, &model.device()));
    input.last_logits_only = true;
    let logits = model.forward_with(input, Some(cache)).expect("cache has room").logits;
    logits.argmax(2).into_data().iter::<i64>().next().unwrap_or(0) as u32
}

/// Parameters of the architecture (tied head counted once).
fn params(c: &ModelConfig) -> usize {
    llm_core::weights::expected_tensors(c).iter().map(|s| s.shape.iter().product::<usize>()).sum()
}

/// Bytes one decode step must read: every weight once (the tied head reads the whole
/// embedding matrix; the lookup itself one row), and the K/V cache at `context` positions.
fn bytes_per_token(c: &ModelConfig, dtype: DType, context: usize) -> f64 {
    let width = dtype.size() as f64;
    // `params` counts the embedding matrix once (tied) or with the separate head (untied).
    let embedding = c.vocab_size * c.d_model;
    let weights = if c.tie_word_embeddings { params(c) + c.d_model } else { params(c) - embedding + c.d_model } as f64;
    let kv = (2 * c.n_layers * c.n_kv_heads * c.head_dim * context) as f64;
    (weights + kv) * width
}

/// Device-to-device bandwidth (bytes read + written per second) of an elementwise op on
/// 1 GiB of f32: the most a bandwidth-bound kernel here can move. Best of five.
fn copy_bandwidth_gbs<B: Backend>(device: &B::Device) -> f64 {
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    run_on(cli.backend, cli.device, Task(cli.clone()))?
}
