//! Streaming sharded safetensors: the header of each shard is written from the plan (names,
//! dtypes, shapes are known before any value), then each tensor's bytes as it is merged, so
//! only one output tensor is ever held. Shards are named as transformers names them and listed
//! in `model.safetensors.index.json`; each goes through the atomic writer.

use std::io::{BufWriter, Write};
use std::path::Path;

use llm_core::io::write_file_atomic;
use safetensors::Dtype;

use crate::error::{Result, TrainError};

/// A tensor as the writer sees it.
pub struct TensorHeader<'a> {
    /// Name.
    pub name: &'a str,
    /// Stored dtype (F32, F16 or BF16).
    pub dtype: Dtype,
    /// PyTorch-order shape.
    pub shape: &'a [usize],
}

impl TensorHeader<'_> {
    /// Bytes of the stored tensor.
    pub fn bytes(&self) -> u64 {
        let elems: u64 = self.shape.iter().map(|&d| d as u64).product();
        elems * if self.dtype == Dtype::F32 { 4 } else { 2 }
    }
}

/// Tensor indices per shard: consecutive, each shard under `max_bytes` unless one tensor is
/// larger on its own.
pub fn shard(tensors: &[TensorHeader<'_>], max_bytes: u64) -> Vec<Vec<usize>> {
    let mut shards: Vec<Vec<usize>> = vec![];
    let mut size = 0;
    for (i, t) in tensors.iter().enumerate() {
        if shards.is_empty() || (size + t.bytes() > max_bytes && size > 0) {
            shards.push(vec![]);
            size = 0;
        }
        shards.last_mut().expect("pushed").push(i);
        size += t.bytes();
    }
    shards
}

/// File names: `model.safetensors`, or `model-0000K-of-0000N.safetensors`.
pub fn shard_names(n: usize) -> Vec<String> {
    if n == 1 {
        return vec!["model.safetensors".into()];
    }
    (1..=n).map(|k| format!("model-{k:05}-of-{n:05}.safetensors")).collect()
}

/// Writes one shard at `path`: the header, then `values(i)` for each tensor in order, each
/// converted to its dtype; a tensor of the wrong length is an error naming it.
pub fn write_shard(path: &Path, tensors: &[TensorHeader<'_>], mut values: impl FnMut(usize) -> Result<Vec<f32>>) -> Result<()> {
    let header = header_bytes(tensors);
    write_file_atomic(path, |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| TrainError::io(tmp, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let io = |e| TrainError::io(tmp, e);
        out.write_all(&(header.len() as u64).to_le_bytes()).map_err(io)?;
        out.write_all(&header).map_err(io)?;
        for (i, t) in tensors.iter().enumerate() {
            let v = values(i)?;
            let expected = t.bytes() / if t.dtype == Dtype::F32 { 4 } else { 2 };
            if v.len() as u64 != expected {
                return Err(TrainError::config(format!("tensor `{}`", t.name), format!("{} values for shape {:?}", v.len(), t.shape)));
            }
            out.write_all(&encode(&v, t.dtype)).map_err(io)?;
        }
        out.flush().map_err(io)
    })
}

/// The JSON header, padded with spaces to a multiple of 8 bytes (as safetensors writes it).
fn header_bytes(tensors: &[TensorHeader<'_>]) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    map.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0u64;
    for t in tensors {
        let dtype = match t.dtype {
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            _ => "F32",
        };
        let end = offset + t.bytes();
        map.insert(t.name.to_string(), serde_json::json!({"dtype": dtype, "shape": t.shape, "data_offsets": [offset, end]}));
        offset = end;
    }
    let mut bytes = serde_json::to_vec(&serde_json::Value::Object(map)).expect("JSON values serialise");
    while !bytes.len().is_multiple_of(8) {
        bytes.push(b' ');
    }
    bytes
}

/// Little-endian bytes of `v` in `dtype` (round to nearest even for F16/BF16).
pub fn encode(v: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F16 => v.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
        Dtype::BF16 => v.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect(),
        _ => v.iter().flat_map(|&x| x.to_le_bytes()).collect(),
    }
}

/// Rounds values to `dtype` and back, as loading them in that dtype would.
pub fn round_to(v: &mut [f32], dtype: Dtype) {
    match dtype {
        Dtype::F16 => v.iter_mut().for_each(|x| *x = half::f16::from_f32(*x).to_f32()),
        Dtype::BF16 => v.iter_mut().for_each(|x| *x = half::bf16::from_f32(*x).to_f32()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_under_the_limit_and_read_back() {
        let shapes = [vec![4usize, 4], vec![8], vec![2, 2]];
        let headers: Vec<TensorHeader> = ["a", "b", "c"].iter().zip(&shapes).map(|(n, s)| TensorHeader { name: n, dtype: Dtype::F32, shape: s }).collect();
        assert_eq!(shard(&headers, 64), vec![vec![0], vec![1, 2]]);
        assert_eq!(shard_names(2)[1], "model-00002-of-00002.safetensors");
        let dir = std::env::temp_dir().join(format!("llm-merge-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.safetensors");
        write_shard(&path, &headers, |i| Ok((0..headers[i].bytes() / 4).map(|v| v as f32 + i as f32).collect())).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let c = st.tensor("c").unwrap();
        assert_eq!(c.shape(), &[2, 2]);
        assert_eq!(&c.data()[4..8], &3.0f32.to_le_bytes());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
