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
//! Shapes follow PyTorch's `nn.Linear`: a weight is `[rows = out_features, cols = in_features]`,
//! row-major; calibration activations are `[samples, cols]`.

use super::linalg::{self, Gemm, RowTile, View};
use crate::error::{QuantError, Result};

/// GPTQ settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GptqParams {
    /// Bits per code: 2, 3, 4 or 8 (codes `0 ..= 2^bits - 1`).
    pub bits: u32,
    /// Columns sharing one scale/zero; `None` = one group over all columns. Must divide `cols`.
    pub group_size: Option<usize>,
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
            return Err(QuantError::config(
                "damp_percent",
                format!("{} is outside (0, 1)", self.damp_percent),
            ));
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

/// Group width for a layer of `cols` columns: `cols` for `None`, else `g` if it divides `cols`.
fn group_width(group_size: Option<usize>, cols: usize) -> Result<usize> {
    match group_size {
        None => Ok(cols),
        Some(0) => Err(QuantError::config("group_size", "must be positive (or None for one group)")),
        Some(g) if cols % g != 0 => Err(QuantError::config(
            "group_size",
            format!("{g} does not divide the layer width {cols}"),
        )),
        Some(g) => Ok(g),
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

/// Calibration rows converted to `f64` per accumulation step.
const HESSIAN_CHUNK: usize = 128;

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
        let threads = linalg::threads_for(rows * n * n / 2);
        let tiles = linalg::row_tiles(&mut self.h, n, n, 0..n);
        let threads = threads.clamp(1, tiles.len().max(1));
        let mut buckets: Vec<Vec<RowTile>> = (0..threads).map(|_| Vec::new()).collect();
        for (t, tile) in tiles.into_iter().enumerate() {
            buckets[t % threads].push(tile);
        }
        std::thread::scope(|sc| {
            for mut b in buckets {
                sc.spawn(move || accumulate_xtx(&mut b, x, n, s));
            }
        });
        linalg::mirror_upper(&mut self.h, n);
        Ok(())
    }
}

/// `H[i, j] += Σ_r (s·x[r, i])(s·x[r, j])` for `j >= i` on the given row tiles of `H`.
fn accumulate_xtx(tiles: &mut [RowTile], x: &[f32], n: usize, s: f64) {
    let mut buf = vec![0.0f64; HESSIAN_CHUNK * n];
    let mut pb = Vec::new();
    for chunk in x.chunks(HESSIAN_CHUNK * n) {
        let r = chunk.len() / n;
        for (d, v) in buf.iter_mut().zip(chunk) {
            *d = f64::from(*v) * s;
        }
        let kr = move |_: usize, _: usize| 0..r;
        let a = View { data: &buf, rs: 1, cs: n };
        let b = View { data: &buf, rs: n, cs: 1 };
        let g = Gemm { a, b, ldc: n, c_off: 0, n, alpha: 1.0, upper: true, k: &kr };
        linalg::run_tiles_with(&g, tiles, 0..n, &mut pb);
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
    /// Original column at each permuted position.
    perm: &'a [usize],
}

/// Mutable per-row outputs of the sweep for a range of rows.
struct RowsOut<'a> {
    /// `[rc, n]` codes in permuted order.
    codes: &'a mut [u8],
    /// `[rc, n]` dequantized values in permuted order.
    dq: &'a mut [f64],
    /// `[rc, n_groups]` grids: computed (dynamic groups) or given (static groups).
    grids: &'a mut [Grid],
    /// `[rc]` loss per row.
    loss: &'a mut [f64],
}

impl Sweep<'_> {
    /// GPTQ over rows `w: [rc, n]` (permuted, updated in place); `fixed` = static groups.
    fn run(&self, w: &mut [f64], rc: usize, fixed: bool, out: RowsOut) {
        let (n, bs) = (self.n, self.block);
        let ng = n / self.group;
        let mut err = vec![0.0; rc * bs];
        let mut pb = Vec::new();
        for i1 in (0..n).step_by(bs) {
            let i2 = (i1 + bs).min(n);
            for r in 0..rc {
                let row = &mut w[r * n..(r + 1) * n];
                let grids = &mut out.grids[r * ng..(r + 1) * ng];
                let (codes, dq) = (&mut out.codes[r * n..(r + 1) * n], &mut out.dq[r * n..(r + 1) * n]);
                let e = &mut err[r * bs..r * bs + (i2 - i1)];
                out.loss[r] += self.block_columns(row, i1, i2, fixed, grids, codes, dq, e);
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
    #[allow(clippy::too_many_arguments)]
    fn block_columns(
        &self,
        row: &mut [f64],
        i1: usize,
        i2: usize,
        fixed: bool,
        grids: &mut [Grid],
        codes: &mut [u8],
        dq: &mut [f64],
        err: &mut [f64],
    ) -> f64 {
        let (n, g) = (self.n, self.group);
        if !fixed {
            // Grids of groups starting in this block come from the block-start weights.
            for c in (i1.div_ceil(g) * g..i2).step_by(g) {
                grids[c / g] = find_params(&row[c..c + g], self.maxq, self.sym);
            }
        }
        let mut loss = 0.0;
        for i in i1..i2 {
            let grid = if fixed { grids[self.perm[i] / g] } else { grids[i / g] };
            let wv = row[i];
            let (d, q) = quant(wv, grid, self.maxq);
            codes[i] = q as u8;
            dq[i] = d;
            let hd = self.hinv[i * n + i];
            loss += (wv - d) * (wv - d) / (hd * hd) / 2.0;
            let e = (wv - d) / hd;
            for (x, h) in row[i..i2].iter_mut().zip(&self.hinv[i * n + i..i * n + i2]) {
                *x -= e * h;
            }
            err[i - i1] = e;
        }
        loss
    }
}

/// Factors `H + damp·mean(diag)·I` into `H⁻¹`'s upper Cholesky factor, raising `damp_percent`
/// by `damp_auto_increment` while it fails and stays below 1. Returns `(factor, damp, retries)`.
fn factor_damped(h: &[f64], n: usize, p: &GptqParams, layer: &str) -> Result<(Vec<f64>, f64, u32)> {
    let mean = (0..n).map(|i| h[i * n + i]).sum::<f64>() / n as f64;
    let (mut pct, mut retries) = (p.damp_percent, 0u32);
    loop {
        let mut a = h.to_vec();
        let damp = pct * mean;
        (0..n).for_each(|i| a[i * n + i] += damp);
        if let Some(hinv) = linalg::inverse_upper_cholesky(a, n) {
            return Ok((hinv, pct, retries));
        }
        let next = pct + p.damp_auto_increment;
        if p.damp_auto_increment <= 0.0 || next >= 1.0 {
            return Err(QuantError::NotPositiveDefinite { layer: layer.to_string(), damp: pct });
        }
        pct = next;
        retries += 1;
    }
}

/// Column order: by decreasing `diag(h)` (stable) under act-order, else the identity.
fn column_order(h: &[f64], n: usize, act_order: bool) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    if act_order {
        perm.sort_by(|&a, &b| h[b * n + b].total_cmp(&h[a * n + a]));
    }
    perm
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
    let g = group_width(p.group_size, cols)?;
    check_weight(w, rows, cols)?;
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
    let n = cols;
    let mut h = hessian.h.clone();
    let mut w64: Vec<f64> = w.iter().map(|&v| f64::from(v)).collect();
    let dead: Vec<usize> = (0..n).filter(|&i| h[i * n + i] == 0.0).collect();
    for i in dead {
        h[i * n + i] = 1.0;
        (0..rows).for_each(|r| w64[r * n + i] = 0.0);
    }
    let maxq = f64::from((1u32 << p.bits) - 1);
    let ng = n / g;
    let mut grids = vec![Grid { scale: 1.0, zero: 0.0 }; rows * ng];
    if p.static_groups {
        for (r, row) in w64.chunks_exact(n).enumerate() {
            for k in 0..ng {
                grids[r * ng + k] = find_params(&row[k * g..(k + 1) * g], maxq, p.sym);
            }
        }
    }
    let perm = column_order(&h, n, p.act_order);
    let hp: Vec<f64> = (0..n * n).map(|x| h[perm[x / n] * n + perm[x % n]]).collect();
    let mut wp: Vec<f64> = (0..rows * n).map(|x| w64[(x / n) * n + perm[x % n]]).collect();
    let (hinv, damp_used, retries) = factor_damped(&hp, n, p, layer)?;

    let sweep = Sweep { hinv: &hinv, n, block: p.block_size, group: g, maxq, sym: p.sym, perm: &perm };
    let mut codes_p = vec![0u8; rows * n];
    let mut dq_p = vec![0.0f64; rows * n];
    let mut loss = vec![0.0f64; rows];
    let threads = linalg::threads_for(rows * n * n / 2).min(rows.div_ceil(linalg::MR)).max(1);
    let rc = rows.div_ceil(threads).div_ceil(linalg::MR) * linalg::MR;
    std::thread::scope(|s| {
        let parts = wp
            .chunks_mut(rc * n)
            .zip(codes_p.chunks_mut(rc * n))
            .zip(dq_p.chunks_mut(rc * n))
            .zip(grids.chunks_mut(rc * ng))
            .zip(loss.chunks_mut(rc));
        for ((((w, codes), dq), grids), loss) in parts {
            let sweep = &sweep;
            let fixed = p.static_groups;
            s.spawn(move || sweep.run(w, loss.len(), fixed, RowsOut { codes, dq, grids, loss }));
        }
    });

    let mut out = assemble(rows, n, g, &perm, &codes_p, &dq_p, &grids, p.static_groups);
    out.damp_percent_used = damp_used;
    out.damp_retries = retries;
    out.loss = loss.iter().sum();
    Ok(out)
}

/// Un-permutes codes and dequantized values and lays out grids and `g_idx`.
#[allow(clippy::too_many_arguments)]
fn assemble(
    rows: usize,
    n: usize,
    g: usize,
    perm: &[usize],
    codes_p: &[u8],
    dq_p: &[f64],
    grids: &[Grid],
    fixed: bool,
) -> GptqOutput {
    let mut codes = vec![0u8; rows * n];
    let mut dequant = vec![0.0f32; rows * n];
    for r in 0..rows {
        for (i, &c) in perm.iter().enumerate() {
            codes[r * n + c] = codes_p[r * n + i];
            dequant[r * n + c] = dq_p[r * n + i] as f32;
        }
    }
    let mut g_idx = vec![0u32; n];
    for (i, &c) in perm.iter().enumerate() {
        g_idx[c] = if fixed { c / g } else { i / g } as u32;
    }
    GptqOutput {
        codes,
        scales: grids.iter().map(|x| x.scale as f32).collect(),
        zeros: grids.iter().map(|x| x.zero as f32).collect(),
        g_idx,
        dequant,
        damp_percent_used: 0.0,
        damp_retries: 0,
        loss: 0.0,
    }
}

/// Round-to-nearest baseline on the same per-group grids as GPTQ (`g_idx[c] = c / g`).
/// `bits` and `group_size` follow [`GptqParams`]' rules; `loss` is `Σ (w - q)² / 2`.
pub fn rtn_quantize(
    w: &[f32],
    rows: usize,
    cols: usize,
    bits: u32,
    group_size: Option<usize>,
    sym: bool,
) -> Result<GptqOutput> {
    GptqParams { bits, group_size, sym, ..GptqParams::default() }.validate()?;
    let g = group_width(group_size, cols)?;
    check_weight(w, rows, cols)?;
    let maxq = f64::from((1u32 << bits) - 1);
    let ng = cols / g;
    let mut grids = Vec::with_capacity(rows * ng);
    let mut codes = vec![0u8; rows * cols];
    let mut dq = vec![0.0f64; rows * cols];
    let mut loss = 0.0;
    for (r, row) in w.chunks_exact(cols).enumerate() {
        let row: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
        for k in 0..ng {
            let grid = find_params(&row[k * g..(k + 1) * g], maxq, sym);
            grids.push(grid);
            for c in k * g..(k + 1) * g {
                let (d, q) = quant(row[c], grid, maxq);
                codes[r * cols + c] = q as u8;
                dq[r * cols + c] = d;
                loss += (row[c] - d) * (row[c] - d) / 2.0;
            }
        }
    }
    let perm: Vec<usize> = (0..cols).collect();
    let mut out = assemble(rows, cols, g, &perm, &codes, &dq, &grids, true);
    out.loss = loss;
    Ok(out)
}
