//! Where the fixtures and fetched models are, and how to read them.

use std::path::{Path, PathBuf};

use safetensors::SafeTensors;

/// `<repo>/<rel>`: a path relative to the workspace root, wherever the test runs from.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

/// `<repo>/fixtures/<rel>` (copied from `../shared/fixtures`, trimmed).
pub fn fixture(rel: &str) -> PathBuf {
    repo_path("fixtures").join(rel)
}

/// The SmolLM2 GGUF fetched by `scripts/fetch-models.sh`.
///
/// # Panics
/// When the file is missing, saying which script fetches it.
pub fn smollm2_gguf() -> PathBuf {
    let path = llm_core::weights::cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.exists(), "{} is missing: run scripts/fetch-models.sh first", path.display());
    path
}

/// A JSON fixture, parsed.
///
/// # Panics
/// When the file is missing or not JSON.
pub fn read_json(file: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()))
}

/// A tensor from a safetensors fixture (F32, F16, I64, I32 or U8): (shape, values as f64).
///
/// # Panics
/// When the file, the tensor or its dtype is not as expected.
pub fn read_tensor(file: &Path, name: &str) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let view = st.tensor(name).unwrap_or_else(|_| panic!("{name} in {}", file.display()));
    let data = view.data();
    let values = match view.dtype() {
        safetensors::Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        safetensors::Dtype::F64 => data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        safetensors::Dtype::I64 => data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        safetensors::Dtype::I32 => data.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        safetensors::Dtype::U8 => data.iter().map(|&b| b as f64).collect(),
        safetensors::Dtype::F16 => data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64()).collect(),
        other => panic!("{name} in {}: unexpected fixture dtype {other:?}", file.display()),
    };
    (view.shape().to_vec(), values)
}

/// [`read_tensor`] with the values as f32 (exact for F32 fixtures and integers below 2^24).
pub fn read_f32(file: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let (shape, values) = read_tensor(file, name);
    (shape, values.into_iter().map(|v| v as f32).collect())
}

/// A JSON array of token ids.
///
/// # Panics
/// When `v` is not an array of non-negative integers.
pub fn json_ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().expect("id list").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

/// A fresh, empty directory under the system temp dir, named after `name` and unique to this
/// call: the tests of one binary run in parallel threads of one process.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = temp_path(name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("temp dir {}: {e}", dir.display()));
    dir
}

/// A path under the system temp dir, named after `name` and unique to this call, with nothing
/// there yet: for writers that create their directory and refuse an existing one.
pub fn temp_path(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("llm-test-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    path
}
