//! lm-eval's `loglikelihood` requests on SmolLM2-135M-Instruct: requests/s of
//! `llm_core::eval::lm::LocalLm` (the exact f32 path and the GGUF blocks), and lm-eval 0.4.13's
//! HF backend (transformers, float32, CPU) on the same requests in the same run, with the
//! ratios and the largest log-prob difference.
//!
//! ```sh
//! scripts/fetch-models.sh
//! scripts/lm-eval-reference.sh --runs zero_shot   # makes the lm-eval venv (once)
//! cargo bench -p llm-benches --bench eval
//! ```
//!
//! Requests: capitals_mc zero-shot (`examples/data/eval/tasks`), 30 questions x 4 choices.
//! Both sides batch 8 requests per forward (longest first); lm-eval is also timed at its
//! default batch size of 1. The peer's python is `$LM_EVAL_PYTHON`, default the venv of
//! `scripts/lm-eval-reference.sh`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use burn::backend::Flex;
use criterion::{criterion_group, criterion_main, Criterion};
use llm_benches::{criterion_mean_s, repo_file, smollm2_gguf};
use llm_core::eval::lm::{LanguageModel, LocalLm, LoglikelihoodRequest};
use llm_core::eval::task::{load_tasks, DocRequests, PromptOptions};
use llm_core::weights::{load_model, GgufFile, LoadOptions};
use llm_core::{CausalLm, Tokenizer};

type B = Flex;
const BATCH: usize = 8;

fn requests() -> Vec<LoglikelihoodRequest> {
    let dir = repo_file("examples/data/eval/tasks");
    let tasks = load_tasks(&dir, &["capitals_mc".to_string()]).expect("capitals_mc loads");
    let options = PromptOptions { num_fewshot: Some(0), ..PromptOptions::default() };
    let mut out = vec![];
    for inst in tasks[0].build_requests(&options, None).expect("requests build") {
        if let DocRequests::Choices { context, continuations, .. } = inst.requests {
            out.extend(continuations.into_iter().map(|c| LoglikelihoodRequest { context: context.clone(), continuation: c }));
        }
    }
    out
}

fn load(options: LoadOptions) -> CausalLm<B> {
    load_model(smollm2_gguf(), options, &Default::default()).expect("SmolLM2 loads")
}

fn bench(c: &mut Criterion) {
    let reqs = requests();
    let tokenizer = Tokenizer::from_gguf(&GgufFile::open(smollm2_gguf()).expect("GGUF opens")).expect("tokenizer");
    let exact = load(LoadOptions { ggml_blocks: false, ..Default::default() });
    let blocks = load(LoadOptions::default());
    let mut group = c.benchmark_group("eval");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(20));
    let mut ours_logprobs = vec![];
    for (id, model) in [("loglikelihood_exact_f32", &exact), ("loglikelihood_blocks", &blocks)] {
        let lm = LocalLm::new(model, &tokenizer).expect("LocalLm").with_batch_size(BATCH);
        if ours_logprobs.is_empty() {
            ours_logprobs = lm.loglikelihood(&reqs).expect("scores").iter().map(|l| l.logprob).collect();
        }
        group.bench_function(id, |b| b.iter(|| lm.loglikelihood(&reqs).expect("scores")));
    }
    group.finish();
    let peer = lm_eval(&reqs);
    report(&reqs, &ours_logprobs, peer.as_ref());
}

fn report(reqs: &[LoglikelihoodRequest], ours_logprobs: &[f64], peer: Option<&serde_json::Value>) {
    let n = reqs.len() as f64;
    let rate = |s: Option<f64>| s.map(|s| n / s);
    let exact = rate(criterion_mean_s("eval", "loglikelihood_exact_f32"));
    let blocks = rate(criterion_mean_s("eval", "loglikelihood_blocks"));
    let theirs = |bs: usize| rate(peer.and_then(|p| p["seconds"][bs.to_string()].as_f64()));
    let (lm_eval_8, lm_eval_1) = (theirs(BATCH), theirs(1));
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map_or("-".to_string(), |(a, b)| format!("{:.2}x", a / b));
    println!("\n{} loglikelihood requests (capitals_mc, 0-shot), requests/s:", reqs.len());
    println!("| | requests/s | vs lm-eval batch {BATCH} | vs lm-eval batch 1 |");
    println!("|---|---|---|---|");
    for (name, v) in [("llm-core exact f32, batch 8", exact), ("llm-core GGUF blocks, batch 8", blocks)] {
        println!("| {name} | {} | {} | {} |", cell(v), ratio(v, lm_eval_8), ratio(v, lm_eval_1));
    }
    println!("| lm-eval HF float32, batch 8 | {} | | |", cell(lm_eval_8));
    println!("| lm-eval HF float32, batch 1 | {} | | |", cell(lm_eval_1));
    if let Some(theirs) = peer.and_then(|p| p["logprobs"].as_array()) {
        let diff = theirs.iter().zip(ours_logprobs).map(|(t, o)| (t.as_f64().unwrap_or(f64::NAN) - o).abs()).fold(0.0, f64::max);
        println!("largest log-prob difference, exact f32 against lm-eval: {diff:.2e}");
    }
}

/// lm-eval on the same requests, or `None` (with the reason printed).
fn lm_eval(reqs: &[LoglikelihoodRequest]) -> Option<serde_json::Value> {
    let python = std::env::var_os("LM_EVAL_PYTHON").map(PathBuf::from).unwrap_or_else(|| llm_core::weights::cache_dir().join("eval-ref-venv/bin/python"));
    if !python.exists() {
        println!("lm-eval: {} is missing; run scripts/lm-eval-reference.sh to compare with it", python.display());
        return None;
    }
    let script = repo_file("benches/peers/lm_eval_loglik.py");
    let spec = serde_json::json!({
        "gguf": smollm2_gguf(),
        "requests": reqs.iter().map(|r| [&r.context, &r.continuation]).collect::<Vec<_>>(),
        "batch_sizes": [BATCH, 1],
    });
    let spec_path = std::env::temp_dir().join(format!("llm-bench-eval-{}.json", std::process::id()));
    std::fs::write(&spec_path, spec.to_string()).ok()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = Command::new(&python).arg(&script).arg(&spec_path).env("OMP_NUM_THREADS", threads.to_string()).env("HF_HUB_OFFLINE", "1").output();
    std::fs::remove_file(&spec_path).ok();
    match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).map_err(|e| println!("lm-eval: unreadable output: {e}")).ok(),
        Ok(o) => {
            println!("lm-eval failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr));
            None
        }
        Err(e) => {
            println!("lm-eval: could not start {}: {e}", python.display());
            None
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
