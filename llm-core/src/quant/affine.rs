//! Integer codes in groups of input columns with a scale and zero point per (row, group):
//! `w[o, c] = scale[o, g(c)] · (q[o, c] − zero[o, g(c)])`. GPTQ/RTN at 2, 3, 4 or 8 bits,
//! AWQ at 4, HQQ at 1 to 8 (its zero points are not integers), and int8 absmax/zero-point
//! (stored as 8-bit codes offset by 128) all live here.

use rayon::prelude::*;

use super::kernels::{affine_dot_applies, dequant_span, pack_codes, row_bytes, unpack_code};
use crate::error::{LlmError, Result};

/// A group-affine quantized weight `[d_out, d_in]`.
///
/// Codes are stored per output row, bit-packed, with the columns of each group contiguous: with
/// act-order (`g_idx` not sorted) the columns are stored in group order and the input is
/// gathered into that order once per call, so every group is a contiguous dot product.
#[derive(Clone)]
pub struct AffineWeight {
    /// Output features.
    pub d_out: usize,
    /// Input features.
    pub d_in: usize,
    /// Bits per code: 1 to 8.
    pub bits: u32,
    n_groups: usize,
    /// `[d_in]` group of each input column (GPTQ's `g_idx`).
    g_idx: Vec<u32>,
    /// `[d_out, n_groups]` dequantization step.
    scales: Vec<f32>,
    /// `[d_out, n_groups]` zero point in code units.
    zeros: Vec<f32>,
    /// Stored position -> input column; `None` when columns are stored in order.
    order: Option<Vec<u32>>,
    /// `n_groups + 1` offsets of each group's stored positions.
    bounds: Vec<usize>,
    /// `[d_out, row_bytes]` packed codes in stored order.
    packed: Vec<u8>,
    row_bytes: usize,
}

impl AffineWeight {
    /// Builds the weight from unpacked parts.
    ///
    /// codes: `[d_out, d_in]` (original column order, values below `2^bits`),
    /// scales / zeros: `[d_out, n_groups]`, g_idx: `[d_in]` with values below `n_groups`.
    pub fn new(
        d_out: usize,
        d_in: usize,
        bits: u32,
        codes: &[u8],
        scales: Vec<f32>,
        zeros: Vec<f32>,
        g_idx: Vec<u32>,
    ) -> Result<Self> {
        let bad = |message: String| Err(LlmError::Quant { tensor: "affine weight".into(), message });
        if !(1..=8).contains(&bits) {
            return bad(format!("bits = {bits}; supported: 1 to 8"));
        }
        if codes.len() != d_out * d_in || g_idx.len() != d_in {
            return bad(format!("codes {} / g_idx {} do not fit [{d_out}, {d_in}]", codes.len(), g_idx.len()));
        }
        let n_groups = g_idx.iter().max().map_or(0, |&g| g as usize + 1);
        if scales.len() != d_out * n_groups || zeros.len() != d_out * n_groups {
            return bad(format!("scales/zeros must be [{d_out}, {n_groups}], got {} / {}", scales.len(), zeros.len()));
        }
        if let Some(&c) = codes.iter().find(|&&c| u32::from(c) >> bits != 0) {
            return bad(format!("code {c} does not fit in {bits} bits"));
        }
        let mut columns: Vec<u32> = (0..d_in as u32).collect();
        columns.sort_by_key(|&c| g_idx[c as usize]); // stable: keeps column order inside a group
        let mut bounds = vec![0; n_groups + 1];
        for &g in &g_idx {
            bounds[g as usize + 1] += 1;
        }
        for g in 0..n_groups {
            bounds[g + 1] += bounds[g];
        }
        let in_order = columns.iter().enumerate().all(|(p, &c)| p == c as usize);
        let row_bytes = row_bytes(bits, d_in);
        let mut packed = vec![0u8; d_out * row_bytes];
        let mut row = vec![0u8; d_in];
        for o in 0..d_out {
            for (p, &c) in columns.iter().enumerate() {
                row[p] = codes[o * d_in + c as usize];
            }
            pack_codes(bits, &row, &mut packed[o * row_bytes..(o + 1) * row_bytes]);
        }
        let order = (!in_order).then_some(columns);
        Ok(Self { d_out, d_in, bits, n_groups, g_idx, scales, zeros, order, bounds, packed, row_bytes })
    }

    /// Number of groups.
    pub fn n_groups(&self) -> usize {
        self.n_groups
    }

    /// `[d_in]` group of each input column.
    pub fn g_idx(&self) -> &[u32] {
        &self.g_idx
    }

    /// The group width when groups are runs of consecutive columns (`g_idx[c] = c / width`,
    /// the last run possibly shorter), as layouts without a `g_idx` store them; `None` with
    /// act-order or uneven groups.
    pub fn consecutive_group_width(&self) -> Option<usize> {
        let width = self.g_idx.iter().take_while(|&&g| g == 0).count();
        (width > 0 && self.g_idx.iter().enumerate().all(|(c, &g)| g as usize == c / width)).then_some(width)
    }

    /// `[d_out, n_groups]` dequantization steps.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// `[d_out, n_groups]` zero points in code units.
    pub fn zeros(&self) -> &[f32] {
        &self.zeros
    }

    /// `[d_out, d_in]` codes in original column order.
    pub fn codes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.d_out * self.d_in];
        for o in 0..self.d_out {
            let row = &self.packed[o * self.row_bytes..(o + 1) * self.row_bytes];
            for p in 0..self.d_in {
                out[o * self.d_in + self.column(p)] = unpack_code(self.bits, row, p);
            }
        }
        out
    }

    fn column(&self, position: usize) -> usize {
        self.order.as_ref().map_or(position, |o| o[position] as usize)
    }

    /// `[d_out, d_in]` exact float weight.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.d_out * self.d_in];
        out.par_chunks_mut(self.d_in).enumerate().for_each(|(o, dst)| match &self.order {
            None => self.dequantize_row(o, dst),
            Some(order) => {
                let mut stored = vec![0f32; self.d_in];
                self.dequantize_row(o, &mut stored);
                for (p, &c) in order.iter().enumerate() {
                    dst[c as usize] = stored[p];
                }
            }
        });
        out
    }

    /// Row `o` of the weight in stored column order. dst: `[d_in]`.
    fn dequantize_row(&self, o: usize, dst: &mut [f32]) {
        let row = &self.packed[o * self.row_bytes..(o + 1) * self.row_bytes];
        let (scales, zeros) = (&self.scales[o * self.n_groups..], &self.zeros[o * self.n_groups..]);
        for g in 0..self.n_groups {
            dequant_span(self.bits, row, self.bounds[g], self.bounds[g + 1], scales[g], zeros[g], dst);
        }
    }

    /// x: `[rows, d_in]` -> `[rows, d_out]`, from the codes. With AVX-512, 1- to 4-bit codes
    /// become their weights in registers through each group's 16-value table (`lut`);
    /// 4- and 8-bit rows otherwise take the codes in registers with the scale applied per
    /// group, and anything else dequantizes each weight row once into an L1-sized buffer
    /// (bit-exactly as [`Self::dequantize`]) and dots it with every input row.
    pub fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        // [rows, d_in] in stored order.
        let gathered;
        let xs: &[f32] = match &self.order {
            None => x,
            Some(order) => {
                gathered = (0..rows)
                    .flat_map(|r| order.iter().map(move |&c| x[r * self.d_in + c as usize]))
                    .collect::<Vec<f32>>();
                &gathered
            }
        };
        let row = |o: usize| &self.packed[o * self.row_bytes..(o + 1) * self.row_bytes];
        // Output row `o`'s scales and zeros.
        let stats = |o: usize| {
            let groups = o * self.n_groups..(o + 1) * self.n_groups;
            (&self.scales[groups.clone()], &self.zeros[groups])
        };
        #[cfg(target_arch = "x86_64")]
        if let Some((lut, order)) = super::lut::Lut::detect().zip(super::lut::Lut::affine_order(self.bits, &self.bounds)) {
            let xs = order.apply(xs, self.d_in);
            return by_output_row(self.d_out, rows, || (), |_, o, y| {
                let (scales, zeros) = stats(o);
                lut.affine_rows(order, self.bits, row(o), &self.bounds, scales, zeros, &xs, y);
            });
        }
        if affine_dot_applies(self.bits, &self.bounds) {
            // [rows, n_groups] sums of each group's inputs, for the zero-point term.
            let xsums: Vec<f32> = xs
                .chunks_exact(self.d_in)
                .flat_map(|xr| self.bounds.windows(2).map(move |b| xr[b[0]..b[1]].iter().sum::<f32>()))
                .collect();
            return by_output_row(self.d_out, rows, || (), |_, o, y| {
                let (scales, zeros) = stats(o);
                fused::affine_rows_direct(self.bits, row(o), &self.bounds, scales, zeros, xs, &xsums, y);
            });
        }
        by_output_row(self.d_out, rows, || vec![0f32; self.d_in], |scratch, o, y| {
            let (scales, zeros) = stats(o);
            fused::affine_row(self.bits, row(o), &self.bounds, scales, zeros, xs, scratch, y);
        })
    }

    /// Codes plus statistics, in bytes.
    pub fn storage_bytes(&self) -> usize {
        self.packed.len() + 4 * (self.scales.len() + self.zeros.len() + self.g_idx.len())
    }

    /// `int4-g128`, `int8-per-row`, `int4-g16-act-order`.
    pub fn describe(&self) -> String {
        let group = if self.n_groups == 1 { "per-row".to_string() } else { format!("g{}", self.d_in / self.n_groups) };
        let act = if self.order.is_some() { "-act-order" } else { "" };
        format!("int{}-{group}{act}", self.bits)
    }
}

/// Output rows per parallel task: a few tasks per thread (a decode step runs hundreds of
/// products, and each task costs the pool microseconds), at least 16 rows.
fn tile_rows(d_out: usize) -> usize {
    d_out.div_ceil(4 * rayon::current_num_threads().max(1)).max(16)
}

/// A product's `[rows, d_out]` result from `row(state, o, y)`, which fills `y` (`[rows]`: output
/// row `o` against every input row): output rows split over the pool in tiles of
/// [`tile_rows`], each tile with its own `state` (a scratch buffer, or `()`).
pub(super) fn by_output_row<S>(
    d_out: usize,
    rows: usize,
    state: impl Fn() -> S + Sync,
    row: impl Fn(&mut S, usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    // [d_out, rows], a tile of output rows per task.
    let mut out_t = vec![0f32; d_out * rows];
    let tile = tile_rows(d_out);
    out_t.par_chunks_mut(tile * rows).enumerate().for_each(|(t, dst)| {
        let mut s = state();
        for (i, y) in dst.chunks_mut(rows).enumerate() {
            row(&mut s, t * tile + i, y);
        }
    });
    transpose(&out_t, d_out, rows)
}

mod fused {
    use crate::quant::kernels::{affine_dot, dequant_span, dot, multiversion};

    multiversion! {
        fn affine_rows_direct(
            bits: u32,
            row: &[u8],
            bounds: &[usize],
            scales: &[f32],
            zeros: &[f32],
            xs: &[f32],
            xsums: &[f32],
            out: &mut [f32],
        ) {
            let d_in = bounds[bounds.len() - 1];
            let n_groups = bounds.len() - 1;
            for (r, y) in out.iter_mut().enumerate() {
                let x = &xs[r * d_in..(r + 1) * d_in];
                *y = affine_dot(bits, row, bounds, scales, zeros, x, &xsums[r * n_groups..(r + 1) * n_groups]);
            }
        }
    }

    multiversion! {
        fn affine_row(
            bits: u32,
            row: &[u8],
            bounds: &[usize],
            scales: &[f32],
            zeros: &[f32],
            xs: &[f32],
            scratch: &mut [f32],
            out: &mut [f32],
        ) {
            for g in 0..bounds.len() - 1 {
                dequant_span(bits, row, bounds[g], bounds[g + 1], scales[g], zeros[g], scratch);
            }
            let d_in = scratch.len();
            for (r, y) in out.iter_mut().enumerate() {
                *y = dot(&xs[r * d_in..(r + 1) * d_in], scratch);
            }
        }
    }
}

/// `[rows, cols]` -> `[cols, rows]`.
fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    if cols == 1 || rows == 1 {
        return a.to_vec();
    }
    let mut out = vec![0f32; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = a[r * cols + c];
        }
    }
    out
}
