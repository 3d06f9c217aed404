//! Hugging Face safetensors checkpoints: one file or shards listed by
//! `model.safetensors.index.json`, memory-mapped.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::tensor::TensorData;
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::TensorSource;
use crate::error::{LlmError, Result};

struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range inside the mapped file.
    range: std::ops::Range<usize>,
}

/// Tensors of one or more memory-mapped safetensors files.
pub struct SafetensorsSource {
    name: String,
    paths: Vec<PathBuf>,
    maps: Vec<Mmap>,
    entries: BTreeMap<String, Entry>,
}

impl SafetensorsSource {
    /// Opens a model directory: `model.safetensors`, or the shards named by
    /// `model.safetensors.index.json`.
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let index = dir.join("model.safetensors.index.json");
        let files = if index.exists() {
            shard_files(&index)?.into_iter().map(|f| dir.join(f)).collect()
        } else {
            vec![dir.join("model.safetensors")]
        };
        Self::open_files(dir.display().to_string(), &files)
    }

    /// Opens explicit files as one checkpoint. A tensor present in two files is an error.
    pub fn open_files(name: String, files: &[PathBuf]) -> Result<Self> {
        let mut source = Self { name, paths: vec![], maps: vec![], entries: BTreeMap::new() };
        for path in files {
            source.add_file(path)?;
        }
        Ok(source)
    }

    fn add_file(&mut self, path: &Path) -> Result<()> {
        let file = File::open(path).map_err(|e| LlmError::io(path, e))?;
        // SAFETY: the mapping is read-only; a checkpoint modified while mapped is the caller's
        // problem, as with every mmap-based loader (candle, safetensors' own Python bindings).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| LlmError::io(path, e))?;
        let corrupt = |message: String| LlmError::Safetensors { path: path.to_path_buf(), message };
        let parsed = SafeTensors::deserialize(&map).map_err(|e| corrupt(e.to_string()))?;
        let base = map.as_ptr() as usize;
        let file_idx = self.maps.len();
        for (name, view) in parsed.iter() {
            let start = view.data().as_ptr() as usize - base;
            let entry = Entry {
                file: file_idx,
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                range: start..start + view.data().len(),
            };
            if self.entries.insert(name.to_string(), entry).is_some() {
                return Err(corrupt(format!("tensor `{name}` also appears in another shard")));
            }
        }
        drop(parsed);
        self.paths.push(path.to_path_buf());
        self.maps.push(map);
        Ok(())
    }
}

fn shard_files(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| LlmError::io(index, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| LlmError::Json { path: index.to_path_buf(), source })?;
    let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| LlmError::Safetensors {
        path: index.to_path_buf(),
        message: "index has no `weight_map` object".into(),
    })?;
    let mut files: Vec<String> = map.values().filter_map(|v| v.as_str().map(str::to_string)).collect();
    files.sort();
    files.dedup();
    Ok(files)
}

impl SafetensorsSource {
    /// The stored dtype of a tensor.
    pub fn dtype(&self, name: &str) -> Option<Dtype> {
        self.entries.get(name).map(|e| e.dtype)
    }
}

impl TensorSource for SafetensorsSource {
    fn source_name(&self) -> &str {
        &self.name
    }

    fn tensor_names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.entries.get(name).map(|e| e.shape.clone())
    }

    fn read(&self, name: &str) -> Result<TensorData> {
        let entry = self.entries.get(name).ok_or_else(|| LlmError::WeightMismatch {
            source_name: self.name.clone(),
            missing: vec![name.to_string()],
            unexpected: vec![],
            mis_shaped: vec![],
        })?;
        let bytes = &self.maps[entry.file][entry.range.clone()];
        let shape = entry.shape.clone();
        Ok(match entry.dtype {
            Dtype::F32 => TensorData::new(le_words(bytes, f32::from_le_bytes), shape),
            Dtype::F16 => TensorData::new(le_words(bytes, half::f16::from_le_bytes), shape),
            Dtype::BF16 => TensorData::new(le_words(bytes, half::bf16::from_le_bytes), shape),
            // Quantized layouts (GPTQ qweight/qzeros/g_idx, bitsandbytes codes).
            Dtype::I32 => TensorData::new(le_words(bytes, i32::from_le_bytes), shape),
            // HQQ's `shape` (torch.Size encoded as int64).
            Dtype::I64 => TensorData::new(le_words(bytes, i64::from_le_bytes), shape),
            Dtype::I8 => TensorData::new(bytes.iter().map(|&b| b as i8).collect::<Vec<_>>(), shape),
            Dtype::U8 => TensorData::new(bytes.to_vec(), shape),
            other => {
                return Err(LlmError::UnsupportedDtype {
                    path: self.paths[entry.file].clone(),
                    tensor: name.to_string(),
                    dtype: format!("{other:?} (supported: F32, F16, BF16, and I64/I32/I8/U8 for quantized layouts)"),
                })
            }
        })
    }
}

/// Decodes little-endian words; works on unaligned mmap slices.
pub(crate) fn le_words<T, const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes.chunks_exact(N).map(|c| f(c.try_into().expect("chunks_exact yields N bytes"))).collect()
}
