//! Writing the GGUF v3 container, the inverse of [`super::file`]: header, metadata key/values,
//! tensor infos, then each tensor's bytes at an aligned offset.
//!
//! Tensors are streamed: their sizes follow from type and shape, so every offset is known
//! before the first byte of data is produced, and only one tensor's bytes are held at a time.
//! The file is written through [`crate::io::write_file_atomic`] (temporary, fsync, rename), so
//! a failed or interrupted write never leaves a half-written GGUF under the target name.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::file::GgufValue;
use super::quants::GgmlType;
use crate::error::{LlmError, Result};

/// Data alignment llama.cpp assumes when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: usize = 32;

/// One tensor to be written: its name, ggml-order dims and storage type.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorPlan {
    /// GGUF tensor name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions in ggml order (`dims[0]` varies fastest: `[cols, rows]` for a matrix).
    pub dims: Vec<u64>,
    /// Storage type.
    pub ggml_type: GgmlType,
}

impl GgufTensorPlan {
    /// A tensor of PyTorch-order `shape` (`[rows, cols]`) stored as `ggml_type`.
    pub fn new(name: impl Into<String>, shape: &[usize], ggml_type: GgmlType) -> Self {
        Self { name: name.into(), dims: shape.iter().rev().map(|&d| d as u64).collect(), ggml_type }
    }

    /// Bytes of the tensor's data, or an error naming it when its rows do not split into the
    /// type's blocks (or the type is not one this writer knows).
    pub fn byte_len(&self) -> Result<usize> {
        let err = |m: String| LlmError::config(format!("GGUF tensor `{}`", self.name), m);
        let (block, bytes) = self.ggml_type.block_layout().ok_or_else(|| err(format!("type {} cannot be written", self.ggml_type.name())))?;
        let row = *self.dims.first().ok_or_else(|| err("has no dimensions".into()))? as usize;
        if !row.is_multiple_of(block) {
            return Err(err(format!("row length {row} is not a multiple of {}'s block of {block}", self.ggml_type.name())));
        }
        let elements = self.dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d as usize));
        elements.and_then(|e| (e / block).checked_mul(bytes)).ok_or_else(|| err(format!("dims {:?} overflow", self.dims)))
    }
}

/// Writes a GGUF v3 file at `path`: `metadata` in the given order, then the tensors of `plan`,
/// whose bytes `data(i)` produces one at a time (exactly [`GgufTensorPlan::byte_len`] bytes,
/// or the write fails naming the tensor). `general.alignment` in `metadata` sets the
/// alignment (a power of two); otherwise it is [`DEFAULT_ALIGNMENT`].
pub fn write_gguf(
    path: &Path,
    metadata: &[(String, GgufValue)],
    plan: &[GgufTensorPlan],
    mut data: impl FnMut(usize) -> Result<Vec<u8>>,
) -> Result<()> {
    let alignment = alignment(metadata)?;
    let sizes = plan.iter().map(GgufTensorPlan::byte_len).collect::<Result<Vec<_>>>()?;
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = plan.iter().find(|t| !seen.insert(t.name.as_str())) {
        return Err(LlmError::config(format!("GGUF tensor `{}`", dup.name), "is planned twice"));
    }
    crate::io::write_file_atomic(path, |tmp| {
        let file = File::create(tmp).map_err(|e| LlmError::io(tmp, e))?;
        let mut out = Counting { inner: BufWriter::with_capacity(1 << 20, file), written: 0 };
        let io = |e: std::io::Error| LlmError::io(tmp, e);
        header(&mut out, metadata, plan, &sizes, alignment).map_err(io)?;
        pad(&mut out, alignment).map_err(io)?;
        for (i, (t, &size)) in plan.iter().zip(&sizes).enumerate() {
            let bytes = data(i)?;
            if bytes.len() != size {
                let message = format!("{} bytes were produced, {size} expected for {} {:?}", bytes.len(), t.ggml_type.name(), t.dims);
                return Err(LlmError::config(format!("GGUF tensor `{}`", t.name), message));
            }
            out.write_all(&bytes).map_err(io)?;
            pad(&mut out, alignment).map_err(io)?;
        }
        out.inner.flush().map_err(io)
    })
}

fn alignment(metadata: &[(String, GgufValue)]) -> Result<usize> {
    match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => Ok(DEFAULT_ALIGNMENT),
        Some((_, v)) => v
            .as_u64()
            .filter(|a| a.is_power_of_two())
            .map(|a| a as usize)
            .ok_or_else(|| LlmError::config("GGUF metadata `general.alignment`", format!("{v:?} is not a power of two"))),
    }
}

struct Counting<W> {
    inner: W,
    written: usize,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn pad<W: Write>(out: &mut Counting<W>, alignment: usize) -> std::io::Result<()> {
    let n = out.written.next_multiple_of(alignment) - out.written;
    out.write_all(&vec![0u8; n])
}

fn header<W: Write>(
    out: &mut W,
    metadata: &[(String, GgufValue)],
    plan: &[GgufTensorPlan],
    sizes: &[usize],
    alignment: usize,
) -> std::io::Result<()> {
    out.write_all(b"GGUF")?;
    out.write_all(&3u32.to_le_bytes())?;
    out.write_all(&(plan.len() as u64).to_le_bytes())?;
    out.write_all(&(metadata.len() as u64).to_le_bytes())?;
    for (key, value) in metadata {
        string(out, key)?;
        out.write_all(&type_id(value).to_le_bytes())?;
        value_bytes(out, value)?;
    }
    let mut offset = 0usize;
    for (t, &size) in plan.iter().zip(sizes) {
        string(out, &t.name)?;
        out.write_all(&(t.dims.len() as u32).to_le_bytes())?;
        for d in &t.dims {
            out.write_all(&d.to_le_bytes())?;
        }
        out.write_all(&t.ggml_type.0.to_le_bytes())?;
        out.write_all(&(offset as u64).to_le_bytes())?;
        offset = (offset + size).next_multiple_of(alignment);
    }
    Ok(())
}

fn string<W: Write>(out: &mut W, s: &str) -> std::io::Result<()> {
    out.write_all(&(s.len() as u64).to_le_bytes())?;
    out.write_all(s.as_bytes())
}

/// GGUF's metadata value type ids, as the reader decodes them.
pub(super) fn type_id(value: &GgufValue) -> u32 {
    match value {
        GgufValue::U8(_) => 0,
        GgufValue::I8(_) => 1,
        GgufValue::U16(_) => 2,
        GgufValue::I16(_) => 3,
        GgufValue::U32(_) => 4,
        GgufValue::I32(_) => 5,
        GgufValue::F32(_) => 6,
        GgufValue::Bool(_) => 7,
        GgufValue::String(_) => 8,
        GgufValue::Array(_) => 9,
        GgufValue::U64(_) => 10,
        GgufValue::I64(_) => 11,
        GgufValue::F64(_) => 12,
    }
}

fn value_bytes<W: Write>(out: &mut W, value: &GgufValue) -> std::io::Result<()> {
    match value {
        GgufValue::U8(v) => out.write_all(&[*v]),
        GgufValue::I8(v) => out.write_all(&v.to_le_bytes()),
        GgufValue::U16(v) => out.write_all(&v.to_le_bytes()),
        GgufValue::I16(v) => out.write_all(&v.to_le_bytes()),
        GgufValue::U32(v) => out.write_all(&v.to_le_bytes()),
        GgufValue::I32(v) => out.write_all(&v.to_le_bytes()),
        GgufValue::F32(v) => out.write_all(&v.to_le_bytes()),
        GgufValue::Bool(v) => out.write_all(&[u8::from(*v)]),
        GgufValue::String(s) => string(out, s),
        GgufValue::U64(v) => out.write_all(&v.to_le_bytes()),
        GgufValue::I64(v) => out.write_all(&v.to_le_bytes()),
        GgufValue::F64(v) => out.write_all(&v.to_le_bytes()),
        GgufValue::Array(items) => {
            // An empty array has no element to take a type from: llama.cpp reads any type for
            // zero items, so it is written as an array of strings.
            let item_ty = items.first().map_or(8, type_id);
            out.write_all(&item_ty.to_le_bytes())?;
            out.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|v| value_bytes(out, v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::GgufFile;

    #[test]
    fn a_written_file_reads_back_key_for_key_and_byte_for_byte() {
        let dir = std::env::temp_dir().join(format!("gguf-write-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.gguf");
        let metadata = vec![
            ("general.architecture".to_string(), GgufValue::String("llama".into())),
            ("llama.block_count".to_string(), GgufValue::U32(2)),
            ("tokenizer.ggml.scores".to_string(), GgufValue::Array(vec![GgufValue::F32(-1.5), GgufValue::F32(0.25)])),
            ("tokenizer.ggml.add_bos_token".to_string(), GgufValue::Bool(true)),
        ];
        let plan = vec![
            GgufTensorPlan::new("a.weight", &[3, 32], GgmlType::Q8_0),
            GgufTensorPlan::new("b.weight", &[5], GgmlType::F32),
        ];
        let blobs: Vec<Vec<u8>> = vec![(0..3 * 34).map(|i| i as u8).collect(), (0..20).map(|i| (i * 7) as u8).collect()];
        write_gguf(&path, &metadata, &plan, |i| Ok(blobs[i].clone())).unwrap();
        let file = GgufFile::open(&path).unwrap();
        assert_eq!(file.version, 3);
        for (k, v) in &metadata {
            assert_eq!(file.get(k), Some(v), "{k}");
        }
        for (t, blob) in plan.iter().zip(&blobs) {
            let info = &file.tensors[&t.name];
            assert_eq!((info.dims.clone(), info.ggml_type), (t.dims.clone(), t.ggml_type));
            assert_eq!(info.range.start % DEFAULT_ALIGNMENT, 0);
            assert_eq!(file.tensor_bytes(info), &blob[..]);
        }
        // A producer that returns the wrong length fails naming the tensor and leaves no file.
        let bad = dir.join("bad.gguf");
        let err = write_gguf(&bad, &metadata, &plan, |_| Ok(vec![0; 4])).unwrap_err().to_string();
        assert!(err.contains("a.weight") && !bad.exists(), "{err}");
        // A row that does not split into blocks is refused before anything is written.
        let plan = [GgufTensorPlan::new("c.weight", &[2, 40], GgmlType::Q4_0)];
        let err = write_gguf(&bad, &metadata, &plan, |_| Ok(vec![])).unwrap_err().to_string();
        assert!(err.contains("c.weight") && err.contains("40"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
