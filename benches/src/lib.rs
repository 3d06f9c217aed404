//! Helpers shared by the benches: model paths, inputs, memory bandwidth, result tables.

use std::path::PathBuf;
use std::time::Instant;

/// The SmolLM2-135M-Instruct Q4_1 GGUF fetched by `scripts/fetch-models.sh`.
pub fn smollm2_gguf() -> PathBuf {
    let path = llm_core::weights::cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.exists(), "{} is missing: run scripts/fetch-models.sh", path.display());
    path
}

/// A file of this repository, by its path from the root.
pub fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// A fixed, model-independent prompt of `n` ids below `vocab`.
pub fn prompt_ids(n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + 13) % vocab) as u32).collect()
}

/// Sustained read bandwidth of this machine in GB/s: sums a 1 GiB buffer of u64 (twice the
/// size of any cache) on every core, best of three.
pub fn read_bandwidth_gbs() -> f64 {
    let words = (1usize << 30) / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = words / threads;
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(chunk)
                .map(|c| s.spawn(move || c.iter().fold(0u64, |a, &x| a.wrapping_add(x))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).fold(0u64, u64::wrapping_add)
        });
        std::hint::black_box(total);
        best = best.max((words * 8) as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    best
}

/// Mean time in seconds of a criterion benchmark, read from `target/criterion`.
pub fn criterion_mean_s(group: &str, id: &str) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target")
    });
    let path = dir.join("criterion").join(group).join(id).join("new/estimates.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    Some(json["mean"]["point_estimate"].as_f64()? / 1e9)
}

/// One greedy step of `model` on `ids` through `cache`: the argmax of the last logits.
pub fn greedy_step<B: burn::tensor::backend::Backend>(
    model: &llm_core::CausalLm<B>,
    cache: &mut llm_core::nn::KvCache<B>,
    ids: &[u32],
) -> u32 {
    use burn::tensor::{Int, Tensor, TensorData};
    let data = TensorData::new(ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), [1, ids.len()]);
    let mut input = llm_core::ModelInput::new(Tensor::<B, 2, Int>::from_data(data, &model.device()));
    input.last_logits_only = true;
    let logits = model.forward_with(input, Some(cache)).expect("cache has room").logits;
    logits.argmax(2).into_data().iter::<i64>().next().unwrap_or(0) as u32
}

/// The time of `iters` greedy decode steps of `model` after `prompt`, for criterion's
/// `iter_custom`: in runs of at most `chunk` steps, each after a fresh cache and an untimed
/// prefill of `prompt`.
pub fn timed_decode<B: burn::tensor::backend::Backend>(
    model: &llm_core::CausalLm<B>,
    prompt: &[u32],
    iters: u64,
    chunk: u64,
) -> std::time::Duration {
    let mut total = std::time::Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(chunk);
        let mut cache = model.new_cache(1, prompt.len() + chunk as usize);
        let mut next = greedy_step(model, &mut cache, prompt);
        let start = Instant::now();
        for _ in 0..n {
            next = greedy_step(model, &mut cache, &[next]);
        }
        total += start.elapsed();
        left -= n;
    }
    total
}
