//! GGML block formats run as stored: a GGUF tensor's blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and
//! the K-quants Q2_K..Q6_K) are kept byte for byte, and `x · Wᵀ` is computed from them by
//! quantizing each input row once to 8-bit blocks ([`act`]) and taking integer dot products
//! per block ([`dot`]), as llama.cpp's CPU backend does. Output rows are split across threads.

pub mod act;
#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod dot;

use rayon::prelude::*;

use super::kernels::multiversion;

pub use act::ActRow;
pub use dot::block_elems;

use crate::error::{LlmError, Result};
use crate::weights::gguf::quants::{self, GgmlType};

/// A weight `[d_out, d_in]` held in a GGML block format, rows of whole blocks.
#[derive(Clone)]
pub struct GgmlWeight {
    /// Output features (rows).
    pub d_out: usize,
    /// Input features (a multiple of the block size).
    pub d_in: usize,
    /// The block type.
    pub ty: GgmlType,
    data: Vec<u8>,
    row_bytes: usize,
    force_scalar: bool,
}

/// `x · Wᵢᵀ` for several weights of the same input width (a layer's Q, K and V projections, or
/// its gate and up): the input rows are quantized once and every weight's output rows share one
/// parallel region, which saves a thread-pool wake-up per weight in a decode step. Returns
/// `[rows, d_out_i]` per weight, each exactly what [`GgmlWeight::matmul`] returns.
///
/// # Panics
/// If the weights differ in `d_in` or `x.len() != rows * d_in` (callers check shapes).
pub fn matmul_group(weights: &[&GgmlWeight], x: &[f32], rows: usize) -> Vec<Vec<f32>> {
    let Some(first) = weights.first() else { return vec![] };
    let d_in = first.d_in;
    assert!(weights.iter().all(|w| w.d_in == d_in) && x.len() == rows * d_in, "x and every weight must share d_in");
    if rows == 0 {
        return weights.iter().map(|_| vec![]).collect();
    }
    let acts: Vec<ActRow> = x.chunks_exact(d_in).map(ActRow::from_row).collect();
    // Tasks: (weight, first output row, row count), a few per thread over all the weights.
    let total_rows: usize = weights.iter().map(|w| w.d_out).sum();
    let per_task = rows_per_task(total_rows);
    let tasks: Vec<(usize, usize, usize)> = weights
        .iter()
        .enumerate()
        .flat_map(|(i, w)| (0..w.d_out).step_by(per_task).map(move |r| (i, r, per_task.min(w.d_out - r))))
        .collect();
    let run = |&(i, r, n): &(usize, usize, usize)| {
        let w = weights[i];
        let mut out = vec![0f32; n * rows];
        match simd_kernel(w.ty, w.force_scalar) {
            Some(k) => rows_dot_simd(k, simd_kernel4(w.ty, w.force_scalar), &w.data, w.row_bytes, r, &acts, &mut out),
            None => rows_dot(w.ty, &w.data, w.row_bytes, r, &acts, &mut out),
        }
        out
    };
    let bytes: usize = weights.iter().map(|w| w.data.len()).sum();
    let parts: Vec<Vec<f32>> = if bytes * rows < SERIAL_BYTES { tasks.iter().map(run).collect() } else { tasks.par_iter().map(run).collect() };
    let mut outs: Vec<Vec<f32>> = weights.iter().map(|w| Vec::with_capacity(w.d_out * rows)).collect();
    for (&(i, _, _), part) in tasks.iter().zip(parts) {
        outs[i].extend(part);
    }
    // `[d_out, rows]` -> `[rows, d_out]` as `matmul` returns it.
    outs.into_iter().zip(weights).map(|(o, w)| transpose_rows(o, w.d_out, rows)).collect()
}

/// `[d_out, rows]` -> `[rows, d_out]`.
fn transpose_rows(out: Vec<f32>, d_out: usize, rows: usize) -> Vec<f32> {
    if rows == 1 {
        return out;
    }
    let mut t = vec![0f32; out.len()];
    for (o, col) in out.chunks_exact(rows).enumerate() {
        for (r, &v) in col.iter().enumerate() {
            t[r * d_out + o] = v;
        }
    }
    t
}

/// Below this much work (weight bytes times input rows) a matmul runs on the calling thread:
/// waking the pool costs more than the other threads save (SmolLM2's K and V projections,
/// 69 KB each, run faster alone).
const SERIAL_BYTES: usize = 96 * 1024;

/// Output rows one thread takes at a time.
const ROWS_PER_TASK: usize = 16;

impl GgmlWeight {
    /// Wraps the blocks of a `[d_out, d_in]` tensor of type `ty` (`data`: `d_out` rows of
    /// `d_in / block` blocks). `tensor` names it in errors.
    pub fn new(tensor: &str, ty: GgmlType, d_out: usize, d_in: usize, data: Vec<u8>) -> Result<Self> {
        let bad = |message: String| Err(LlmError::Quant { tensor: tensor.into(), message });
        let (Some(block), Some((_, block_bytes))) = (block_elems(ty), ty.block_layout()) else {
            return bad(format!("{} is not a quantized block type we run", ty.name()));
        };
        if !d_in.is_multiple_of(block) {
            return bad(format!("row length {d_in} is not a multiple of {}'s block of {block}", ty.name()));
        }
        let row_bytes = d_in / block * block_bytes;
        if d_out.checked_mul(row_bytes) != Some(data.len()) {
            return bad(format!("{} bytes do not hold [{d_out}, {d_in}] of {}", data.len(), ty.name()));
        }
        Ok(Self { d_out, d_in, ty, data, row_bytes, force_scalar: false })
    }

    /// The same weight with its rows reordered: row `r` of the result is row `source(r)`.
    pub fn with_rows(self, source: impl Fn(usize) -> usize) -> Self {
        let mut data = vec![0u8; self.data.len()];
        for (r, dst) in data.chunks_exact_mut(self.row_bytes).enumerate() {
            let s = source(r);
            dst.copy_from_slice(&self.data[s * self.row_bytes..(s + 1) * self.row_bytes]);
        }
        Self { data, ..self }
    }

    /// The stored blocks of row `r`.
    pub fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// The exact float weight, `[d_out, d_in]` row-major (gguf-py's dequantization).
    pub fn dequantize(&self) -> Vec<f32> {
        quants::dequantize(self.ty, &self.data)
    }

    /// The exact float values of row `r`: `[d_in]`.
    pub fn dequantize_row(&self, r: usize) -> Vec<f32> {
        quants::dequantize(self.ty, self.row(r))
    }

    /// Bytes of the blocks.
    pub fn storage_bytes(&self) -> usize {
        self.data.len()
    }

    /// `x · Wᵀ` through the integer dot products. x: `[rows, d_in]` -> `[rows, d_out]`.
    ///
    /// # Panics
    /// If `x.len() != rows * d_in` (a caller's bug; [`crate::quant::QuantLinear`] checks shapes).
    pub fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        assert_eq!(x.len(), rows * self.d_in, "x must be [rows, d_in]");
        if rows == 0 || self.d_out == 0 {
            return vec![0f32; rows * self.d_out];
        }
        let acts: Vec<ActRow> = x.chunks_exact(self.d_in).map(ActRow::from_row).collect();
        transpose_rows(self.matmul_quantized(&acts), self.d_out, rows)
    }

    /// `[d_out, rows]`: every output row against every quantized input row.
    fn matmul_quantized(&self, acts: &[ActRow]) -> Vec<f32> {
        let rows = acts.len();
        let mut out = vec![0f32; self.d_out * rows];
        let kernel = simd_kernel(self.ty, self.force_scalar);
        let kernel4 = simd_kernel4(self.ty, self.force_scalar);
        let run = |first: usize, chunk: &mut [f32]| match kernel {
            Some(k) => rows_dot_simd(k, kernel4, &self.data, self.row_bytes, first, acts, chunk),
            None => rows_dot(self.ty, &self.data, self.row_bytes, first, acts, chunk),
        };
        if self.data.len() * rows < SERIAL_BYTES {
            run(0, &mut out);
            return out;
        }
        let per_task = rows_per_task(self.d_out);
        out.par_chunks_mut(per_task * rows).enumerate().for_each(|(task, chunk)| run(task * per_task, chunk));
        out
    }

    /// `x · Wᵀ` with the input kept in f32 (each block's codes widened in registers, no 8-bit
    /// rounding of `x`), for Q8_0 weights; `None` for the other types. The tied LM head runs
    /// this way: logits are where an input rounded to 8 bits flips near-tied greedy picks (the
    /// README's answer among them), and a Q8_0 table costs the same bytes either way.
    /// x: `[rows, d_in]` -> `[rows, d_out]`.
    ///
    /// # Panics
    /// If `x.len() != rows * d_in`.
    pub fn matmul_f32_input(&self, x: &[f32], rows: usize) -> Option<Vec<f32>> {
        if self.ty != GgmlType::Q8_0 {
            return None;
        }
        assert_eq!(x.len(), rows * self.d_in, "x must be [rows, d_in]");
        if rows == 0 || self.d_out == 0 {
            return Some(vec![0f32; rows * self.d_out]);
        }
        let simd = simd_kernel(self.ty, self.force_scalar).is_some();
        let per_task = rows_per_task(self.d_out);
        let mut cols = vec![0f32; rows * self.d_out];
        cols.par_chunks_mut(per_task * rows).enumerate().for_each(|(task, chunk)| {
            for (i, col) in chunk.chunks_exact_mut(rows).enumerate() {
                let w = self.row(task * per_task + i);
                let done = q8_0_f32_dot4(simd, w, x, self.d_in, col);
                for (y, xr) in col[done..].iter_mut().zip(x.chunks_exact(self.d_in).skip(done)) {
                    *y = q8_0_f32_dot(simd, w, xr);
                }
            }
        });
        Some(transpose_rows(cols, self.d_out, rows))
    }

    /// The same weight computed by the portable kernels only (the reference the SIMD kernels
    /// are tested against).
    pub fn portable(mut self) -> Self {
        self.force_scalar = true;
        self
    }
}

/// Output rows per parallel task: a few tasks per thread (rayon's fork-join costs microseconds,
/// and a decode step runs hundreds of matmuls), never fewer than [`ROWS_PER_TASK`].
fn rows_per_task(d_out: usize) -> usize {
    let tasks = 4 * rayon::current_num_threads().max(1);
    d_out.div_ceil(tasks).max(ROWS_PER_TASK)
}

/// One stored row · one activation row, compiled for an instruction set.
type RowDot = unsafe fn(&[u8], &ActRow) -> f32;

/// The SIMD row kernel for `ty` this CPU runs, if any.
#[allow(unused_variables)]
fn simd_kernel(ty: GgmlType, force_scalar: bool) -> Option<RowDot> {
    #[cfg(target_arch = "x86_64")]
    if !force_scalar && avx2::available() {
        return Some(match ty {
            GgmlType::Q4_0 => avx2::q4_0,
            GgmlType::Q4_1 => avx2::q4_1,
            GgmlType::Q5_0 => avx2::q5_0,
            GgmlType::Q5_1 => avx2::q5_1,
            GgmlType::Q8_0 => avx2::q8_0,
            GgmlType::Q2_K => avx2::q2_k,
            GgmlType::Q3_K => avx2::q3_k,
            GgmlType::Q4_K => avx2::q4_k,
            GgmlType::Q5_K => avx2::q5_k,
            GgmlType::Q6_K => avx2::q6_k,
            _ => return None,
        });
    }
    None
}

/// One stored row · four activation rows (each block unpacked once), for batched decoding.
type RowDot4 = unsafe fn(&[u8], [&ActRow; 4]) -> [f32; 4];

/// The four-row SIMD kernel for `ty`, where one exists (its results equal the one-row
/// kernel's bit for bit).
#[allow(unused_variables)]
fn simd_kernel4(ty: GgmlType, force_scalar: bool) -> Option<RowDot4> {
    #[cfg(target_arch = "x86_64")]
    if !force_scalar && avx2::available() {
        return match ty {
            GgmlType::Q4_0 => Some(avx2::q4_0_x4),
            GgmlType::Q4_1 => Some(avx2::q4_1_x4),
            _ => None,
        };
    }
    None
}

/// [`rows_dot`] through a SIMD row kernel, four activation rows at a time where `kernel4` is
/// given.
fn rows_dot_simd(kernel: RowDot, kernel4: Option<RowDot4>, data: &[u8], row_bytes: usize, first: usize, acts: &[ActRow], out: &mut [f32]) {
    let rows = acts.len();
    for (i, col) in out.chunks_exact_mut(rows).enumerate() {
        let w = &data[(first + i) * row_bytes..(first + i + 1) * row_bytes];
        let mut done = 0;
        if let Some(k4) = kernel4 {
            for (ys, a) in col.chunks_exact_mut(4).zip(acts.chunks_exact(4)) {
                // SAFETY: as below; `simd_kernel4` checked the same instruction sets.
                let y = unsafe { k4(w, [&a[0], &a[1], &a[2], &a[3]]) };
                ys.copy_from_slice(&y);
                done += 4;
            }
        }
        for (y, a) in col[done..].iter_mut().zip(&acts[done..]) {
            // SAFETY: `simd_kernel` returned this kernel only after checking at run time that
            // the CPU has its instruction set; `w` holds whole blocks of the kernel's type and
            // `a` was quantized from a row of `d_in` values, so every load is in bounds.
            *y = unsafe { kernel(w, a) };
        }
    }
}

multiversion! {
    fn rows_dot(ty: GgmlType, data: &[u8], row_bytes: usize, first: usize, acts: &[ActRow], out: &mut [f32]) {
        let rows = acts.len();
        for (i, col) in out.chunks_exact_mut(rows).enumerate() {
            let w = &data[(first + i) * row_bytes..(first + i + 1) * row_bytes];
            for (y, a) in col.iter_mut().zip(acts) {
                *y = dot::row_dot(ty, w, a);
            }
        }
    }
}

/// A Q8_0 row · the float rows of `x` four at a time through AVX2 when `simd`, into `col`;
/// returns how many rows it did (the rest go through [`q8_0_f32_dot`], with equal results).
fn q8_0_f32_dot4(simd: bool, w: &[u8], x: &[f32], d_in: usize, col: &mut [f32]) -> usize {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if simd {
        for (ys, xs) in col.chunks_exact_mut(4).zip(x.chunks_exact(4 * d_in)) {
            let rows: [&[f32]; 4] = std::array::from_fn(|r| &xs[r * d_in..(r + 1) * d_in]);
            // SAFETY: as in `q8_0_f32_dot`; each of the four rows has `d_in` values.
            ys.copy_from_slice(&unsafe { avx2::q8_0_f32_x4(w, rows) });
            done += 4;
        }
    }
    let _ = (simd, w, x, d_in, &col);
    done
}

/// A Q8_0 row · a float row, through AVX2 when `simd` (checked by [`simd_kernel`]).
fn q8_0_f32_dot(simd: bool, w: &[u8], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is true only where `simd_kernel` found AVX2, FMA and F16C at run time;
        // `w` is a whole Q8_0 row of `x.len()` values.
        return unsafe { avx2::q8_0_f32(w, x) };
    }
    let _ = simd;
    let mut acc = 0f32;
    for (blk, xb) in w.chunks_exact(34).zip(x.chunks_exact(32)) {
        let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
        let s: f32 = blk[2..].iter().zip(xb).map(|(&q, &v)| f32::from(q as i8) * v).sum();
        acc += d * s;
    }
    acc
}
