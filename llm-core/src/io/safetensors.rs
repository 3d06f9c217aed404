//! Writing safetensors files (the one writer every crate uses) and reading small f32 files
//! whole on the host. Reading checkpoints for a model is [`crate::weights::SafetensorsSource`]
//! (memory-mapped, sharded).

use std::collections::HashMap;
use std::path::Path;

pub use safetensors::Dtype;

use crate::error::{LlmError, Result};

/// One tensor to write: little-endian bytes of `dtype` in `shape`.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedTensor {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Raw bytes.
    pub bytes: Vec<u8>,
}

impl OwnedTensor {
    /// An f32 tensor.
    pub fn f32(name: impl Into<String>, shape: Vec<usize>, values: &[f32]) -> Self {
        Self { name: name.into(), dtype: Dtype::F32, shape, bytes: bytemuck::cast_slice(values).to_vec() }
    }

    /// An i32 tensor.
    pub fn i32(name: impl Into<String>, shape: Vec<usize>, values: &[i32]) -> Self {
        Self { name: name.into(), dtype: Dtype::I32, shape, bytes: bytemuck::cast_slice(values).to_vec() }
    }

    /// An f16 tensor.
    pub fn f16(name: impl Into<String>, shape: Vec<usize>, values: &[half::f16]) -> Self {
        Self { name: name.into(), dtype: Dtype::F16, shape, bytes: bytemuck::cast_slice(values).to_vec() }
    }

    /// A tensor of raw bytes (`U8`, `I8`).
    pub fn bytes(name: impl Into<String>, dtype: Dtype, shape: Vec<usize>, bytes: Vec<u8>) -> Self {
        Self { name: name.into(), dtype, shape, bytes }
    }
}

/// Writes `tensors` to `path` with PyTorch's `{"format": "pt"}` metadata (what transformers
/// and peft write), atomically ([`super::write_file_atomic`]). A tensor whose bytes do not fit
/// its shape is an error naming it.
pub fn write_safetensors(path: &Path, tensors: &[OwnedTensor]) -> Result<()> {
    let bad = |message: String| LlmError::Safetensors { path: path.to_path_buf(), message };
    let views = tensors
        .iter()
        .map(|t| {
            safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| bad(format!("{}: {e}", t.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    super::write_file_atomic(path, |tmp| safetensors::serialize_to_file(views, Some(metadata), tmp).map_err(|e| bad(e.to_string())))
}

/// Every tensor of an f32 safetensors file as `name -> (shape, values)`; another dtype is an
/// error naming the tensor.
pub fn read_f32_safetensors(path: &Path) -> Result<std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)>> {
    let bytes = std::fs::read(path).map_err(|e| LlmError::io(path, e))?;
    let bad = |message: String| LlmError::Safetensors { path: path.to_path_buf(), message };
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    st.iter()
        .map(|(name, view)| {
            if view.dtype() != Dtype::F32 {
                return Err(bad(format!("{name}: dtype {:?}, expected F32", view.dtype())));
            }
            let v: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            Ok((name.to_string(), (view.shape().to_vec(), v)))
        })
        .collect()
}
