//! Training steps on SmolLM2-135M (LoRA r 8, alpha 16, all-linear; AdamW + clipping) on the
//! default backend, each with its PyTorch peer on the same weights and inputs in the same run:
//!
//! - SFT: batch 4 x 64 tokens, every token trained; LoRA (peer PyTorch + peft), full
//!   fine-tuning (peer PyTorch), QLoRA on an NF4 + double-quant base (no CPU peer: bitsandbytes'
//!   4-bit kernels are CUDA's).
//! - DPO (sigmoid, beta 0.1): the first 4 pairs of `examples/data/polite_prefs.jsonl`, the
//!   reference being the policy with its adapters disabled; peer trl's `DPOTrainer`.
//!
//! ```sh
//! scripts/fetch-models.sh
//! LLM_TORCH_PYTHON=/path/to/venv/bin/python cargo bench -p llm-benches --bench train
//! ```
//!
//! The peer needs a Python with torch, transformers and peft (`LLM_TORCH_PYTHON`, default
//! `python3`); without one it is skipped and says so. The bench exports the f32 weights it
//! trains (dequantized from the GGUF) as a Hugging Face checkpoint for the peer to load.

use std::path::PathBuf;
use std::process::Command;

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use criterion::{criterion_group, criterion_main, Criterion};
use llm_benches::{criterion_mean_s, prompt_ids, smollm2_gguf};
use llm_core::weights::LoadOptions;
use llm_core::ModelBundle;
use llm_train::dpo::{Dpo, DpoLoss, ReferenceSource};
use llm_train::pref::{load_preferences, PrefBatch, PrefTokenizer};
use llm_train::lora::{attach_lora, LoraSpec, TargetModules};
use llm_train::sft::{SftBatch, TokenizedExample};
use llm_train::params::set_trainable;
use llm_train::qlora::quantize_base_nf4;
use llm_train::trainer::{TrainConfig, Trainer};

type B = Autodiff<Flex>;
const BATCH: usize = 4;
const SEQ: usize = 64;

fn batch(vocab: usize) -> (Vec<Vec<u32>>, SftBatch) {
    let rows: Vec<Vec<u32>> = (0..BATCH).map(|b| prompt_ids(SEQ + b, vocab)[b..].to_vec()).collect();
    let examples: Vec<TokenizedExample> = rows
        .iter()
        .map(|r| TokenizedExample { input_ids: r.clone(), labels: r.iter().map(|&t| t as i64).collect() })
        .collect();
    (rows, SftBatch::padded(&examples.iter().collect::<Vec<_>>(), 0))
}

fn bench(c: &mut Criterion) {
    let device = Default::default();
    let bundle = ModelBundle::<B>::load(smollm2_gguf(), LoadOptions::default(), &device).expect("SmolLM2 loads");
    let (model, tokenizer) = (bundle.model, bundle.tokenizer);
    let export = llm_core::weights::cache_dir().join("SmolLM2-135M-Instruct-f32-hf");
    if !export.join("tokenizer.json").exists() {
        llm_quant::save_model(&model.valid(), Some(&tokenizer), &export).expect("export for the peers");
    }
    let (rows, batch) = batch(model.config.vocab_size);
    let spec = LoraSpec { r: 8, alpha: 16.0, targets: TargetModules::AllLinear, ..Default::default() };
    let config = TrainConfig { batch_size: BATCH, optimizer: llm_train::optim::AdamWConfig { lr: 2e-4, weight_decay: 0.0, ..Default::default() }, ..Default::default() };
    let mut group = c.benchmark_group("train");
    group.sample_size(10);
    {
        let mut full = Trainer::new(set_trainable(model.clone(), |_| true), config.clone(), 0).expect("trainer");
        group.bench_function("full_step_b4_s64", |b| b.iter(|| full.train_step(std::slice::from_ref(&batch), 1_000_000).expect("step")));
    }
    {
        let mut base = model.clone();
        quantize_base_nf4(&mut base, true).expect("NF4 base");
        let (qlora, _) = attach_lora(base, &spec, 0).expect("LoRA attaches");
        let mut qlora = Trainer::new(qlora, config.clone(), 0).expect("trainer");
        group.bench_function("qlora_step_b4_s64", |b| b.iter(|| qlora.train_step(std::slice::from_ref(&batch), 1_000_000).expect("step")));
    }
    let (model, _) = attach_lora(model, &spec, 0).expect("LoRA attaches");
    let mut trainer = Trainer::new(model, config, 0).expect("trainer");
    group.bench_function("lora_step_b4_s64", |b| b.iter(|| trainer.train_step(std::slice::from_ref(&batch), 1_000_000).expect("step")));
    group.finish();

    let prefs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/data/polite_prefs.jsonl");
    let pairs = {
        let data = load_preferences(&prefs).expect("preference data");
        let pt = PrefTokenizer { tokenizer: &tokenizer, max_length: Some(512), max_prompt_length: None, max_completion_length: None };
        pt.tokenize_all(&data[..4]).expect("tokenizes").0
    };
    let dpo = Dpo { beta: 0.1, loss: DpoLoss::Sigmoid { label_smoothing: 0.0 }, reference: ReferenceSource::DisabledAdapters, pad_id: 0 };
    let micro = vec![pairs.iter().collect::<Vec<_>>()];
    let dpo_tokens = PrefBatch::new(&micro[0], 0).n_tokens() as f64;
    let mut group = c.benchmark_group("train");
    group.sample_size(10);
    group.bench_function("dpo_lora_step_4pairs", |b| b.iter(|| trainer.train_step_with(&dpo, &micro, 1_000_000).expect("step")));
    group.finish();

    let ours = criterion_mean_s("train", "lora_step_b4_s64");
    let tokens = (BATCH * SEQ) as f64;
    if let Some(s) = ours {
        println!("llm-train LoRA step: {:.3} s, {:.1} tokens/s", s, tokens / s);
    }
    torch_row(&export, &rows, "lora", "+ peft LoRA", ours);
    if let Some(s) = criterion_mean_s("train", "qlora_step_b4_s64") {
        println!("llm-train QLoRA step (NF4 + double quant base): {s:.3} s, {:.1} tokens/s", tokens / s);
    }
    let ours_full = criterion_mean_s("train", "full_step_b4_s64");
    if let Some(s) = ours_full {
        println!("llm-train full fine-tuning step: {s:.3} s, {:.1} tokens/s", tokens / s);
    }
    torch_row(&export, &rows, "full", "full fine-tuning", ours_full);
    let ours_dpo = criterion_mean_s("train", "dpo_lora_step_4pairs");
    if let Some(s) = ours_dpo {
        println!("llm-train DPO step (4 pairs, {dpo_tokens} tokens): {s:.3} s, {:.1} tokens/s", dpo_tokens / s);
    }
    let args = ["--data".to_string(), prefs.display().to_string(), "--pairs".into(), "4".into()];
    match peer("trl_dpo_step.py", &export, &args) {
        Ok(peer) => {
            let peer_s = peer["step_s"].as_f64().unwrap_or(f64::NAN);
            println!("trl DPO step (4 pairs, {} tokens): {peer_s:.3} s, {:.1} tokens/s", peer["tokens"], peer["tokens_per_second"].as_f64().unwrap_or(0.0));
            if let Some(s) = ours_dpo {
                println!("ratio (trl step time / ours): {:.2}x", peer_s / s);
            }
        }
        Err(why) => println!("trl peer skipped: {why}"),
    }
}

/// Runs the PyTorch peer for `method` and prints its step beside ours (`ours`: seconds).
fn torch_row(model: &std::path::Path, rows: &[Vec<u32>], method: &str, label: &str, ours: Option<f64>) {
    let tokens = (BATCH * SEQ) as f64;
    match torch_peer(model, rows, method) {
        Ok(peer) => {
            let peer_s = peer["step_s"].as_f64().unwrap_or(f64::NAN);
            let rss = peer["peak_rss_mib"].as_f64().unwrap_or(0.0);
            println!("PyTorch {} {label} step: {peer_s:.3} s, {:.1} tokens/s (peak RSS {rss:.0} MiB)", peer["torch"], tokens / peer_s);
            if let Some(s) = ours {
                println!("ratio (ours / PyTorch, tokens/s): {:.2}x", peer_s / s);
            }
        }
        Err(why) => println!("PyTorch peer skipped: {why}"),
    }
}

fn torch_peer(model: &std::path::Path, rows: &[Vec<u32>], method: &str) -> Result<serde_json::Value, String> {
    let ids = std::env::temp_dir().join(format!("llm-bench-train-ids-{}.json", std::process::id()));
    std::fs::write(&ids, serde_json::to_string(rows).expect("ids serialise")).map_err(|e| e.to_string())?;
    let args = ["--ids".into(), ids.display().to_string(), "--steps".into(), "5".into(), "--method".into(), method.into()];
    let out = peer("torch_lora_step.py", model, &args);
    let _ = std::fs::remove_file(&ids);
    out
}

/// Runs `peers/<script> --model MODEL ARGS...` with `LLM_TORCH_PYTHON` (default `python3`) and
/// parses the JSON line it prints last.
fn peer(script: &str, model: &std::path::Path, args: &[String]) -> Result<serde_json::Value, String> {
    let python = std::env::var("LLM_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers").join(script);
    let out = Command::new(&python)
        .arg(script)
        .args(["--model", &model.display().to_string()])
        .args(args)
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{python} failed: {}", err.lines().last().unwrap_or("")));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("")).map_err(|e| format!("peer output: {e}"))
}

criterion_group!(benches, bench);
criterion_main!(benches);
