//! Dense f64 kernels behind the GPTQ solver: a register-tiled `C += alpha * A·B` driver
//! (4x8 tiles, AVX2+FMA when the CPU has them, threads over row tiles), the blocked Cholesky
//! factorisation, the lower-triangular inverse and `XᵀX` of a lower-triangular `X`.
//!
//! All matrices are row-major `Vec<f64>` / `&[f64]`; `n` is the order of a square matrix.

use std::ops::Range;

/// Rows of one register tile.
pub(crate) const MR: usize = 4;
/// Columns of one register tile.
const NR: usize = 8;
/// Columns of `B` walked per pass, so that the panel of `B` stays in cache.
const JB: usize = 256;
/// Block order of the blocked Cholesky and triangular inverse.
const NB: usize = 64;
/// Below this many multiply-adds a product runs on the calling thread.
const PAR_MIN_WORK: usize = 1 << 21;

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

/// Rows `i0 .. i0 + mr` of an output matrix `C` (row stride `ldc`).
pub(crate) struct RowTile<'a> {
    /// Index of the first row (in `C`'s coordinates).
    pub i0: usize,
    /// Number of rows (at most [`MR`]).
    pub mr: usize,
    /// The rows' storage; element `(i0 + r, j)` is `rows[r * ldc + c_off + j]`.
    pub rows: &'a mut [f64],
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

/// Splits the first `m` rows of `c` (row stride `ldc`) into [`RowTile`]s.
pub(crate) fn row_tiles(c: &mut [f64], m: usize, ldc: usize) -> Vec<RowTile<'_>> {
    c[..m * ldc]
        .chunks_mut(MR * ldc)
        .enumerate()
        .map(|(t, rows)| RowTile { i0: t * MR, mr: MR.min(m - t * MR), rows })
        .collect()
}

/// Runs `g` over the given row tiles on the calling thread.
pub(crate) fn run_tiles(g: &Gemm, tiles: &mut [RowTile]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features `run_tiles_fma` is compiled for (checked above).
        unsafe { run_tiles_fma(g, tiles) };
        return;
    }
    run_tiles_body::<false>(g, tiles);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_tiles_fma(g: &Gemm, tiles: &mut [RowTile]) {
    run_tiles_body::<true>(g, tiles);
}

#[inline(always)]
fn run_tiles_body<const FMA: bool>(g: &Gemm, tiles: &mut [RowTile]) {
    for jb in (0..g.n).step_by(JB) {
        let je = (jb + JB).min(g.n);
        for t in tiles.iter_mut() {
            for j0 in (jb..je).step_by(NR) {
                let nr = NR.min(je - j0);
                if g.upper && j0 + nr <= t.i0 {
                    continue;
                }
                let ks = (g.k)(t.i0, j0);
                if ks.is_empty() {
                    continue;
                }
                let acc = if t.mr == MR && nr == NR {
                    tile_full::<FMA>(g, t.i0, j0, ks)
                } else {
                    tile_edge::<FMA>(g, t.i0, t.mr, j0, nr, ks)
                };
                for (r, acc_r) in acc.iter().enumerate().take(t.mr) {
                    let start = r * g.ldc + g.c_off + j0;
                    for (c, a) in t.rows[start..start + nr].iter_mut().zip(acc_r) {
                        *c += g.alpha * a;
                    }
                }
            }
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

#[inline(always)]
fn tile_full<const FMA: bool>(g: &Gemm, i0: usize, j0: usize, ks: Range<usize>) -> [[f64; NR]; MR] {
    let mut acc = [[0.0; NR]; MR];
    for k in ks {
        let start = k * g.b.rs + j0;
        let b: &[f64; NR] = g.b.data[start..start + NR].try_into().expect("NR columns");
        let a: [f64; MR] = std::array::from_fn(|r| g.a.at(i0 + r, k));
        for r in 0..MR {
            for c in 0..NR {
                acc[r][c] = fmadd::<FMA>(a[r], b[c], acc[r][c]);
            }
        }
    }
    acc
}

#[inline(always)]
fn tile_edge<const FMA: bool>(
    g: &Gemm,
    i0: usize,
    mr: usize,
    j0: usize,
    nr: usize,
    ks: Range<usize>,
) -> [[f64; NR]; MR] {
    let mut acc = [[0.0; NR]; MR];
    for k in ks {
        let b = &g.b.data[k * g.b.rs + j0..k * g.b.rs + j0 + nr];
        for (r, acc_r) in acc.iter_mut().enumerate().take(mr) {
            let a = g.a.at(i0 + r, k);
            for (acc_rc, bc) in acc_r.iter_mut().zip(b) {
                *acc_rc = fmadd::<FMA>(a, *bc, *acc_rc);
            }
        }
    }
    acc
}

/// Number of worker threads to use for `work` multiply-adds.
pub(crate) fn threads_for(work: usize) -> usize {
    if work < PAR_MIN_WORK {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `g` over the first `m` rows of `c`, spreading row tiles round-robin over `threads`.
pub(crate) fn run_parallel(g: &Gemm, c: &mut [f64], m: usize, threads: usize) {
    let tiles = row_tiles(c, m, g.ldc);
    let threads = threads.clamp(1, tiles.len().max(1));
    if threads == 1 {
        let mut tiles = tiles;
        run_tiles(g, &mut tiles);
        return;
    }
    let mut buckets: Vec<Vec<RowTile>> = (0..threads).map(|_| Vec::new()).collect();
    for (t, tile) in tiles.into_iter().enumerate() {
        buckets[t % threads].push(tile);
    }
    std::thread::scope(|s| {
        let mut it = buckets.into_iter();
        let mut first = it.next().expect("one bucket");
        for mut b in it {
            s.spawn(move || run_tiles(g, &mut b));
        }
        run_tiles(g, &mut first);
    });
}

/// In-place upper Cholesky factor: on success `a` (`[n, n]`, only its upper triangle read)
/// holds `U` with `UᵀU = A` and zeros below the diagonal. Returns `false` as soon as a pivot
/// is not positive (or not finite), as LAPACK's `potrf` does.
pub(crate) fn cholesky_upper(a: &mut [f64], n: usize) -> bool {
    let threads = threads_for(n * n * n / 3);
    for k0 in (0..n).step_by(NB) {
        let k1 = (k0 + NB).min(n);
        let (top, rest) = a.split_at_mut(k0 * n);
        if k0 > 0 {
            let kr = move |_: usize, _: usize| 0..k0;
            let u = View { data: &top[k0..], rs: 1, cs: n };
            let b = View { data: &top[k0..], rs: n, cs: 1 };
            let g = Gemm { a: u, b, ldc: n, c_off: k0, n: n - k0, alpha: -1.0, upper: true, k: &kr };
            run_parallel(&g, rest, k1 - k0, threads);
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

/// Unblocked right-looking Cholesky of panel rows `k0..k1` (already updated by earlier rows).
fn factor_panel(rows: &mut [f64], n: usize, k0: usize, k1: usize) -> bool {
    for i in k0..k1 {
        let (cur, below) = rows[(i - k0) * n..].split_at_mut(n);
        let d = cur[i];
        if !(d > 0.0 && d.is_finite()) {
            return false;
        }
        let d = d.sqrt();
        cur[i] = d;
        for x in &mut cur[i + 1..] {
            *x /= d;
        }
        for (r, row) in below.chunks_exact_mut(n).enumerate() {
            let ip = i + 1 + r;
            let f = cur[ip];
            for (y, x) in row[ip..].iter_mut().zip(&cur[ip..]) {
                *y -= f * x;
            }
        }
    }
    true
}

/// Transpose of a square `[n, n]` matrix.
pub(crate) fn transpose(a: &[f64], n: usize) -> Vec<f64> {
    let mut t = vec![0.0; n * n];
    for i0 in (0..n).step_by(32) {
        for j0 in (0..n).step_by(32) {
            for i in i0..(i0 + 32).min(n) {
                for j in j0..(j0 + 32).min(n) {
                    t[j * n + i] = a[i * n + j];
                }
            }
        }
    }
    t
}

/// Inverse of a lower-triangular `[n, n]` matrix `l` with a non-zero diagonal (lower result).
pub(crate) fn tri_inv_lower(l: &[f64], n: usize) -> Vec<f64> {
    let threads = threads_for(n * n * n / 6);
    let mut x = vec![0.0; n * n];
    for i0 in (0..n).step_by(NB) {
        let i1 = (i0 + NB).min(n);
        let (top, rest) = x.split_at_mut(i0 * n);
        if i0 > 0 {
            // X[i, j] for j < i0: -Σ_{j <= k < i0} L[i, k] X[k, j] (X[k, j] = 0 for k < j).
            let kr = move |_: usize, j: usize| j..i0;
            let a = View { data: &l[i0 * n..], rs: n, cs: 1 };
            let b = View { data: top, rs: n, cs: 1 };
            let g = Gemm { a, b, ldc: n, c_off: 0, n: i0, alpha: -1.0, upper: false, k: &kr };
            run_parallel(&g, rest, i1 - i0, threads);
        }
        for i in i0..i1 {
            let (prev, cur) = rest[..(i - i0 + 1) * n].split_at_mut((i - i0) * n);
            for k in i0..i {
                let f = l[i * n + k];
                let xk = &prev[(k - i0) * n..(k - i0) * n + k + 1];
                for (y, v) in cur[..=k].iter_mut().zip(xk) {
                    *y -= f * v;
                }
            }
            let d = l[i * n + i];
            for y in &mut cur[..i] {
                *y /= d;
            }
            cur[i] = 1.0 / d;
        }
    }
    x
}

/// `XᵀX` (full symmetric `[n, n]`) of a lower-triangular `[n, n]` matrix `x`.
pub(crate) fn gram_of_lower(x: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    let kr = move |i: usize, j: usize| i.max(j)..n;
    let a = View { data: x, rs: 1, cs: n };
    let b = View { data: x, rs: n, cs: 1 };
    let g = Gemm { a, b, ldc: n, c_off: 0, n, alpha: 1.0, upper: true, k: &kr };
    run_parallel(&g, &mut c, n, threads_for(n * n * n / 6));
    mirror_upper(&mut c, n);
    c
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
/// does (`cholesky` → `cholesky_inverse` → `cholesky(upper=True)`); `None` if `h` (or the
/// computed inverse) is not numerically positive definite.
pub(crate) fn inverse_upper_cholesky(mut h: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    if !cholesky_upper(&mut h, n) {
        return None;
    }
    let l = transpose(&h, n);
    let linv = tri_inv_lower(&l, n);
    let mut hinv = gram_of_lower(&linv, n);
    if !cholesky_upper(&mut hinv, n) || hinv.iter().any(|v| !v.is_finite()) {
        return None;
    }
    Some(hinv)
}
