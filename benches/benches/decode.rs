//! Prefill (128 and 512 tokens) and per-token decode of SmolLM2-135M-Instruct on the default
//! backend, ours against llama.cpp and candle on the same GGUF in the same run:
//! - `llm-core-blocks`: our default, linear weights and the tied head kept in their GGML blocks
//!   (integer-dot kernels, activations quantized to 8 bits per 32, as llama.cpp's CPU backend);
//! - `llm-core-f32`: the same file dequantized to f32 at load (`ggml_blocks: false`);
//! - `candle-f32` / `candle-q4_1`: candle's quantized llama with every weight dequantized
//!   (`CANDLE_DEQUANTIZE_ALL`) or on its Q4_1 kernels;
//! - llama.cpp (llama-cpp-python built by `scripts/fetch-llama-cpp.sh`), run as a subprocess by
//!   `scripts/llama_cpp_bench.py` on the same prompt ids, token counts and thread count; skipped
//!   with a note when its venv is missing;
//! - transformers fp32 prefill (`scripts/transformers_prefill.py`) on the same ids and lengths,
//!   from the file's weights exported as an f32 checkpoint, when `LLM_TORCH_PYTHON` names a
//!   Python with torch and transformers.
//!
//! Prints tokens/s, the ratios, the memory-bandwidth bound of decode, the per-token cost that
//! does not grow with depth (`smollm2_decode_depth`: the model cut to one layer against all),
//! and decode of the other GGUF files in the cache against llama.cpp ([`VARIANTS`]).
//!
//! ```text
//! scripts/fetch-models.sh && scripts/fetch-llama-cpp.sh && \
//!     LLM_TORCH_PYTHON=/path/to/venv/bin/python cargo bench -p llm-benches --bench decode
//! ```

use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_transformers::models::quantized_llama::ModelWeights;
use criterion::{BenchmarkId, Criterion, Throughput};
use llm_benches::{criterion_mean_s, greedy_step, prompt_ids, read_bandwidth_gbs, smollm2_gguf, timed_decode};
use llm_core::weights::{load_model, LoadOptions};
use llm_core::CausalLm;

type B = burn::backend::Flex;

/// Prompt lengths of the prefill benches; decode runs after the first.
const PREFILLS: [usize; 2] = [128, 512];
const PREFILL: usize = PREFILLS[0];
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
    let path = smollm2_gguf();
    let blocks = load_model::<B>(&path, LoadOptions::default(), &device).expect("SmolLM2 loads");
    let floats = load_model::<B>(&path, LoadOptions { ggml_blocks: false, ..Default::default() }, &device).expect("SmolLM2 loads");
    let ours = [("llm-core-blocks", &blocks), ("llm-core-f32", &floats)];
    let candle = [("candle-f32", load_candle(true)), ("candle-q4_1", load_candle(false))];
    let longest = prompt_ids(PREFILLS[1], blocks.config.vocab_size);

    for n in PREFILLS {
        let prompt = &longest[..n];
        let mut group = c.benchmark_group(format!("smollm2_prefill_{n}"));
        group.sample_size(10).measurement_time(Duration::from_secs(15)).throughput(Throughput::Elements(n as u64));
        for (name, model) in ours {
            group.bench_function(name, |b| {
                b.iter(|| {
                    let mut cache = model.new_cache(1, n);
                    greedy_step(model, &mut cache, prompt)
                })
            });
        }
        // candle's Q4_1 prefill runs at ~10 tokens/s (a matvec per row): decode only.
        for (name, model) in candle.iter().filter(|(name, _)| *name == "candle-f32") {
            group.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(|| candle_step(&mut model.clone(), prompt, 0)));
        }
        group.finish();
    }

    let prompt = &longest[..PREFILL];
    let mut group = c.benchmark_group("smollm2_decode");
    group.sample_size(10).measurement_time(Duration::from_secs(15)).throughput(Throughput::Elements(1));
    for (name, model) in ours {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| timed_decode(model, prompt, iters, DECODE_CHUNK))
        });
    }
    for (name, model) in &candle {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(DECODE_CHUNK);
                    let mut m = model.clone();
                    let mut next = candle_step(&mut m, prompt, 0);
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
    let llama = llama_cpp(&path, &longest);
    let torch = transformers(&floats, &longest);
    summary(&blocks, llama.as_ref(), torch.as_ref());
    fixed_cost(c, &blocks, &longest);
    variants(c, &longest);
}

/// GGUF files in the model cache decoded against llama.cpp, where present: the Q8_0 and
/// Q4_K_M variants of SmolLM2 made by llama.cpp's quantizer (scripts/llama_cpp_quantize.py;
/// 576-wide rows, so the K-quant mix falls back to legacy types in most tensors) and the
/// Llama-3.2-1B-shaped file of random weights (scripts/random_llama_gguf.py), whose Q4_K_M
/// has true 256-wide Q4_K / Q6_K blocks.
const VARIANTS: [(&str, &str); 3] = [
    ("SmolLM2 Q8_0", "SmolLM2-135M-Instruct.Q8_0.gguf"),
    ("SmolLM2 Q4_K_M", "SmolLM2-135M-Instruct.Q4_K_M.gguf"),
    ("Llama-3.2-1B-shaped Q4_K_M", "Llama-3.2-1B-shaped-random.Q4_K_M.gguf"),
];

/// Decode of each of [`VARIANTS`] present: ours from the blocks against llama.cpp.
fn variants(c: &mut Criterion, ids: &[u32]) {
    let device = Default::default();
    let mut rows = vec![];
    for (label, file) in VARIANTS {
        let path = llm_core::weights::cache_dir().join(file);
        if !path.exists() {
            println!("{}: missing (see scripts/llama_cpp_quantize.py, scripts/random_llama_gguf.py)", path.display());
            continue;
        }
        let model = load_model::<B>(&path, LoadOptions::default(), &device).expect("variant loads");
        let group_name = format!("decode_{}", file.trim_end_matches(".gguf").to_lowercase().replace('.', "_"));
        let mut group = c.benchmark_group(&group_name);
        group.sample_size(10).measurement_time(Duration::from_secs(10)).throughput(Throughput::Elements(1));
        group.bench_function("llm-core-blocks", |b| {
            b.iter_custom(|iters| timed_decode(&model, &ids[..PREFILL], iters, DECODE_CHUNK))
        });
        group.finish();
        let ours = criterion_mean_s(&group_name, "llm-core-blocks").map(|s| 1.0 / s);
        let theirs = llama_cpp(&path, ids).and_then(|l| l["decode_tok_s"].as_f64());
        rows.push((label, ours, theirs));
    }
    println!("| decode, tokens/s | llm-core-blocks | llama.cpp | ratio |");
    println!("|---|---|---|---|");
    for (label, ours, theirs) in rows {
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let ratio = ours.zip(theirs).map_or("-".into(), |(a, b)| format!("{:.2}x", a / b));
        println!("| {label} | {} | {} | {ratio} |", cell(ours), cell(theirs));
    }
}

/// The per-token cost that does not grow with depth (embedding lookup, final norm, LM head,
/// sampling, the call itself): decode with the model cut to its first layer against all its
/// layers, in the same run. Per layer = `(t_all − t_1) / (n − 1)`, fixed = `t_1 − per layer`.
fn fixed_cost(c: &mut Criterion, model: &CausalLm<B>, ids: &[u32]) {
    let mut one = model.clone();
    one.layers.truncate(1);
    one.config.n_layers = 1;
    one.config.sliding_window.truncate(1);
    let n = model.config.n_layers;
    let all_id = format!("{n}-layers");
    let mut group = c.benchmark_group("smollm2_decode_depth");
    group.sample_size(10).measurement_time(Duration::from_secs(10)).throughput(Throughput::Elements(1));
    for (id, m) in [("1-layer", &one), (all_id.as_str(), model)] {
        group.bench_function(id, |b| b.iter_custom(|iters| timed_decode(m, &ids[..PREFILL], iters, DECODE_CHUNK)));
    }
    group.finish();
    let ms = |id: &str| criterion_mean_s("smollm2_decode_depth", id).map(|s| s * 1e3);
    if let (Some(t1), Some(tn)) = (ms("1-layer"), ms(&all_id)) {
        let per_layer = (tn - t1) / (n - 1) as f64;
        println!(
            "decode per token: 1 layer {t1:.3} ms, {n} layers {tn:.3} ms -> {per_layer:.3} ms per layer, {:.3} ms fixed ({:.0}% of a token)",
            t1 - per_layer,
            100.0 * (t1 - per_layer) / tn
        );
    }
}

/// transformers' fp32 prefill of `model`'s weights (exported once as an f32 checkpoint) on the
/// same ids and lengths, or `None` (with the reason printed).
fn transformers(model: &CausalLm<B>, ids: &[u32]) -> Option<serde_json::Value> {
    let Ok(python) = std::env::var("LLM_TORCH_PYTHON") else {
        println!("transformers: set LLM_TORCH_PYTHON to a Python with torch and transformers to compare with it");
        return None;
    };
    let export = llm_core::weights::cache_dir().join("SmolLM2-135M-Instruct-f32-hf");
    if !export.join("config.json").exists() {
        if let Err(e) = llm_quant::save_model(model, None, &export) {
            println!("transformers: could not export the f32 checkpoint: {e}");
            return None;
        }
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/transformers_prefill.py");
    let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
    let prefills: Vec<String> = PREFILLS.iter().map(usize::to_string).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&export)
        .args(["--prompt-ids", &ids.join(","), "--prefill", &prefills.join(","), "--threads", &threads.to_string()])
        .output();
    json_line("transformers", &python, out)
}

/// llama.cpp on the same file and ids, or `None` (with the reason printed).
fn llama_cpp(path: &std::path::Path, ids: &[u32]) -> Option<serde_json::Value> {
    let python = llm_core::weights::cache_dir().join("llama-cpp-venv/bin/python");
    if !python.exists() {
        println!("llama.cpp: {} is missing; run scripts/fetch-llama-cpp.sh to compare with it", python.display());
        return None;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/llama_cpp_bench.py");
    let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let prefills: Vec<String> = PREFILLS.iter().map(usize::to_string).collect();
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(path)
        .args(["--prompt-ids", &ids.join(","), "--prefill", &prefills.join(","), "--decode", &DECODE_CHUNK.to_string()])
        .args(["--threads", &threads.to_string()])
        .output();
    json_line("llama.cpp", &python.display().to_string(), out)
}

/// The JSON line a peer's script printed, or `None` with the reason printed (`peer` names it,
/// `python` the interpreter that ran it).
fn json_line(peer: &str, python: &str, out: std::io::Result<std::process::Output>) -> Option<serde_json::Value> {
    match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).map_err(|e| println!("{peer}: unreadable output: {e}")).ok(),
        Ok(o) => {
            println!("{peer} failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr));
            None
        }
        Err(e) => {
            println!("{peer}: could not start {python}: {e}");
            None
        }
    }
}

fn summary(ours: &CausalLm<B>, llama: Option<&serde_json::Value>, torch: Option<&serde_json::Value>) {
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
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\nSmolLM2-135M on {threads} threads; read bandwidth {bandwidth:.1} GB/s");
    println!("f32 weights read per token: {:.0} MB -> f32 decode bound {bound:.1} tokens/s", bytes_f32 / 1e6);
    let prefill = |peer: Option<&serde_json::Value>, n: usize| peer.and_then(|l| l["prefill_tok_s"][n.to_string()].as_f64());
    let mut groups: Vec<(String, f64, Option<f64>, Option<f64>)> =
        PREFILLS.iter().map(|&n| (format!("smollm2_prefill_{n}"), n as f64, prefill(llama, n), prefill(torch, n))).collect();
    groups.push(("smollm2_decode".into(), 1.0, llama.and_then(|l| l["decode_tok_s"].as_f64()), None));
    println!("| | llm-core-blocks | llm-core-f32 | candle-f32 | candle-q4_1 | llama.cpp | transformers-f32 | blocks / llama.cpp | blocks / faster peer |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (group, tokens, llama_tok_s, torch_tok_s) in groups {
        let rate = |id: &str| criterion_mean_s(&group, id).map(|s| tokens / s);
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let ratio = |peer: Option<f64>| match (rate("llm-core-blocks"), peer) {
            (Some(a), Some(b)) => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        let faster = [llama_tok_s, torch_tok_s].into_iter().flatten().reduce(f64::max);
        println!(
            "| {group}, tokens/s | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(rate("llm-core-blocks")),
            cell(rate("llm-core-f32")),
            cell(rate("candle-f32")),
            cell(rate("candle-q4_1")),
            cell(llama_tok_s),
            cell(torch_tok_s),
            ratio(llama_tok_s),
            ratio(faster)
        );
        if group == "smollm2_decode" {
            if let Some(f) = rate("llm-core-f32") {
                println!("llm-core-f32 decode reaches {:.0}% of the f32 bandwidth bound", 100.0 * f / bound);
            }
        }
    }
    if let Some(l) = llama {
        println!("llama.cpp {}: load {:.2} s, peak RSS {:.0} MB", l["llama_cpp"], l["load_s"].as_f64().unwrap_or(0.0), l["peak_rss_mb"].as_f64().unwrap_or(0.0));
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
