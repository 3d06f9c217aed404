//! GGML block kernels (`llm_core::quant::ggml`) on one weight: `x · Wᵀ` for one input row (a
//! decode step's matvec) and for 8, per block type, SIMD kernels against the portable ones,
//! and the weight bytes read per second against this machine's read bandwidth (decode is
//! bound by it when the kernel keeps up).
//!
//! Weights are random blocks of a `[2048, 2048]` matrix (a Llama-3.2-1B projection), every
//! type; SmolLM2's own Q4_1 `down_proj` and Q8_0 token table (the tied LM head) from its GGUF.
//!
//! ```text
//! scripts/fetch-models.sh && cargo bench -p llm-benches --bench ggml
//! ```

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use llm_benches::{criterion_mean_s, read_bandwidth_gbs, smollm2_gguf};
use llm_core::quant::{GgmlWeight, QuantizedWeight};
use llm_core::weights::gguf::quants::GgmlType;
use llm_core::weights::{GgufSource, TensorSource};

const TYPES: [(GgmlType, &str); 10] = [
    (GgmlType::Q4_0, "q4_0"),
    (GgmlType::Q4_1, "q4_1"),
    (GgmlType::Q5_0, "q5_0"),
    (GgmlType::Q5_1, "q5_1"),
    (GgmlType::Q8_0, "q8_0"),
    (GgmlType::Q2_K, "q2_k"),
    (GgmlType::Q3_K, "q3_k"),
    (GgmlType::Q4_K, "q4_k"),
    (GgmlType::Q5_K, "q5_k"),
    (GgmlType::Q6_K, "q6_k"),
];

/// Byte offsets of the f16 fields of one block.
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        _ => &[0, 2],
    }
}

fn random_weight(ty: GgmlType, d_out: usize, d_in: usize) -> GgmlWeight {
    let (block, size) = ty.block_layout().expect("a block type");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let mut data: Vec<u8> = (0..d_out * d_in / block * size).map(|_| next() as u8).collect();
    for blk in data.chunks_exact_mut(size) {
        for &at in f16_fields(ty) {
            let v = half::f16::from_f32(((next() % 2000) as f32 / 1000.0 - 1.0) * 0.05);
            blk[at..at + 2].copy_from_slice(&v.to_le_bytes());
        }
    }
    GgmlWeight::new("random", ty, d_out, d_in, data).expect("whole blocks")
}

fn input(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 2654435761) % 2001) as f32 / 1000.0 - 1.0).collect()
}

fn bench(c: &mut Criterion) {
    let mut weights: Vec<(String, GgmlWeight)> =
        TYPES.iter().map(|&(ty, name)| (format!("{name}-2048x2048"), random_weight(ty, 2048, 2048))).collect();
    let source = GgufSource::open(smollm2_gguf()).expect("SmolLM2 GGUF opens");
    for (label, name) in [("smollm2-down-q4_1", "model.layers.0.mlp.down_proj.weight"), ("smollm2-embed-q8_0", "model.embed_tokens.weight")] {
        let w = source.read_blocks(name).expect("a block tensor").expect("reads");
        weights.push((label.to_string(), w));
    }
    let mut rows_out = vec![];
    for rows in [1usize, 8] {
        let group_name = format!("ggml_matmul_{rows}row");
        let mut group = c.benchmark_group(&group_name);
        group.sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
        for (label, w) in &weights {
            group.throughput(Throughput::Bytes(w.storage_bytes() as u64));
            let x = input(rows * w.d_in);
            for (kernel, q) in [("simd", QuantizedWeight::Ggml(w.clone())), ("portable", QuantizedWeight::Ggml(w.clone().portable()))] {
                group.bench_function(BenchmarkId::new(kernel, label), |b| b.iter(|| q.matmul(&x, rows)));
            }
        }
        group.finish();
        rows_out.push((rows, group_name));
    }
    let bandwidth = read_bandwidth_gbs();
    println!("\nread bandwidth (1 GiB sum, all cores): {bandwidth:.1} GB/s");
    println!("| weight | rows | simd GB/s | portable GB/s | simd / portable | simd / bandwidth |");
    println!("|---|---|---|---|---|---|");
    for (rows, group) in &rows_out {
        for (label, w) in &weights {
            let gbs = |k: &str| criterion_mean_s(group, &format!("{k}/{label}")).map(|s| w.storage_bytes() as f64 / s / 1e9);
            if let (Some(s), Some(p)) = (gbs("simd"), gbs("portable")) {
                println!("| {label} | {rows} | {s:.1} | {p:.1} | {:.2}x | {:.0}% |", s / p, 100.0 * s / bandwidth);
            }
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
