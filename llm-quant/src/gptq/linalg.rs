//! Dense f64 kernels behind the GPTQ solver: a packed, register-tiled `C += alpha * A·B`
//! driver (4x8 tiles, AVX2+FMA when the CPU has them, threads over row tiles or column
//! ranges), the blocked Cholesky factorisation, the lower-triangular inverse and `XᵀX` of a
//! lower-triangular `X`. Results do not depend on the number of threads.
//!
//! All matrices are row-major `Vec<f64>` / `&[f64]`; `n` is the order of a square matrix.

use std::ops::Range;

/// Rows of one register tile.
pub(crate) const MR: usize = 4;
/// Columns of one register tile.
const NR: usize = 8;
/// Columns of `B` packed per pass (the packed `KC x JB` block stays in L2).
const JB: usize = 256;
/// Summation indices packed per pass.
pub(crate) const KC: usize = 256;
/// Distance between packed `B` panels: one cache line more than a panel, so that the panels'
/// rows do not all map to the same L1 set while packing.
const PANEL: usize = KC * NR + NR;
/// Block order of the blocked Cholesky and triangular inverse.
const NB: usize = 128;
/// Multiply-adds per worker thread: about 0.1 ms of work, against some 30 µs to start a thread.
const PAR_MIN_WORK: usize = 1 << 20;

/// A read-only strided matrix: element `(i, k)` is `data[i * rs + k * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    /// Backing storage, starting at element `(0, 0)`.
    pub data: &'a [f64],
    /// Stride between rows.
    pub rs: usize,
    /// Stride between columns.
    pub cs: usize,
}

impl View<'_> {
    #[inline(always)]
    fn at(&self, i: usize, k: usize) -> f64 {
        self.data[i * self.rs + k * self.cs]
    }
}

/// Rows `i0 .. i0 + rows.len()` (at most [`MR`]) of an output matrix `C`, restricted to a
/// column range `js`: `rows[r][j - js.start]` is `C[i0 + r, j]`.
pub(crate) struct RowTile<'a> {
    /// Index of the first row (in `C`'s coordinates).
    pub i0: usize,
    /// The rows' storage over the tile's column range.
    pub rows: Vec<&'a mut [f64]>,
}

/// `C[i, j] += alpha * Σ_{k ∈ k(i0, j0)} A[i, k] · B[k, j]` for `j < n` (the range of `k` may
/// depend on the tile's first row and column; `B`'s columns must be contiguous, `b.cs == 1`).
pub(crate) struct Gemm<'a> {
    /// Left factor, indexed by `C`'s row.
    pub a: View<'a>,
    /// Right factor, indexed by `C`'s column (`cs == 1`).
    pub b: View<'a>,
    /// Row stride of `C`.
    pub ldc: usize,
    /// Column offset of `C`'s column 0 inside each row.
    pub c_off: usize,
    /// Columns of `C`.
    pub n: usize,
    /// Factor applied to the product.
    pub alpha: f64,
    /// Skip tiles that lie wholly below the diagonal (`j < i` everywhere).
    pub upper: bool,
    /// The summation range of a tile starting at `(i0, j0)`.
    pub k: &'a (dyn Fn(usize, usize) -> Range<usize> + Sync),
}

/// Splits the first `m` rows of `c` (row stride `ldc`) into [`RowTile`]s over the storage
/// columns `cols`.
pub(crate) fn row_tiles(c: &mut [f64], m: usize, ldc: usize, cols: Range<usize>) -> Vec<RowTile<'_>> {
    let mut rows = c.chunks_mut(ldc).take(m).map(|r| &mut r[cols.clone()]);
    (0..m.div_ceil(MR)).map(|t| RowTile { i0: t * MR, rows: rows.by_ref().take(MR).collect() }).collect()
}

/// Runs `g` over the given row tiles (covering columns `js`) on the calling thread; `pb` is a
/// packing buffer (grown as needed) that callers reuse across calls.
pub(crate) fn run_tiles_with(g: &Gemm, tiles: &mut [RowTile], js: Range<usize>, pb: &mut Vec<f64>) {
    if pb.len() < PANEL * (JB / NR) {
        pb.resize(PANEL * (JB / NR), 0.0);
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features `run_tiles_fma` is compiled for (checked above).
        unsafe { run_tiles_fma(g, tiles, js, pb) };
        return;
    }
    run_tiles_body::<false>(g, tiles, js, pb);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_tiles_fma(g: &Gemm, tiles: &mut [RowTile], js: Range<usize>, pb: &mut [f64]) {
    run_tiles_body::<true>(g, tiles, js, pb);
}

#[inline(always)]
fn run_tiles_body<const FMA: bool>(g: &Gemm, tiles: &mut [RowTile], js: Range<usize>, pb: &mut [f64]) {
    let Some(ext) = k_extent(g, tiles, js.clone()) else { return };
    let mut pa = [0.0; KC * MR];
    // Summation blocks start at multiples of KC, so every entry's partial sums are grouped the
    // same way however the work is split between threads (results do not depend on them).
    for kb in (ext.start / KC * KC..ext.end).step_by(KC) {
        let (ke, k_lo) = ((kb + KC).min(ext.end), kb.max(ext.start));
        for jb in js.clone().step_by(JB) {
            let je = (jb + JB).min(js.end);
            let mut packed_b = false;
            for t in tiles.iter_mut() {
                let mut packed = false;
                for j0 in (jb..je).step_by(NR) {
                    let nr = NR.min(je - j0);
                    if g.upper && j0 + nr <= t.i0 {
                        continue;
                    }
                    let ks = (g.k)(t.i0, j0);
                    let (lo, hi) = (ks.start.max(kb), ks.end.min(ke));
                    if lo >= hi {
                        continue;
                    }
                    if !packed_b {
                        pack_b(g, kb, k_lo..ke, jb..je, pb);
                        packed_b = true;
                    }
                    if !packed {
                        pack_a(g, t.i0, t.rows.len(), kb, k_lo..ke, &mut pa);
                        packed = true;
                    }
                    let off = (j0 - jb) / NR * PANEL;
                    let a = &pa[(lo - kb) * MR..(hi - kb) * MR];
                    let b = &pb[off + (lo - kb) * NR..off + (hi - kb) * NR];
                    let acc = kernel::<FMA>(a, b);
                    for (row, acc_r) in t.rows.iter_mut().zip(&acc) {
                        let start = j0 - js.start;
                        for (c, a) in row[start..start + nr].iter_mut().zip(acc_r) {
                            *c += g.alpha * a;
                        }
                    }
                }
            }
        }
    }
}

/// The union of the summation ranges of all tiles (`None` if all are empty).
fn k_extent(g: &Gemm, tiles: &[RowTile], js: Range<usize>) -> Option<Range<usize>> {
    let (mut lo, mut hi) = (usize::MAX, 0);
    for t in tiles {
        for j0 in js.clone().step_by(NR) {
            if g.upper && j0 + NR.min(js.end - j0) <= t.i0 {
                continue;
            }
            let ks = (g.k)(t.i0, j0);
            if !ks.is_empty() {
                lo = lo.min(ks.start);
                hi = hi.max(ks.end);
            }
        }
    }
    (lo < hi).then_some(lo..hi)
}

/// Packs `B[ks, js]` as `[k - kb][NR]` panels, one per `NR` columns (zero-padded).
#[inline(always)]
fn pack_b(g: &Gemm, kb: usize, ks: Range<usize>, js: Range<usize>, pb: &mut [f64]) {
    for k in ks {
        let kk = k - kb;
        let row = &g.b.data[k * g.b.rs + js.start..k * g.b.rs + js.end];
        for (jt, src) in row.chunks(NR).enumerate() {
            let at = jt * PANEL + kk * NR;
            let dst: &mut [f64; NR] = (&mut pb[at..at + NR]).try_into().expect("NR values");
            match <&[f64; NR]>::try_from(src) {
                Ok(full) => *dst = *full,
                Err(_) => {
                    *dst = [0.0; NR];
                    dst[..src.len()].copy_from_slice(src);
                }
            }
        }
    }
}

/// Packs `A[i0 .. i0 + mr, ks]` as `[k - kb][MR]` (zero-padded rows).
#[inline(always)]
fn pack_a(g: &Gemm, i0: usize, mr: usize, kb: usize, ks: Range<usize>, pa: &mut [f64]) {
    for k in ks {
        let kk = k - kb;
        let dst = &mut pa[kk * MR..kk * MR + MR];
        for (r, d) in dst.iter_mut().enumerate() {
            *d = if r < mr { g.a.at(i0 + r, k) } else { 0.0 };
        }
    }
}

#[inline(always)]
fn fmadd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `Σ_k a[k]ᵀ b[k]` over packed `[k][MR]` and `[k][NR]` panels.
#[inline(always)]
fn kernel<const FMA: bool>(a: &[f64], b: &[f64]) -> [[f64; NR]; MR] {
    let mut acc = [[0.0; NR]; MR];
    for (a, b) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for r in 0..MR {
            for c in 0..NR {
                acc[r][c] = fmadd::<FMA>(a[r], b[c], acc[r][c]);
            }
        }
    }
    acc
}

/// Number of worker threads for `work` multiply-adds: one per [`PAR_MIN_WORK`], at most the
/// available parallelism.
pub(crate) fn threads_for(work: usize) -> usize {
    static AVAILABLE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let available = *AVAILABLE.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    (work / PAR_MIN_WORK).clamp(1, available)
}

/// Runs `f` with AVX2 enabled for the code inlined into it when the CPU has it. For code
/// without `mul_add` only, whose results are then the same either way (Rust never contracts
/// `a * b + c` into an FMA).
#[inline]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features `simd_avx2` is compiled for (checked above).
        return unsafe { simd_avx2(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn simd_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Runs `f(chunk, rows)` in parallel over up to `threads` column chunks of `cols` (multiples of
/// 8 wide) of the first `m` rows of `a` (row stride `n`); `rows[r]` is row `r` over `chunk`.
fn par_columns<F>(a: &mut [f64], m: usize, n: usize, cols: Range<usize>, threads: usize, f: F)
where
    F: Fn(Range<usize>, &mut [&mut [f64]]) + Sync,
{
    if cols.is_empty() || m == 0 {
        return;
    }
    let width = cols.len().div_ceil(threads.max(1)).div_ceil(8) * 8;
    let chunks: Vec<Range<usize>> = cols.clone().step_by(width).map(|c| c..(c + width).min(cols.end)).collect();
    let mut parts: Vec<Vec<&mut [f64]>> = chunks.iter().map(|_| Vec::with_capacity(m)).collect();
    for row in a.chunks_mut(n).take(m) {
        let mut rest = &mut row[cols.clone()];
        for (c, part) in chunks.iter().zip(parts.iter_mut()) {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(c.len());
            part.push(head);
            rest = tail;
        }
    }
    let f = &f;
    std::thread::scope(|s| {
        let mut jobs = chunks.into_iter().zip(parts);
        let (c0, mut rows0) = jobs.next().expect("one chunk");
        for (c, mut rows) in jobs {
            s.spawn(move || simd(|| f(c, &mut rows)));
        }
        simd(|| f(c0, &mut rows0));
    });
}

/// Runs `g` over the first `m` rows of `c` on up to `threads` threads: row tiles spread
/// round-robin when there are many, else column ranges (so that no two threads pack the same
/// part of `B`).
pub(crate) fn run_parallel(g: &Gemm, c: &mut [f64], m: usize, threads: usize) {
    let tiles = row_tiles(c, m, g.ldc, g.c_off..g.c_off + g.n);
    if threads <= 1 || g.n <= NR {
        let mut tiles = tiles;
        run_tiles_with(g, &mut tiles, 0..g.n, &mut Vec::new());
        return;
    }
    let mut jobs: Vec<Vec<(Range<usize>, Vec<RowTile>)>> = (0..threads).map(|_| Vec::new()).collect();
    if tiles.len() >= 16 * threads {
        for (t, tile) in tiles.into_iter().enumerate() {
            let job = &mut jobs[t % threads];
            if job.is_empty() {
                job.push((0..g.n, Vec::new()));
            }
            job[0].1.push(tile);
        }
    } else {
        // Column chunks (multiples of NR), several per thread for balance.
        let width = g.n.div_ceil(4 * threads).div_ceil(NR).max(1) * NR;
        let mut chunks: Vec<(Range<usize>, Vec<RowTile>)> =
            (0..g.n).step_by(width).map(|j| (j..(j + width).min(g.n), Vec::new())).collect();
        for tile in tiles {
            let mut rows: Vec<_> = tile.rows.into_iter().map(Some).collect();
            for (js, list) in chunks.iter_mut() {
                let parts = rows.iter_mut().map(|r| {
                    let (head, tail) = r.take().expect("row").split_at_mut(js.len());
                    *r = Some(tail);
                    head
                });
                list.push(RowTile { i0: tile.i0, rows: parts.collect() });
            }
        }
        for (t, chunk) in chunks.into_iter().enumerate() {
            jobs[t % threads].push(chunk);
        }
    }
    let run_job = |job: Vec<(Range<usize>, Vec<RowTile>)>| {
        let mut pb = Vec::new();
        for (js, mut tiles) in job {
            run_tiles_with(g, &mut tiles, js, &mut pb);
        }
    };
    std::thread::scope(|s| {
        let mut jobs = jobs.into_iter().filter(|j| !j.is_empty());
        let first = jobs.next();
        for job in jobs {
            s.spawn(move || run_job(job));
        }
        first.map(run_job);
    });
}

/// `H += (s·X)ᵀ(s·X)` for `x: [rows, n]` (`f32`, converted per [`KC`]-row chunk by each
/// thread) and a symmetric `h: [n, n]`: upper triangle accumulated, then mirrored.
pub(crate) fn add_scaled_gram_f32(h: &mut [f64], n: usize, x: &[f32], s: f64) {
    let rows = x.len() / n;
    let tiles = row_tiles(h, n, n, 0..n);
    let threads = threads_for(rows * n * n / 2).clamp(1, tiles.len().max(1));
    let mut buckets: Vec<Vec<RowTile>> = (0..threads).map(|_| Vec::new()).collect();
    for (t, tile) in tiles.into_iter().enumerate() {
        buckets[t % threads].push(tile);
    }
    std::thread::scope(|sc| {
        for mut tiles in buckets {
            sc.spawn(move || {
                let (mut buf, mut pb) = (vec![0.0f64; KC * n], Vec::new());
                for chunk in x.chunks(KC * n) {
                    let r = chunk.len() / n;
                    buf.iter_mut().zip(chunk).for_each(|(d, v)| *d = f64::from(*v) * s);
                    let kr = move |_: usize, _: usize| 0..r;
                    let a = View { data: &buf, rs: 1, cs: n };
                    let b = View { data: &buf, rs: n, cs: 1 };
                    let g = Gemm { a, b, ldc: n, c_off: 0, n, alpha: 1.0, upper: true, k: &kr };
                    run_tiles_with(&g, &mut tiles, 0..n, &mut pb);
                }
            });
        }
    });
    mirror_upper(h, n);
}

/// In-place upper Cholesky factor: on success `a` (`[n, n]`, only its upper triangle read)
/// holds `U` with `UᵀU = A` and zeros below the diagonal. Returns `false` as soon as a pivot
/// is not positive (or not finite), as LAPACK's `potrf` does.
pub(crate) fn cholesky_upper(a: &mut [f64], n: usize) -> bool {
    for k0 in (0..n).step_by(NB) {
        let k1 = (k0 + NB).min(n);
        let (top, rest) = a.split_at_mut(k0 * n);
        if k0 > 0 {
            let kr = move |_: usize, _: usize| 0..k0;
            let u = View { data: &top[k0..], rs: 1, cs: n };
            let b = View { data: &top[k0..], rs: n, cs: 1 };
            let g = Gemm { a: u, b, ldc: n, c_off: k0, n: n - k0, alpha: -1.0, upper: true, k: &kr };
            run_parallel(&g, rest, k1 - k0, threads_for((k1 - k0) * (n - k0) * k0));
        }
        if !factor_panel(&mut rest[..(k1 - k0) * n], n, k0, k1) {
            return false;
        }
    }
    for i in 1..n {
        a[i * n..i * n + i].fill(0.0);
    }
    true
}

/// Unblocked right-looking Cholesky of panel rows `k0..k1` (already updated by earlier rows):
/// the diagonal block first, then the columns right of it in parallel (same operations per
/// entry, in the same order).
fn factor_panel(rows: &mut [f64], n: usize, k0: usize, k1: usize) -> bool {
    for i in k0..k1 {
        let (cur, below) = rows[(i - k0) * n..].split_at_mut(n);
        let d = cur[i];
        if !(d > 0.0 && d.is_finite()) {
            return false;
        }
        let d = d.sqrt();
        cur[i] = d;
        for x in &mut cur[i + 1..k1] {
            *x /= d;
        }
        for (r, row) in below.chunks_exact_mut(n).enumerate() {
            let ip = i + 1 + r;
            let f = cur[ip];
            for (y, x) in row[ip..k1].iter_mut().zip(&cur[ip..k1]) {
                *y -= f * x;
            }
        }
    }
    let m = k1 - k0;
    let diag: Vec<f64> = (0..m).flat_map(|r| rows[r * n + k0..r * n + k1].to_vec()).collect();
    par_columns(rows, m, n, k1..n, threads_for(m * m * (n - k1) / 2), |_, part| {
        for r in 0..m {
            let (cur, below) = part[r..].split_first_mut().expect("panel row");
            let d = diag[r * m + r];
            cur.iter_mut().for_each(|x| *x /= d);
            for (q, row) in below.iter_mut().enumerate() {
                let f = diag[r * m + r + 1 + q];
                for (y, x) in row.iter_mut().zip(cur.iter()) {
                    *y -= f * x;
                }
            }
        }
    });
    true
}

/// Transposes a square `[n, n]` matrix in place.
pub(crate) fn transpose_in_place(a: &mut [f64], n: usize) {
    for i0 in (0..n).step_by(32) {
        for j0 in (i0..n).step_by(32) {
            for i in i0..(i0 + 32).min(n) {
                for j in j0.max(i + 1)..(j0 + 32).min(n) {
                    a.swap(i * n + j, j * n + i);
                }
            }
        }
    }
}

/// In-place inverse of a lower-triangular `[n, n]` matrix `x` with a non-zero diagonal (zeros
/// above the diagonal stay zero). Row blocks of `NB`: the rows' `L` entries are saved first.
pub(crate) fn tri_inv_lower_in_place(x: &mut [f64], n: usize) {
    let mut lb = Vec::with_capacity(NB * n);
    for i0 in (0..n).step_by(NB) {
        let i1 = (i0 + NB).min(n);
        let m = i1 - i0;
        let (top, rest) = x.split_at_mut(i0 * n);
        let rest = &mut rest[..m * n];
        lb.clear();
        lb.extend_from_slice(rest);
        rest.fill(0.0);
        let l = |i: usize, k: usize| lb[(i - i0) * n + k];
        if i0 > 0 {
            // X[i, j] for j < i0: -Σ_{j <= k < i0} L[i, k] X[k, j] (X[k, j] = 0 for k < j).
            let kr = move |_: usize, j: usize| j..i0;
            let a = View { data: &lb, rs: n, cs: 1 };
            let b = View { data: top, rs: n, cs: 1 };
            let g = Gemm { a, b, ldc: n, c_off: 0, n: i0, alpha: -1.0, upper: false, k: &kr };
            run_parallel(&g, rest, m, threads_for(m * i0 * i0 / 2));
        }
        // Rows of the block, column chunks in parallel:
        // X[i, c] = (δ_ic - Σ_{k < i} L[i, k] X[k, c]) / L[i, i].
        par_columns(rest, m, n, 0..i1, threads_for(m * m * i1 / 2), |cols, part| {
            for i in i0..i1 {
                let (prev, cur) = part.split_at_mut(i - i0);
                let cur = &mut cur[0];
                for k in i0..i {
                    let len = (k + 1).min(cols.end).saturating_sub(cols.start);
                    let f = l(i, k);
                    for (y, v) in cur[..len].iter_mut().zip(&prev[k - i0][..len]) {
                        *y -= f * v;
                    }
                }
                let d = l(i, i);
                let len = i.min(cols.end).saturating_sub(cols.start);
                cur[..len].iter_mut().for_each(|y| *y /= d);
                if cols.contains(&i) {
                    cur[i - cols.start] = 1.0 / d;
                }
            }
        });
    }
}

/// `c = XᵀX` (full symmetric `[n, n]`) of a lower-triangular `[n, n]` matrix `x`.
pub(crate) fn gram_of_lower(x: &[f64], n: usize, c: &mut [f64]) {
    c.fill(0.0);
    let kr = move |i: usize, j: usize| i.max(j)..n;
    let a = View { data: x, rs: 1, cs: n };
    let b = View { data: x, rs: n, cs: 1 };
    let g = Gemm { a, b, ldc: n, c_off: 0, n, alpha: 1.0, upper: true, k: &kr };
    run_parallel(&g, c, n, threads_for(n * n * n / 6));
    mirror_upper(c, n);
}

/// Copies the upper triangle of a square `[n, n]` matrix onto its lower triangle.
pub(crate) fn mirror_upper(c: &mut [f64], n: usize) {
    for i0 in (0..n).step_by(32) {
        for j0 in (0..=i0).step_by(32) {
            for i in i0..(i0 + 32).min(n) {
                for j in j0..(j0 + 32).min(i) {
                    c[i * n + j] = c[j * n + i];
                }
            }
        }
    }
}

/// `H⁻¹`'s upper Cholesky factor of a symmetric `[n, n]` matrix `h`, computed as the reference
/// does (`cholesky` → `cholesky_inverse` → `cholesky(upper=True)`), into `out` (`[n, n]`); `h`
/// is overwritten. `false` if `h` (or the computed inverse) is not numerically positive
/// definite.
pub(crate) fn inverse_upper_cholesky(h: &mut [f64], out: &mut [f64], n: usize) -> bool {
    if !cholesky_upper(h, n) {
        return false;
    }
    transpose_in_place(h, n);
    tri_inv_lower_in_place(h, n);
    gram_of_lower(h, n, out);
    cholesky_upper(out, n) && out.iter().all(|v| v.is_finite())
}

#[cfg(test)]
#[path = "linalg_tests.rs"]
mod tests;
