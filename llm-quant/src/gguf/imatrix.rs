//! Importance matrices as llama.cpp computes and stores them (`llama-imatrix`): for every
//! linear weight, the sum over calibration tokens of each input column's squared activation
//! (`in_sum2`) and the number of tokens (`counts`), one row per expert for stacked experts.
//! Computed here through the model's own forward pass on calibration text; read and written
//! in llama.cpp's GGUF imatrix format (`general.type = imatrix`, `<weight>.in_sum2`,
//! `<weight>.counts`, `imatrix.datasets`, `imatrix.chunk_count`, `imatrix.chunk_size`), and
//! read in its legacy `.dat` format. The quantizers see `in_sum2 / counts`, as llama-quantize
//! hands them.
//!
//! As llama-imatrix without `--process-output`, the output head is not collected (and the
//! token embedding is a lookup, not a matmul).

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use llm_core::model::arch::{self, LinearId, LinearInput};
use llm_core::model::CausalLm;
use llm_core::weights::gguf::quants::GgmlType;
use llm_core::weights::gguf::{write_gguf, GgufTensorPlan};
use llm_core::weights::{GgufFile, GgufValue};

use crate::calib::Calibration;
use crate::error::{QuantError, Result};

/// One weight's statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct ImatrixEntry {
    /// `[n_mat, d_in]` row-major: per matrix (expert), per input column, the sum of squares.
    pub in_sum2: Vec<f32>,
    /// `[n_mat]`: tokens each matrix saw.
    pub counts: Vec<f32>,
}

impl ImatrixEntry {
    /// Input columns.
    pub fn cols(&self) -> usize {
        self.in_sum2.len() / self.counts.len().max(1)
    }

    /// The quantizer weights, `in_sum2 / counts` per matrix (1 where a matrix saw no token).
    pub fn weights(&self) -> Vec<f32> {
        let cols = self.cols();
        self.in_sum2.iter().enumerate().map(|(i, &s)| {
            let c = self.counts[i / cols.max(1)];
            if c > 0.0 { s / c } else { 1.0 }
        }).collect()
    }
}

/// An importance matrix, by GGUF weight name (`blk.0.attn_q.weight`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Imatrix {
    /// Entries by GGUF tensor name.
    pub entries: BTreeMap<String, ImatrixEntry>,
    /// What it was computed on (file names).
    pub datasets: Vec<String>,
    /// Calibration chunks.
    pub chunk_count: u32,
    /// Tokens per chunk.
    pub chunk_size: u32,
}

impl Imatrix {
    /// Runs `calibration` through `model` (unquantized) and sums each linear layer's squared
    /// input columns. Mixture-of-experts layers are refused (each expert sees its own tokens).
    pub fn compute<B: Backend>(model: &CausalLm<B>, calibration: &Calibration, dataset: &str) -> Result<Self> {
        if model.config.moe.is_some() {
            return Err(QuantError::config("model", "an importance matrix of mixture-of-experts layers is not supported yet"));
        }
        let device = model.device();
        let mut sums: BTreeMap<(usize, usize), (Vec<f64>, f64)> = BTreeMap::new();
        for seq in &calibration.sequences {
            let ids: Vec<i64> = seq.iter().map(|&t| i64::from(t)).collect();
            let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, seq.len()]), &device);
            let mut h = model.embed(ids)?;
            for (i, layer) in model.layers.iter().enumerate() {
                let ctx = model.layer_context(1, seq.len());
                let mut observe = |which: LinearInput, t: Tensor<B, 3>| {
                    let [b, s, width] = t.dims();
                    let t = t.reshape([b * s, width]).cast(burn::tensor::DType::F32);
                    let sq = llm_core::io::host_f32(t.clone().mul(t).sum_dim(0)).1;
                    let k = LinearInput::ALL.iter().position(|&w| w == which).unwrap_or(0);
                    let entry = sums.entry((i, k)).or_insert_with(|| (vec![0.0; width], 0.0));
                    entry.0.iter_mut().zip(sq).for_each(|(a, v)| *a += f64::from(v));
                    entry.1 += (b * s) as f64;
                };
                h = layer.forward_observed(h, &ctx.rope, ctx.mask(layer), &mut observe);
            }
        }
        let mut entries = BTreeMap::new();
        for ((layer, k), (sum, count)) in sums {
            if sum.iter().any(|v| !v.is_finite()) {
                return Err(QuantError::NonFinite { what: format!("layer {layer} activations (importance matrix)") });
            }
            for &slot in LinearInput::ALL[k].consumers() {
                let name = arch::gguf_name(LinearId::Layer { layer, slot }, "weight");
                let entry = ImatrixEntry { in_sum2: sum.iter().map(|&v| v as f32).collect(), counts: vec![count as f32] };
                entries.insert(name, entry);
            }
        }
        let chunk_size = calibration.sequences.first().map_or(0, Vec::len) as u32;
        Ok(Self { entries, datasets: vec![dataset.to_string()], chunk_count: calibration.sequences.len() as u32, chunk_size })
    }

    /// Writes llama.cpp's GGUF imatrix file (tensors sorted by name, as llama-imatrix does).
    pub fn save(&self, path: &Path) -> Result<()> {
        let datasets = self.datasets.iter().map(|d| GgufValue::String(d.clone())).collect();
        let metadata = vec![
            ("general.type".to_string(), GgufValue::String("imatrix".into())),
            ("imatrix.datasets".to_string(), GgufValue::Array(datasets)),
            ("imatrix.chunk_count".to_string(), GgufValue::U32(self.chunk_count)),
            ("imatrix.chunk_size".to_string(), GgufValue::U32(self.chunk_size)),
        ];
        let mut plan = vec![];
        let mut data: Vec<&[f32]> = vec![];
        for (name, e) in &self.entries {
            let n_mat = e.counts.len();
            plan.push(GgufTensorPlan::new(format!("{name}.counts"), &[n_mat, 1], GgmlType::F32));
            data.push(&e.counts);
            plan.push(GgufTensorPlan::new(format!("{name}.in_sum2"), &[n_mat, e.cols()], GgmlType::F32));
            data.push(&e.in_sum2);
        }
        write_gguf(path, &metadata, &plan, |i| Ok(data[i].iter().flat_map(|v| v.to_le_bytes()).collect()))?;
        Ok(())
    }

    /// Reads a GGUF imatrix file, or llama.cpp's legacy `.dat` format.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| QuantError::Io { path: path.to_path_buf(), source: e })?;
        if bytes.starts_with(b"GGUF") {
            return Self::load_gguf(path);
        }
        legacy(path, &bytes)
    }

    fn load_gguf(path: &Path) -> Result<Self> {
        let file = GgufFile::open(path)?;
        let err = |m: String| QuantError::Format { path: path.to_path_buf(), message: m };
        if file.get("general.type").and_then(GgufValue::as_str) != Some("imatrix") {
            return Err(err("general.type is not `imatrix`".into()));
        }
        let floats = |name: &str| -> Result<Vec<f32>> {
            let info = file.tensors.get(name).ok_or_else(|| err(format!("tensor `{name}` is missing")))?;
            if info.ggml_type != GgmlType::F32 {
                return Err(err(format!("tensor `{name}` is {}, not F32", info.ggml_type.name())));
            }
            Ok(file.tensor_bytes(info).chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        };
        let mut entries = BTreeMap::new();
        for name in file.tensors.keys().filter_map(|n| n.strip_suffix(".in_sum2")) {
            let (in_sum2, counts) = (floats(&format!("{name}.in_sum2"))?, floats(&format!("{name}.counts"))?);
            if counts.is_empty() || in_sum2.len() % counts.len() != 0 {
                return Err(err(format!("`{name}`: {} sums for {} matrices", in_sum2.len(), counts.len())));
            }
            entries.insert(name.to_string(), ImatrixEntry { in_sum2, counts });
        }
        let u = |k: &str| file.get(k).and_then(GgufValue::as_u64).unwrap_or(0) as u32;
        let datasets = file
            .get("imatrix.datasets")
            .and_then(GgufValue::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        Ok(Self { entries, datasets, chunk_count: u("imatrix.chunk_count"), chunk_size: u("imatrix.chunk_size") })
    }

    /// The quantizer weights of GGUF tensor `name` with rows of `cols` (for each of `n_mat`
    /// stacked matrices), or `None` when the matrix has no entry for it. An entry of another
    /// width is an error naming the tensor: the matrix belongs to another model.
    pub fn weights_for(&self, name: &str, cols: usize, n_mat: usize) -> Result<Option<Vec<f32>>> {
        let Some(e) = self.entries.get(name) else { return Ok(None) };
        if e.cols() != cols || e.counts.len() != n_mat {
            return Err(QuantError::Shape {
                what: format!("importance matrix entry for `{name}`"),
                expected: format!("{n_mat} x {cols} (the tensor's matrices x columns)"),
                got: format!("{} x {} (an imatrix for another model?)", e.counts.len(), e.cols()),
            });
        }
        Ok(Some(e.weights()))
    }
}

/// llama.cpp's legacy `.dat`: `i32 n`, then per entry `i32 len, name, i32 ncall, i32 nval,
/// f32[nval]` (values already divided by the token count, times `ncall`), then optionally
/// `i32 last_call, i32 len, dataset`.
fn legacy(path: &Path, bytes: &[u8]) -> Result<Imatrix> {
    let err = |m: &str| QuantError::Format { path: path.to_path_buf(), message: format!("legacy imatrix: {m}") };
    let mut r = Reader { bytes, pos: 0 };
    let n = r.i32().ok_or_else(|| err("truncated"))?;
    if n < 1 || n as usize > bytes.len() / 12 {
        return Err(err(&format!("claims {n} entries")));
    }
    let mut entries = BTreeMap::new();
    for _ in 0..n {
        let len = usize::try_from(r.i32().ok_or_else(|| err("truncated"))?).map_err(|_| err("negative name length"))?;
        let name = r.take(len).ok_or_else(|| err("truncated name"))?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| err("name is not UTF-8"))?;
        let ncall = r.i32().ok_or_else(|| err("truncated"))?;
        let nval = usize::try_from(r.i32().ok_or_else(|| err("truncated"))?).map_err(|_| err("negative value count"))?;
        let raw = nval.checked_mul(4).and_then(|n| r.take(n)).ok_or_else(|| err(&format!("values of `{name}` are truncated")))?;
        let values: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        // Stored as mean·ncall: as sums over `ncall` "tokens" they divide back to the mean;
        // with ncall 0 llama-quantize takes the values as they are.
        let count = if ncall > 0 { ncall as f32 } else { 1.0 };
        entries.insert(name, ImatrixEntry { in_sum2: values, counts: vec![count] });
    }
    Ok(Imatrix { entries, datasets: vec![], chunk_count: 0, chunk_size: 0 })
}

/// A cursor over the legacy file that never reads past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len())?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Some(out)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}
