//! The GPTQ algorithm (Frantar et al., 2022) as pure host functions over `f32` slices, with
//! all arithmetic in `f64`.
//!
//! [`gptq_quantize`] follows IST-DASLab's `gptq.py` `fasterquant` step by step (dead columns,
//! percentage damping, `cholesky` → `cholesky_inverse` → upper `cholesky`, lazy batches of
//! `block_size` columns, per-group min/max grids, act-order and static groups) and adds
//! GPTQModel's automatic damping increase. Rows of the weight are independent given `H⁻¹`, so
//! they are solved in parallel. [`Hessian`] accumulates `H = 2/n Σ xᵀx` like the reference
//! `add_batch`; [`rtn_quantize`] is the round-to-nearest baseline on the same grids.
//!
//! Results do not depend on the number of threads. Matrix products use FMA on CPUs that have
//! it (AVX2+FMA on x86-64), so other CPUs may differ in the last bits of `H⁻¹`.
//!
//! Shapes follow PyTorch's `nn.Linear`: a weight is `[rows = out_features, cols = in_features]`,
//! row-major; calibration activations are `[samples, cols]`.

use super::linalg::{self, Gemm, View};
use crate::error::{QuantError, Result};

/// GPTQ settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GptqParams {
    /// Bits per code: 2, 3, 4 or 8 (codes `0 ..= 2^bits - 1`).
    pub bits: u32,
    /// Columns sharing one scale/zero; `None` = one group over all columns. Must divide `cols`
    /// unless `partial_groups`.
    pub group_size: Option<usize>,
    /// Allow a group size that does not divide the width: the last group of each row is
    /// shorter (the paper's reference code and GPTQModel accept this; `scales` then has
    /// `ceil(cols / group_size)` rows). Off by default so a mistyped group size is an error.
    pub partial_groups: bool,
    /// Symmetric grid (zero point fixed at `(maxq + 1) / 2`) instead of min/max asymmetric.
    pub sym: bool,
    /// Damping added to `diag(H)`, as a fraction of its mean; in `(0, 1)`.
    pub damp_percent: f64,
    /// Increase of `damp_percent` per retry when `H` is not positive definite (0 = no retry).
    pub damp_auto_increment: f64,
    /// Columns per lazy batch.
    pub block_size: usize,
    /// Quantize columns in order of decreasing `diag(H)`.
    pub act_order: bool,
    /// Compute every group's grid up front from the un-updated weight (in original column
    /// order), so groups stay contiguous in the original order under act-order.
    pub static_groups: bool,
}

impl Default for GptqParams {
    fn default() -> Self {
        Self {
            bits: 4,
            group_size: Some(128),
            partial_groups: false,
            sym: true,
            damp_percent: 0.01,
            damp_auto_increment: 0.01,
            block_size: 128,
            act_order: false,
            static_groups: false,
        }
    }
}

impl GptqParams {
    /// Checks the settings that do not depend on the layer: `bits ∈ {2,3,4,8}`, a non-zero
    /// `group_size`, `damp_percent ∈ (0, 1)`, a finite non-negative `damp_auto_increment` and a
    /// non-zero `block_size`. (Whether `group_size` divides the width is checked per layer.)
    pub fn validate(&self) -> Result<()> {
        if ![2, 3, 4, 8].contains(&self.bits) {
            return Err(QuantError::config("bits", format!("{} is not one of 2, 3, 4, 8", self.bits)));
        }
        if self.group_size == Some(0) {
            return Err(QuantError::config("group_size", "must be positive (or None for one group)"));
        }
        if !(self.damp_percent > 0.0 && self.damp_percent < 1.0) {
            return Err(QuantError::config("damp_percent", format!("{} is outside (0, 1)", self.damp_percent)));
        }
        if !(self.damp_auto_increment >= 0.0 && self.damp_auto_increment.is_finite()) {
            return Err(QuantError::config(
                "damp_auto_increment",
                format!("{} must be finite and >= 0", self.damp_auto_increment),
            ));
        }
        if self.block_size == 0 {
            return Err(QuantError::config("block_size", "must be positive"));
        }
        Ok(())
    }
}

/// Group width for a layer of `cols` columns: `cols` for `None`, else `g` if it divides `cols`
/// (or `partial` allows a shorter last group).
pub(crate) fn group_width(group_size: Option<usize>, cols: usize, partial: bool) -> Result<usize> {
    match group_size {
        None => Ok(cols),
        Some(0) => Err(QuantError::config("group_size", "must be positive (or None for one group)")),
        Some(g) if !cols.is_multiple_of(g) && !partial => Err(QuantError::config(
            "group_size",
            format!("{g} does not divide the layer width {cols} (allow a shorter last group with partial_groups)"),
        )),
        Some(g) => Ok(g.min(cols)),
    }
}

/// The GPTQ Hessian `H = 2/n Σ xᵀx` of one linear layer's inputs, accumulated in `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hessian {
    /// Input features of the layer (`H` is `[cols, cols]`).
    pub cols: usize,
    /// Calibration rows (tokens) seen so far.
    pub n_samples: usize,
    /// `[cols, cols]` row-major, symmetric.
    pub h: Vec<f64>,
}

impl Hessian {
    /// An empty (all-zero) Hessian for a layer with `cols` input features.
    pub fn new(cols: usize) -> Self {
        Self { cols, n_samples: 0, h: vec![0.0; cols * cols] }
    }

    /// Adds a batch `x: [rows, cols]` exactly like the reference `add_batch`: `H *= n/(n+rows)`,
    /// `n += rows`, `x *= sqrt(2/n)`, `H += xᵀx`. Errors on a length mismatch (`Shape`) or a
    /// non-finite activation (`NonFinite`), leaving `self` unchanged.
    pub fn add_batch(&mut self, x: &[f32], rows: usize) -> Result<()> {
        let n = self.cols;
        if x.len() != rows * n {
            return Err(QuantError::Shape {
                what: "calibration activations".into(),
                expected: format!("[{rows}, {n}] ({} values)", rows * n),
                got: format!("{} values", x.len()),
            });
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(QuantError::NonFinite { what: "calibration activations".into() });
        }
        if rows == 0 {
            return Ok(());
        }
        let shrink = self.n_samples as f64 / (self.n_samples + rows) as f64;
        self.h.iter_mut().for_each(|v| *v *= shrink);
        self.n_samples += rows;
        let s = (2.0 / self.n_samples as f64).sqrt();
        linalg::add_scaled_gram_f32(&mut self.h, n, x, s);
        Ok(())
    }
}

/// Result of quantizing one `[rows, cols]` weight.
#[derive(Debug, Clone, PartialEq)]
pub struct GptqOutput {
    /// `[rows, cols]` integer codes `0 ..= 2^bits - 1`, original column order.
    pub codes: Vec<u8>,
    /// `[rows, n_groups]` grid steps.
    pub scales: Vec<f32>,
    /// `[rows, n_groups]` integer-valued zero points in code units (`(maxq + 1) / 2` when sym).
    pub zeros: Vec<f32>,
    /// `[cols]` group of each original column.
    pub g_idx: Vec<u32>,
    /// `[rows, cols]` `scale * (code - zero)`, original column order.
    pub dequant: Vec<f32>,
    /// Damping fraction that made `H` factorable (0 for RTN).
    pub damp_percent_used: f64,
    /// Times the damping was increased.
    pub damp_retries: u32,
    /// GPTQ: `Σ (w - q)² / Hinv[i, i]² / 2` over all entries (the reference's `Losses`
    /// summed). RTN: `Σ (w - q)² / 2`.
    pub loss: f64,
}

/// One row's quantization grid for one group.
#[derive(Debug, Clone, Copy)]
struct Grid {
    scale: f64,
    zero: f64,
}

/// `quant.py` `Quantizer.find_params` (per channel, no MSE search) for one row of one group.
fn find_params(x: &[f64], maxq: f64, sym: bool) -> Grid {
    let mut xmin = x.iter().copied().fold(f64::INFINITY, f64::min).min(0.0);
    let mut xmax = x.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(0.0);
    if sym {
        xmax = xmax.max(xmin.abs());
        if xmin < 0.0 {
            xmin = -xmax;
        }
    }
    if xmin == 0.0 && xmax == 0.0 {
        xmin = -1.0;
        xmax = 1.0;
    }
    let scale = (xmax - xmin) / maxq;
    let zero = if sym { (maxq + 1.0) / 2.0 } else { (-xmin / scale).round_ties_even() };
    Grid { scale, zero }
}

/// `(dequantized, code)` of `x` on grid `g`: `q = clamp(round(x/scale) + zero, 0, maxq)`.
#[inline]
fn quant(x: f64, g: Grid, maxq: f64) -> (f64, f64) {
    let q = ((x / g.scale).round_ties_even() + g.zero).clamp(0.0, maxq);
    (g.scale * (q - g.zero), q)
}

/// Checks `w: [rows, cols]` (length, non-empty, finite).
fn check_weight(w: &[f32], rows: usize, cols: usize) -> Result<()> {
    if w.len() != rows * cols || rows == 0 || cols == 0 {
        return Err(QuantError::Shape {
            what: "weight".into(),
            expected: format!("non-empty [{rows}, {cols}] ({} values)", rows * cols),
            got: format!("{} values", w.len()),
        });
    }
    if w.iter().any(|v| !v.is_finite()) {
        return Err(QuantError::NonFinite { what: "weight".into() });
    }
    Ok(())
}

/// Read-only inputs of the per-row GPTQ sweep (permuted column order).
struct Sweep<'a> {
    /// `[n, n]` upper Cholesky factor of `H⁻¹`.
    hinv: &'a [f64],
    n: usize,
    block: usize,
    group: usize,
    maxq: f64,
    sym: bool,
    /// Static groups: grids are given per original group.
    fixed: bool,
    /// Original column at each permuted position.
    perm: &'a [usize],
}

/// Sweep results: `codes` `[rows, n]` in permuted column order, `grids` `[rows, n_groups]` (by
/// permuted group; by original group for static groups), `loss` `[rows]`.
struct Swept {
    codes: Vec<u8>,
    grids: Vec<Grid>,
    loss: Vec<f64>,
}

/// One row's state during a block: weights (updated in place) and outputs.
struct Row<'a> {
    w: &'a mut [f64],
    grids: &'a mut [Grid],
    codes: &'a mut [u8],
    /// Scaled errors of this block's columns (`Err1` row).
    err: &'a mut [f64],
}

impl Sweep<'_> {
    /// GPTQ over all rows of `w: [rows, n]` (permuted), rows split across threads.
    fn run_all(&self, mut w: Vec<f64>, rows: usize, mut out: Swept) -> Swept {
        let (n, ng) = (self.n, self.n.div_ceil(self.group));
        let threads = linalg::threads_for(rows * n * n / 2).min(rows.div_ceil(linalg::MR)).max(1);
        let rc = rows.div_ceil(threads).div_ceil(linalg::MR) * linalg::MR;
        std::thread::scope(|s| {
            let parts = w
                .chunks_mut(rc * n)
                .zip(out.codes.chunks_mut(rc * n))
                .zip(out.grids.chunks_mut(rc * ng))
                .zip(out.loss.chunks_mut(rc));
            for (((w, codes), grids), loss) in parts {
                s.spawn(move || linalg::simd(|| self.run(w, codes, grids, loss)));
            }
        });
        out
    }

    /// GPTQ over rows `w: [rc, n]` (`rc = loss.len()`), block by block.
    fn run(&self, w: &mut [f64], codes: &mut [u8], grids: &mut [Grid], loss: &mut [f64]) {
        let (n, bs, rc) = (self.n, self.block, loss.len());
        let ng = n.div_ceil(self.group);
        let mut err = vec![0.0; rc * bs];
        let mut pb = Vec::new();
        for i1 in (0..n).step_by(bs) {
            let i2 = (i1 + bs).min(n);
            for (r, l) in loss.iter_mut().enumerate() {
                let row = Row {
                    w: &mut w[r * n..(r + 1) * n],
                    grids: &mut grids[r * ng..(r + 1) * ng],
                    codes: &mut codes[r * n..(r + 1) * n],
                    err: &mut err[r * bs..r * bs + (i2 - i1)],
                };
                *l += self.block_columns(row, i1, i2);
            }
            if i2 < n {
                // W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
                let kr = move |_: usize, _: usize| 0..(i2 - i1);
                let a = View { data: &err, rs: bs, cs: 1 };
                let b = View { data: &self.hinv[i1 * n + i2..], rs: n, cs: 1 };
                let g = Gemm { a, b, ldc: n, c_off: i2, n: n - i2, alpha: -1.0, upper: false, k: &kr };
                linalg::run_tiles_with(&g, &mut linalg::row_tiles(w, rc, n, i2..n), 0..n - i2, &mut pb);
            }
        }
    }

    /// Quantizes columns `i1..i2` of one row with in-block error feedback; returns the loss.
    fn block_columns(&self, row: Row, i1: usize, i2: usize) -> f64 {
        let (n, g) = (self.n, self.group);
        if !self.fixed {
            // Grids of groups starting in this block come from the block-start weights.
            for c in (i1.div_ceil(g) * g..i2).step_by(g) {
                row.grids[c / g] = find_params(&row.w[c..(c + g).min(n)], self.maxq, self.sym);
            }
        }
        let mut loss = 0.0;
        for i in i1..i2 {
            let grid = if self.fixed { row.grids[self.perm[i] / g] } else { row.grids[i / g] };
            let wv = row.w[i];
            let (d, q) = quant(wv, grid, self.maxq);
            row.codes[i] = q as u8;
            let hd = self.hinv[i * n + i];
            loss += (wv - d) * (wv - d) / (hd * hd) / 2.0;
            let e = (wv - d) / hd;
            for (x, h) in row.w[i..i2].iter_mut().zip(&self.hinv[i * n + i..i * n + i2]) {
                *x -= e * h;
            }
            row.err[i - i1] = e;
        }
        loss
    }
}

/// Factors `H + damp·mean(diag(H))·I` into `H⁻¹`'s upper Cholesky factor, where `fill` writes
/// `H` (`[n, n]`) into a buffer, raising `damp_percent` by `damp_auto_increment` while that
/// fails and stays below 1. Returns `(factor, damp_percent, retries)`.
fn factor_damped(fill: impl Fn(&mut [f64]), n: usize, p: &GptqParams, layer: &str) -> Result<(Vec<f64>, f64, u32)> {
    let (mut a, mut out) = (vec![0.0; n * n], vec![0.0; n * n]);
    fill(&mut a);
    let mean = (0..n).map(|i| a[i * n + i]).sum::<f64>() / n as f64;
    let (mut pct, mut retries) = (p.damp_percent, 0u32);
    loop {
        let damp = pct * mean;
        (0..n).for_each(|i| a[i * n + i] += damp);
        if linalg::inverse_upper_cholesky(&mut a, &mut out, n) {
            return Ok((out, pct, retries));
        }
        let next = pct + p.damp_auto_increment;
        if p.damp_auto_increment <= 0.0 || next >= 1.0 {
            return Err(QuantError::NotPositiveDefinite { layer: layer.to_string(), damp: pct });
        }
        pct = next;
        retries += 1;
        fill(&mut a);
    }
}

/// Column order: by decreasing `diag` (stable) under act-order, else the identity.
fn column_order(diag: &[f64], act_order: bool) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..diag.len()).collect();
    if act_order {
        perm.sort_by(|&a, &b| diag[b].total_cmp(&diag[a]));
    }
    perm
}

/// Columns of `a: [rows, n]` in the order `perm`.
fn permute_columns(a: &[f64], n: usize, perm: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(a.len());
    for row in a.chunks_exact(n) {
        out.extend(perm.iter().map(|&c| row[c]));
    }
    out
}

/// Checks `hessian` against a layer of `cols` columns.
fn check_hessian(hessian: &Hessian, cols: usize, layer: &str) -> Result<()> {
    if hessian.cols != cols || hessian.h.len() != cols * cols {
        return Err(QuantError::Shape {
            what: format!("{layer} Hessian"),
            expected: format!("[{cols}, {cols}]"),
            got: format!("cols {} with {} values", hessian.cols, hessian.h.len()),
        });
    }
    if hessian.n_samples == 0 {
        return Err(QuantError::Calibration(format!("{layer}: the Hessian has seen no samples")));
    }
    if hessian.h.iter().any(|v| !v.is_finite()) {
        return Err(QuantError::NonFinite { what: format!("{layer} Hessian") });
    }
    Ok(())
}

/// Grids of every `g` consecutive columns of every row of `w: [rows, n]`, `[rows, ceil(n / g)]`.
fn group_grids(w: &[f64], n: usize, g: usize, maxq: f64, sym: bool) -> Vec<Grid> {
    w.chunks_exact(n).flat_map(|row| row.chunks(g).map(|x| find_params(x, maxq, sym))).collect()
}

/// GPTQ-quantizes `w: [rows, cols]` with `hessian` (`[cols, cols]`) of the layer's inputs.
///
/// Follows the reference `fasterquant` exactly (see the module docs); `layer` names the layer
/// in errors. Errors: `Config` for bad settings (including a `group_size` that does not divide
/// `cols`), `Shape` for mismatched sizes, `Calibration` for a Hessian without samples,
/// `NonFinite` for NaN/inf weights or Hessian entries, `NotPositiveDefinite` when damping
/// cannot make `H` factorable.
pub fn gptq_quantize(
    w: &[f32],
    rows: usize,
    cols: usize,
    hessian: &Hessian,
    p: &GptqParams,
    layer: &str,
) -> Result<GptqOutput> {
    p.validate()?;
    let g = group_width(p.group_size, cols, p.partial_groups)?;
    check_weight(w, rows, cols)?;
    check_hessian(hessian, cols, layer)?;
    let (n, maxq) = (cols, f64::from((1u32 << p.bits) - 1));
    // Dead inputs (H[i, i] == 0): H[i, i] = 1 and W[:, i] = 0.
    let dead: Vec<bool> = (0..n).map(|i| hessian.h[i * n + i] == 0.0).collect();
    let diag: Vec<f64> = (0..n).map(|i| if dead[i] { 1.0 } else { hessian.h[i * n + i] }).collect();
    let mut w64 = Vec::with_capacity(rows * n);
    for row in w.chunks_exact(n) {
        w64.extend(row.iter().zip(&dead).map(|(&v, &d)| if d { 0.0 } else { f64::from(v) }));
    }
    let grids = match p.static_groups {
        true => group_grids(&w64, n, g, maxq, p.sym),
        false => vec![Grid { scale: 1.0, zero: 0.0 }; rows * n.div_ceil(g)],
    };
    let perm = column_order(&diag, p.act_order);
    let wp = if p.act_order { permute_columns(&w64, n, &perm) } else { w64 };
    // H (dead-fixed, permuted), rewritten for every damping attempt.
    let fill = |buf: &mut [f64]| {
        for (r, out) in buf.chunks_exact_mut(n).enumerate() {
            let src = &hessian.h[perm[r] * n..(perm[r] + 1) * n];
            out.iter_mut().zip(&perm).for_each(|(d, &c)| *d = src[c]);
            out[r] = diag[perm[r]];
        }
    };
    let (hinv, damp_used, retries) = factor_damped(fill, n, p, layer)?;

    let sweep =
        Sweep { hinv: &hinv, n, block: p.block_size, group: g, maxq, sym: p.sym, fixed: p.static_groups, perm: &perm };
    let out = sweep.run_all(wp, rows, Swept { codes: vec![0; rows * n], grids, loss: vec![0.0; rows] });
    let mut res = assemble(out, rows, n, g, &perm, p.static_groups);
    res.damp_percent_used = damp_used;
    res.damp_retries = retries;
    Ok(res)
}

/// Un-permutes the codes and lays out grids, `g_idx`, the dequantized weight and the loss.
fn assemble(s: Swept, rows: usize, n: usize, g: usize, perm: &[usize], fixed: bool) -> GptqOutput {
    let identity = perm.iter().enumerate().all(|(i, &c)| i == c);
    let codes = match identity {
        true => s.codes,
        false => {
            let mut codes = vec![0u8; rows * n];
            for (dst, src) in codes.chunks_exact_mut(n).zip(s.codes.chunks_exact(n)) {
                perm.iter().zip(src).for_each(|(&c, &q)| dst[c] = q);
            }
            codes
        }
    };
    let mut g_idx = vec![0u32; n];
    for (i, &c) in perm.iter().enumerate() {
        g_idx[c] = if fixed { c / g } else { i / g } as u32;
    }
    let mut dequant = Vec::with_capacity(rows * n);
    for (row, grids) in codes.chunks_exact(n).zip(s.grids.chunks_exact(n.div_ceil(g))) {
        dequant.extend(row.iter().zip(&g_idx).map(|(&q, &k)| {
            let grid = grids[k as usize];
            (grid.scale * (f64::from(q) - grid.zero)) as f32
        }));
    }
    GptqOutput {
        codes,
        scales: s.grids.iter().map(|x| x.scale as f32).collect(),
        zeros: s.grids.iter().map(|x| x.zero as f32).collect(),
        g_idx,
        dequant,
        damp_percent_used: 0.0,
        damp_retries: 0,
        loss: s.loss.iter().sum(),
    }
}

/// Round-to-nearest baseline on the same per-group grids as GPTQ (`g_idx[c] = c / g`), using
/// `p`'s `bits`, `group_size`, `partial_groups` and `sym`; `loss` is `Σ (w - q)² / 2`.
pub fn rtn_quantize(w: &[f32], rows: usize, cols: usize, p: &GptqParams) -> Result<GptqOutput> {
    p.validate()?;
    let (bits, sym) = (p.bits, p.sym);
    let g = group_width(p.group_size, cols, p.partial_groups)?;
    check_weight(w, rows, cols)?;
    let maxq = f64::from((1u32 << bits) - 1);
    let w64: Vec<f64> = w.iter().map(|&v| f64::from(v)).collect();
    let grids = group_grids(&w64, cols, g, maxq, sym);
    let mut out = Swept { codes: vec![0; rows * cols], grids, loss: vec![0.0; rows] };
    for (r, row) in w64.chunks_exact(cols).enumerate() {
        for (c, &x) in row.iter().enumerate() {
            let (d, q) = quant(x, out.grids[r * cols.div_ceil(g) + c / g], maxq);
            out.codes[r * cols + c] = q as u8;
            out.loss[r] += (x - d) * (x - d) / 2.0;
        }
    }
    let perm: Vec<usize> = (0..cols).collect();
    Ok(assemble(out, rows, cols, g, &perm, true))
}
