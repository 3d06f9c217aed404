//! Prefill/decode throughput and the decode roofline on every compiled-in backend. It measures
//! rather than checks, so it runs only when `LLM_THROUGHPUT=1`; `scripts/gpu-check.sh` runs its
//! CUDA instance. `LLM_THROUGHPUT_CONFIGS` (comma-separated, relative to the repository; default
//! SmolLM2-135M and Llama-3.2-1B), `LLM_THROUGHPUT_DTYPES` (default f32,bf16,f16),
//! `LLM_THROUGHPUT_JSON` (append one JSON line per run).

use std::io::Write;
use std::path::Path;

use burn::tensor::DType;
use llm_core::config::ModelConfig;
use llm_testkit::throughput;

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name).unwrap_or_else(|_| default.into()).split(',').map(|s| s.trim().to_string()).collect()
}

llm_testkit::backend_test! {
    fn throughput_roofline<B>(device, kind) {
        if std::env::var("LLM_THROUGHPUT").is_err() {
            eprintln!("set LLM_THROUGHPUT=1 to measure");
            return;
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let bandwidth = throughput::copy_bandwidth_gbs::<B>(device);
        println!("[{kind}] device bandwidth {bandwidth:.0} GB/s (read + write, 1 GiB f32 elementwise)");
        let configs = env_list("LLM_THROUGHPUT_CONFIGS", "benches/configs/smollm2-135m.json,benches/configs/llama-3.2-1b.json");
        for config_path in configs {
            let config = ModelConfig::from_file(root.join(&config_path)).expect("config");
            for dtype in env_list("LLM_THROUGHPUT_DTYPES", "f32,bf16,f16") {
                let dt = match dtype.as_str() {
                    "f16" => DType::F16,
                    "bf16" => DType::BF16,
                    _ => DType::F32,
                };
                let row = throughput::measure::<B>(&config, dt, 512, 128, bandwidth, device).expect("measure");
                let line = serde_json::json!({ "backend": kind.name(), "config": config_path, "bandwidth_gbs": bandwidth.round(), "row": row });
                println!("{line}");
                if let Ok(out) = std::env::var("LLM_THROUGHPUT_JSON") {
                    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(out).expect("json out");
                    writeln!(f, "{line}").expect("write");
                }
            }
        }
    }
}

/// SmolLM2 Q4_1 run from its GGML blocks against the same file dequantized to f32 at load:
/// prefill of 128 and 512 tokens and decode of 64, same prompt, same process (ratios only).
/// Runs when `LLM_THROUGHPUT=1`.
#[test]
fn smollm2_gguf_blocks_against_dequantized() {
    use llm_core::weights::{load_model, LoadOptions};
    use llm_testkit::throughput::greedy_step;
    use llm_testkit::{smollm2_gguf, TestBackend};
    use std::time::Instant;
    if std::env::var("LLM_THROUGHPUT").is_err() {
        eprintln!("set LLM_THROUGHPUT=1 to measure");
        return;
    }
    let device = Default::default();
    for (name, blocks) in [("blocks", true), ("dequantized f32", false)] {
        let started = Instant::now();
        let options = LoadOptions { ggml_blocks: blocks, ..Default::default() };
        let model = load_model::<TestBackend>(smollm2_gguf(), options, &device).expect("loads");
        let load_s = started.elapsed().as_secs_f64();
        for prefill in [128usize, 512] {
            let prompt: Vec<u32> = (0..prefill).map(|i| ((i * 7919 + 13) % 49152) as u32).collect();
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let mut cache = model.new_cache(1, prefill + 80);
                let t = Instant::now();
                greedy_step(&model, &mut cache, &prompt);
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!("[{name}] prefill {prefill}: {:.0} tokens/s", prefill as f64 / best);
        }
        let prompt: Vec<u32> = (0..16).map(|i| ((i * 7919 + 13) % 49152) as u32).collect();
        let mut best = f64::INFINITY;
        for _ in 0..2 {
            let mut cache = model.new_cache(1, 100);
            let mut next = greedy_step(&model, &mut cache, &prompt);
            let t = Instant::now();
            for _ in 0..64 {
                next = greedy_step(&model, &mut cache, &[next]);
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("[{name}] load {load_s:.2} s, decode {:.1} tokens/s", 64.0 / best);
    }
}
