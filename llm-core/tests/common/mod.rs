//! Shared helpers for the parity tests: fixtures, the test backend, comparisons.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use safetensors::SafeTensors;

/// The backend the parity tests run on.
pub type TestBackend = burn::backend::Flex;

/// `<repo>/fixtures/<rel>` (copied from `../shared/fixtures`, trimmed).
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(rel)
}

/// The SmolLM2 GGUF fetched by `scripts/fetch-models.sh`.
pub fn smollm2_gguf() -> PathBuf {
    let path = llm_core::weights::cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.exists(), "{} is missing: run scripts/fetch-models.sh first", path.display());
    path
}

/// A float tensor from a safetensors fixture: (shape, values as f32).
pub fn read_f32(file: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let st = SafeTensors::deserialize(&bytes).expect("fixture parses");
    let view = st.tensor(name).unwrap_or_else(|_| panic!("{name} in {}", file.display()));
    let values = match view.dtype() {
        safetensors::Dtype::F32 => view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
        safetensors::Dtype::I64 => {
            view.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32).collect()
        }
        safetensors::Dtype::U8 => view.data().iter().map(|&b| b as f32).collect(),
        other => panic!("unexpected fixture dtype {other:?}"),
    };
    (view.shape().to_vec(), values)
}

pub fn read_json(file: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(file).expect("fixture exists")).expect("fixture is JSON")
}

pub fn ids_tensor<B: Backend>(rows: &[Vec<u32>], device: &B::Device) -> Tensor<B, 2, Int> {
    let (b, s) = (rows.len(), rows[0].len());
    let flat: Vec<i64> = rows.iter().flatten().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(flat, [b, s]), device)
}

pub fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// Largest absolute difference; panics with context when above `tol`.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (i, diff) = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0, 0.0f32), |acc, (i, d)| if d > acc.1 || d.is_nan() { (i, d) } else { acc });
    assert!(diff <= tol, "{what}: max |diff| {diff} at {i} (got {}, want {}) exceeds {tol}", got[i], want[i]);
    diff
}

pub use llm_core::generate::argmax;

/// f32 logits tolerance on a backend: 1e-4 on Flex and WGPU (IEEE f32, other summation
/// orders); 2e-2 on CUDA, whose f32 matmuls run on TF32 tensor cores (10-bit mantissa; largest
/// logit gap seen on an H200: 9.9e-3, see `benches/README.md`).
pub fn logits_tol(kind: llm_core::backend::BackendKind) -> f32 {
    if kind == llm_core::backend::BackendKind::Cuda {
        2e-2
    } else {
        1e-4
    }
}

/// A fresh directory under the system temp dir, unique to this test process.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-core-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn json_ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().expect("id list").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}
