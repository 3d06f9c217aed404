//! The GGUF container: header, metadata key/values, tensor infos, aligned data section.
//!
//! Every length and offset read from the file is checked against the bytes that exist before
//! anything is allocated, so a truncated or lying file is an error, never a panic or a huge
//! allocation.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::quants::GgmlType;
use crate::error::{LlmError, Result};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<GgufValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl GgufValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v as u64),
            Self::U16(v) => Some(v as u64),
            Self::U32(v) => Some(v as u64),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v as f64),
            Self::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an array.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Where one tensor lives in the file.
#[derive(Debug, Clone)]
pub struct GgufTensorInfo {
    /// Dimensions in ggml order: `dims[0]` varies fastest (PyTorch order reversed).
    pub dims: Vec<u64>,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Absolute byte range in the file.
    pub range: std::ops::Range<usize>,
}

impl GgufTensorInfo {
    /// The shape in PyTorch order (`[rows, cols]` for a matrix).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// A memory-mapped, parsed GGUF file.
pub struct GgufFile {
    path: PathBuf,
    map: Mmap,
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata key/values (`general.architecture`, `llama.block_count`, `tokenizer.ggml.tokens`...).
    pub metadata: BTreeMap<String, GgufValue>,
    /// Tensor infos by name.
    pub tensors: BTreeMap<String, GgufTensorInfo>,
}

const MAGIC: &[u8; 4] = b"GGUF";
const MAX_DIMS: u32 = 4;

impl GgufFile {
    /// Maps and parses a GGUF v2/v3 file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| LlmError::io(path, e))?;
        // SAFETY: read-only mapping of a file we do not modify.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| LlmError::io(path, e))?;
        let (version, metadata, tensors) = Parser { path, bytes: &map, pos: 0 }.parse()?;
        Ok(Self { path: path.to_path_buf(), map, version, metadata, tensors })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// The raw bytes of a tensor (whole quantisation blocks).
    pub fn tensor_bytes(&self, info: &GgufTensorInfo) -> &[u8] {
        &self.map[info.range.clone()]
    }

    /// Tells the kernel that `bytes` (a range of this file's mapping, already copied) are not
    /// needed again soon (`MADV_DONTNEED`): their pages leave this process's resident set instead
    /// of staying there beside the copy, so a load peaks near the size of the weights, not twice
    /// it. A later read of the range faults the pages in again from the file. Bytes outside the
    /// mapping are ignored.
    pub fn release(&self, bytes: &[u8]) {
        let start = (bytes.as_ptr() as usize).wrapping_sub(self.map.as_ptr() as usize);
        if bytes.is_empty() || start >= self.map.len() || start + bytes.len() > self.map.len() {
            return;
        }
        #[cfg(unix)]
        // SAFETY: the mapping is read-only and file-backed, so dropped pages come back from the
        // file with the same bytes on the next access; nothing writes through it.
        let _ = unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, bytes.len()) };
    }
}

struct Parser<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

type Parsed = (u32, BTreeMap<String, GgufValue>, BTreeMap<String, GgufTensorInfo>);

impl<'a> Parser<'a> {
    fn err(&self, message: impl Into<String>) -> LlmError {
        LlmError::Gguf { path: self.path.to_path_buf(), offset: self.pos as u64, message: message.into() }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            self.err(format!("needs {n} more bytes but the file ends at {} (truncated?)", self.bytes.len()))
        })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// A count that claims `n` items of at least `min_size` bytes each must fit in the file.
    fn count(&mut self, what: &str, min_size: usize) -> Result<usize> {
        let n = self.u64()?;
        let fits = usize::try_from(n).ok().filter(|&n| n.saturating_mul(min_size) <= self.remaining());
        fits.ok_or_else(|| {
            self.err(format!("{what} claims {n} entries but only {} bytes remain", self.remaining()))
        })
    }

    fn string(&mut self) -> Result<String> {
        let n = self.count("string", 1)?;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.err("string is not valid UTF-8"))
    }

    fn value(&mut self, ty: u32, depth: usize) -> Result<GgufValue> {
        Ok(match ty {
            0 => GgufValue::U8(self.array::<1>()?[0]),
            1 => GgufValue::I8(self.array::<1>()?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(self.array()?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array()?)),
            4 => GgufValue::U32(self.u32()?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array()?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array()?)),
            7 => match self.array::<1>()?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => return Err(self.err(format!("bool value {b} is neither 0 nor 1"))),
            },
            8 => GgufValue::String(self.string()?),
            9 => {
                if depth > 2 {
                    return Err(self.err("arrays nested more than twice"));
                }
                let item_ty = self.u32()?;
                let n = self.count("array", min_value_size(item_ty))?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(item_ty, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64()?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array()?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array()?)),
            other => return Err(self.err(format!("unknown metadata value type {other}"))),
        })
    }

    fn parse(mut self) -> Result<Parsed> {
        if self.take(4)? != MAGIC {
            self.pos = 0;
            return Err(self.err("not a GGUF file (magic is not `GGUF`)"));
        }
        let version = self.u32()?;
        if !(2..=3).contains(&version) {
            return Err(self.err(format!("GGUF version {version} is not supported; supported: 2, 3")));
        }
        // A tensor info is at least 8 (name len) + 4 + 8 + 4 + 8 bytes; a key/value at least 8 + 4 + 1.
        let n_tensors = self.count("tensor count", 32)?;
        let n_kv = self.count("metadata count", 13)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = self.string()?;
            let ty = self.u32()?;
            let value = self.value(ty, 0)?;
            metadata.insert(key, value);
        }
        let mut infos = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            infos.push(self.tensor_info()?);
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => v
                .as_u64()
                .filter(|a| a.is_power_of_two())
                .ok_or_else(|| self.err(format!("general.alignment {v:?} is not a power of two")))?
                as usize,
        };
        let data_start = self.pos.div_ceil(alignment) * alignment;
        let mut tensors = BTreeMap::new();
        for (name, dims, ty, offset) in infos {
            let info = self.locate(&name, dims, ty, offset, data_start)?;
            if tensors.insert(name.clone(), info).is_some() {
                return Err(self.err(format!("tensor `{name}` is listed twice")));
            }
        }
        Ok((version, metadata, tensors))
    }

    fn tensor_info(&mut self) -> Result<(String, Vec<u64>, GgmlType, u64)> {
        let name = self.string()?;
        let n_dims = self.u32()?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(self.err(format!("tensor `{name}` has {n_dims} dimensions (1..={MAX_DIMS} allowed)")));
        }
        let dims = (0..n_dims).map(|_| self.u64()).collect::<Result<Vec<_>>>()?;
        let ty = GgmlType(self.u32()?);
        let offset = self.u64()?;
        Ok((name, dims, ty, offset))
    }

    fn locate(&self, name: &str, dims: Vec<u64>, ty: GgmlType, offset: u64, data_start: usize) -> Result<GgufTensorInfo> {
        let (block, block_bytes) = ty.block_layout().ok_or_else(|| LlmError::UnsupportedDtype {
            path: self.path.to_path_buf(),
            tensor: name.to_string(),
            dtype: format!("GGML {} (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1)", ty.name()),
        })?;
        let elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let elements = elements.ok_or_else(|| self.err(format!("tensor `{name}` dims {dims:?} overflow")))?;
        if !dims[0].is_multiple_of(block as u64) {
            return Err(self.err(format!("tensor `{name}`: row length {} is not a multiple of {block}", dims[0])));
        }
        let bytes = (elements / block as u64).checked_mul(block_bytes as u64);
        let start = (data_start as u64).checked_add(offset);
        let end = match (start, bytes) {
            (Some(s), Some(b)) => s.checked_add(b),
            _ => None,
        };
        match (start, end) {
            (Some(s), Some(e)) if e <= self.bytes.len() as u64 => {
                Ok(GgufTensorInfo { dims, ggml_type: ty, range: s as usize..e as usize })
            }
            _ => Err(LlmError::Gguf {
                path: self.path.to_path_buf(),
                offset: (data_start as u64).saturating_add(offset),
                message: format!(
                    "tensor `{name}` ({} {dims:?}) claims bytes past the end of the file ({} bytes; truncated?)",
                    ty.name(),
                    self.bytes.len()
                ),
            }),
        }
    }
}

/// Smallest encoding of one value of a type, to bound array counts before allocating.
fn min_value_size(ty: u32) -> usize {
    match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10 | 11 | 12 => 8,
        9 => 12,
        _ => 1,
    }
}
