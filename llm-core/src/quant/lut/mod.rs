//! Table-lookup kernels for the sub-byte formats that have no integer product to lean on
//! (GPTQ/RTN/HQQ codes of 1 to 4 bits, NF4/FP4): each group's (or absmax block's) 16 possible
//! weight values are computed once, with the reference dequantization's own arithmetic, and one
//! 16-lane `vpermps` turns 16 codes into their f32 weights, which meet the input in fused
//! multiply-adds and are never stored. No code is converted to float and no per-group scale is
//! applied afterwards: the group's scale and zero point live in its table.
//!
//! The weights are bit for bit [`super::QuantizedWeight::dequantize`]'s; a product differs from
//! the dot product with the dequantized row only in the order of its sums.
//!
//! Code layouts read (see `kernels.rs` and [`super::Fp4Weight`]):
//! - affine 4 bits: blocks of 32 codes in 16 bytes, low nibbles codes 0..16, high 16..32;
//! - affine 1 to 3 bits: a little-endian bit stream, so 16 codes fill `2·bits` whole bytes;
//! - NF4/FP4: element `2k` in the high nibble of byte `k`, `2k + 1` in the low one.
//!
//! 4-bit rows whose groups (blocks) are whole 64-code halves take the wide kernel ([`wide`]:
//! 128 codes per load); the others widen 16 bytes to 16 lanes per step. Either way the input is
//! reordered once per product to the order the kernel visits codes ([`Order`]), never the codes.

use std::arch::x86_64::*;

mod wide;

use wide::{Nibbles, Tables};

/// Proof that this CPU runs the kernels (AVX-512 F, BW, VL), checked once: the kernels are safe to
/// call through it.
#[derive(Clone, Copy)]
pub(super) struct Lut(());

impl Lut {
    /// The kernels, where the CPU has AVX-512 F, BW and VL.
    pub(super) fn detect() -> Option<Self> {
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let ok = || is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vl");
        OK.get_or_init(ok).then_some(Self(()))
    }

    /// How [`Self::affine_rows`] reads rows of `bits`-bit codes with these group bounds, if it
    /// does: 4 bits in whole 64-code halves through the wide kernel, else in whole 32-code
    /// blocks; 1 to 3 bits in whole 16-code chunks.
    pub(super) fn affine_order(bits: u32, bounds: &[usize]) -> Option<Order> {
        let on = |unit: usize| bounds.iter().all(|&b| b % unit == 0);
        match bits {
            4 if on(64) => Some(Order::Wide(Nibbles::Q4)),
            4 if on(32) => Some(Order::AsIs),
            1..=3 if on(16) => Some(Order::AsIs),
            _ => None,
        }
    }

    /// How [`Self::fp4_rows`] reads rows of `d_in` elements in absmax blocks of `block`, if it
    /// does: blocks of whole 64-element halves through the wide kernel, else of 32 elements.
    pub(super) fn fp4_order(d_in: usize, block: usize) -> Option<Order> {
        if block == 0 || !d_in.is_multiple_of(block) {
            None
        } else if block.is_multiple_of(64) {
            Some(Order::Wide(Nibbles::HighFirst))
        } else if block.is_multiple_of(32) {
            Some(Order::Pairs)
        } else {
            None
        }
    }

    /// One affine weight row against every input row: `out[r] = Σ_p xs[r, p]·w[p]` with
    /// `w[p] = (code[p] − zero_g)·scale_g`. row: packed codes, bounds: `n_groups + 1` group
    /// offsets, scales / zeros: `[n_groups]`, xs: `[rows, order.width(d_in)]` in `order`
    /// ([`Order::apply`]), out: `[rows]`.
    ///
    /// # Panics
    /// If `order` is not [`Self::affine_order`]'s for this layout, or the slices do not fit it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn affine_rows(self, order: Order, bits: u32, row: &[u8], bounds: &[usize], scales: &[f32], zeros: &[f32], xs: &[f32], out: &mut [f32]) {
        let d_in = bounds[bounds.len() - 1];
        let groups = bounds.len() - 1;
        assert!(Self::affine_order(bits, bounds) == Some(order) && scales.len() >= groups && zeros.len() >= groups);
        let width = order.width(d_in);
        assert!(row.len() * 8 >= d_in * bits as usize && xs.len() == out.len() * width);
        let layout = Affine { bits, row, bounds, scales, zeros };
        // SAFETY: `Lut` exists only where AVX-512 F, BW and VL run; the asserts above bound every read.
        match order {
            Order::Wide(_) => for_row_chunks(xs, width, out, |x| unsafe { layout.wide(x) }, |x| unsafe { layout.wide(x) }),
            _ => for_row_chunks(xs, width, out, |x| unsafe { layout.dot(x) }, |x| unsafe { layout.dot(x) }),
        }
    }

    /// One NF4/FP4 weight row against every input row: `out[r] = Σ_p xs[r, p]·code[q_p]·absmax[p / block]`.
    /// bytes: `[d_in / 2]`, absmax: `[d_in / block]`, xs: `[rows, order.width(d_in)]` in
    /// `order` ([`Order::apply`]), out: `[rows]`.
    ///
    /// # Panics
    /// If `order` is not [`Self::fp4_order`]'s for this layout, or the slices do not fit it.
    pub(super) fn fp4_rows(self, order: Order, code: &[f32; 16], bytes: &[u8], absmax: &[f32], xs: &[f32], out: &mut [f32]) {
        let d_in = 2 * bytes.len();
        assert!(!absmax.is_empty() && Self::fp4_order(d_in, d_in / absmax.len()) == Some(order));
        let width = order.width(d_in);
        assert!(xs.len() == out.len() * width);
        let layout = Fp4 { code, bytes, absmax };
        // SAFETY: as in `affine_rows`; the asserts bound every read.
        match order {
            Order::Wide(_) => for_row_chunks(xs, width, out, |x| unsafe { layout.wide(x) }, |x| unsafe { layout.wide(x) }),
            _ => for_row_chunks(xs, width, out, |x| unsafe { layout.dot(x) }, |x| unsafe { layout.dot(x) }),
        }
    }
}

/// The order a kernel reads a product's inputs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Order {
    /// As given.
    AsIs,
    /// Per 32 inputs, the 16 at even positions, then the 16 at odd ones (NF4/FP4 bytes' order).
    Pairs,
    /// The wide kernel's order for these nibbles, rows padded to whole 128s ([`wide::order`]).
    Wide(Nibbles),
}

impl Order {
    /// Values per reordered input row of `d_in` inputs.
    pub(super) fn width(self, d_in: usize) -> usize {
        match self {
            Self::Wide(_) => wide::padded(d_in),
            _ => d_in,
        }
    }

    /// xs `[rows, d_in]` in this order -> `[rows, self.width(d_in)]`.
    pub(super) fn apply(self, xs: &[f32], d_in: usize) -> std::borrow::Cow<'_, [f32]> {
        match self {
            Self::AsIs => xs.into(),
            Self::Pairs => deinterleave(xs).into(),
            Self::Wide(nibbles) => wide::order(xs, d_in, nibbles).into(),
        }
    }
}

/// `xs` `[rows, d_in]` (d_in a multiple of 32) in the order NF4/FP4 bytes hold their elements:
/// per 32 inputs, the 16 at even positions, then the 16 at odd ones.
fn deinterleave(xs: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; xs.len()];
    for (dst, src) in out.chunks_exact_mut(32).zip(xs.chunks_exact(32)) {
        for i in 0..16 {
            dst[i] = src[2 * i];
            dst[16 + i] = src[2 * i + 1];
        }
    }
    out
}

/// Runs `dot4` over input rows four at a time (each decoded weight vector then feeds four
/// rows), `dot1` over the rest. xs: `[rows, d_in]`, out: `[rows]`.
fn for_row_chunks(xs: &[f32], d_in: usize, out: &mut [f32], dot4: impl Fn([&[f32]; 4]) -> [f32; 4], dot1: impl Fn([&[f32]; 1]) -> [f32; 1]) {
    let rows = out.len();
    let mut r = 0;
    while r + 4 <= rows {
        let y = dot4(std::array::from_fn(|i| &xs[(r + i) * d_in..(r + i + 1) * d_in]));
        out[r..r + 4].copy_from_slice(&y);
        r += 4;
    }
    for r in r..rows {
        out[r] = dot1([&xs[r * d_in..(r + 1) * d_in]])[0];
    }
}

/// An affine row's codes and group statistics.
#[derive(Clone, Copy)]
struct Affine<'a> {
    bits: u32,
    row: &'a [u8],
    bounds: &'a [usize],
    scales: &'a [f32],
    zeros: &'a [f32],
}

impl Affine<'_> {
    /// The row (4-bit, groups of whole 64-code halves) against `N` input rows in
    /// [`wide::order`]'s layout.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn wide<const N: usize>(&self, x: [&[f32]; N]) -> [f32; N] {
        let d_in = self.bounds[self.bounds.len() - 1];
        wide::dot(self.row, d_in, &mut AffineTables { row: self, group: 0 }, x)
    }

    /// The row against `N` input rows of `d_in` values each.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn dot<const N: usize>(&self, x: [&[f32]; N]) -> [f32; N] {
        let mut acc = [[_mm512_setzero_ps(); 2]; N];
        let stream = Stream::new(self.bits);
        for g in 0..self.bounds.len() - 1 {
            let table = affine_table(self.bits, self.scales[g], self.zeros[g]);
            let (start, end) = (self.bounds[g], self.bounds[g + 1]);
            if self.bits == 4 {
                for b in start / 32..end / 32 {
                    // 16 bytes -> 16 lanes; `vpermps` reads each lane's low nibble only.
                    let v = _mm512_cvtepu8_epi32(_mm_loadu_si128(self.row.as_ptr().add(16 * b).cast()));
                    let w = [_mm512_permutexvar_ps(v, table), _mm512_permutexvar_ps(_mm512_srli_epi32::<4>(v), table)];
                    fma_into(&mut acc, &w, &x, 32 * b);
                }
            } else {
                let mut c = start / 16;
                while c + 2 <= end / 16 {
                    let w = [_mm512_permutexvar_ps(stream.codes(self.row, c), table), _mm512_permutexvar_ps(stream.codes(self.row, c + 1), table)];
                    fma_into(&mut acc, &w, &x, 16 * c);
                    c += 2;
                }
                if c < end / 16 {
                    let w = _mm512_permutexvar_ps(stream.codes(self.row, c), table);
                    for (a, xr) in acc.iter_mut().zip(&x) {
                        a[0] = _mm512_fmadd_ps(w, _mm512_loadu_ps(xr.as_ptr().add(16 * c)), a[0]);
                    }
                }
            }
        }
        acc.map(|[a, b]| _mm512_reduce_add_ps(_mm512_add_ps(a, b)))
    }
}

/// `acc[r][i] += w[i]·x[r][at + 16i .. at + 16i + 16]` for both halves of 32 inputs.
#[inline(always)]
unsafe fn fma_into<const N: usize>(acc: &mut [[__m512; 2]; N], w: &[__m512; 2], x: &[&[f32]; N], at: usize) {
    for (a, xr) in acc.iter_mut().zip(x) {
        let p = xr.as_ptr().add(at);
        a[0] = _mm512_fmadd_ps(w[0], _mm512_loadu_ps(p), a[0]);
        a[1] = _mm512_fmadd_ps(w[1], _mm512_loadu_ps(p.add(16)), a[1]);
    }
}

/// Lane `j`: `(j mod 2^bits − zero)·scale`, the reference dequantization of code `j mod 2^bits`.
/// Repeating the table above `2^bits` lets a lane keep the next code's bits above its own.
#[inline(always)]
unsafe fn affine_table(bits: u32, scale: f32, zero: f32) -> __m512 {
    let j = _mm512_and_si512(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32((1 << bits) - 1));
    _mm512_mul_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(j), _mm512_set1_ps(zero)), _mm512_set1_ps(scale))
}

/// Shifts that spread 16 codes of a bit stream over 16 lanes.
struct Stream {
    bits: usize,
    /// Qword `j`: `2j·bits`, bringing codes `2j` and `2j + 1` to its low bits.
    pair: __m512i,
    /// Dword `i`: `(i mod 2)·bits`, bringing the odd code of each pair down.
    odd: __m512i,
    /// The `2·bits` bytes of 16 codes.
    load: __mmask16,
}

impl Stream {
    #[inline(always)]
    unsafe fn new(bits: u32) -> Self {
        let b = i64::from(bits);
        let pair = _mm512_setr_epi64(0, 2 * b, 4 * b, 6 * b, 8 * b, 10 * b, 12 * b, 14 * b);
        let o = bits as i32;
        let odd = _mm512_setr_epi32(0, o, 0, o, 0, o, 0, o, 0, o, 0, o, 0, o, 0, o);
        Self { bits: bits as usize, pair, odd, load: (1 << (2 * bits)) - 1 }
    }

    /// Codes `16c .. 16c + 16` of `row`, one per lane in its low bits (the following codes'
    /// bits above them).
    #[inline(always)]
    unsafe fn codes(&self, row: &[u8], c: usize) -> __m512i {
        // 16 codes fill 2·bits whole bytes: a masked load reads exactly those, so the last
        // chunk of a row needs no copy (masked-off bytes are not accessed).
        let bytes = _mm_maskz_loadu_epi8(self.load, row.as_ptr().add(2 * self.bits * c).cast());
        let pairs = _mm512_srlv_epi64(_mm512_broadcastq_epi64(bytes), self.pair);
        // Each qword's low dword into both of its dwords, then the odd one shifted down.
        _mm512_srlv_epi32(_mm512_shuffle_epi32::<_MM_PERM_CCAA>(pairs), self.odd)
    }
}

/// An NF4/FP4 row: its bytes, code values and absmax per block.
#[derive(Clone, Copy)]
struct Fp4<'a> {
    code: &'a [f32; 16],
    bytes: &'a [u8],
    absmax: &'a [f32],
}

impl Fp4<'_> {
    /// The row (absmax blocks of whole 64-element halves) against `N` input rows in
    /// [`wide::order`]'s layout.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn wide<const N: usize>(&self, x: [&[f32]; N]) -> [f32; N] {
        let d_in = 2 * self.bytes.len();
        let mut tables = Fp4Tables { code: _mm512_loadu_ps(self.code.as_ptr()), absmax: self.absmax, block: d_in / self.absmax.len() };
        wide::dot(self.bytes, d_in, &mut tables, x)
    }

    /// The row against `N` deinterleaved input rows.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn dot<const N: usize>(&self, x: [&[f32]; N]) -> [f32; N] {
        let mut acc = [[_mm512_setzero_ps(); 2]; N];
        let code = _mm512_loadu_ps(self.code.as_ptr());
        let per_block = 2 * self.bytes.len() / self.absmax.len() / 32;
        for (blk, &scale) in self.absmax.iter().enumerate() {
            // `code[q]·absmax`, as the reference dequantization multiplies.
            let table = _mm512_mul_ps(code, _mm512_set1_ps(scale));
            for k in blk * per_block..(blk + 1) * per_block {
                let v = _mm512_cvtepu8_epi32(_mm_loadu_si128(self.bytes.as_ptr().add(16 * k).cast()));
                // High nibbles are the even elements, low nibbles the odd ones.
                let w = [_mm512_permutexvar_ps(_mm512_srli_epi32::<4>(v), table), _mm512_permutexvar_ps(v, table)];
                fma_into(&mut acc, &w, &x, 32 * k);
            }
        }
        acc.map(|[a, b]| _mm512_reduce_add_ps(_mm512_add_ps(a, b)))
    }
}

/// An affine row's tables, found by walking its groups forwards.
struct AffineTables<'r, 'a> {
    row: &'r Affine<'a>,
    /// The group of the last half asked for.
    group: usize,
}

impl AffineTables<'_, '_> {
    #[inline(always)]
    unsafe fn at(&mut self, p: usize) -> __m512 {
        while self.row.bounds[self.group + 1] <= p {
            self.group += 1;
        }
        affine_table(4, self.row.scales[self.group], self.row.zeros[self.group])
    }
}

impl Tables for AffineTables<'_, '_> {
    #[inline(always)]
    unsafe fn halves(&mut self, c: usize, full: bool) -> [__m512; 2] {
        let lo = self.at(128 * c);
        [lo, if full { self.at(128 * c + 64) } else { lo }]
    }
}

/// An NF4/FP4 row's tables: `code[q]·absmax`, as the reference dequantization multiplies.
struct Fp4Tables<'a> {
    code: __m512,
    absmax: &'a [f32],
    block: usize,
}

impl Tables for Fp4Tables<'_> {
    #[inline(always)]
    unsafe fn halves(&mut self, c: usize, full: bool) -> [__m512; 2] {
        let at = |p: usize| _mm512_mul_ps(self.code, _mm512_set1_ps(self.absmax[p / self.block]));
        let lo = at(128 * c);
        [lo, if full { at(128 * c + 64) } else { lo }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kernels::{dequant_span, pack_codes, row_bytes};

    /// `n` seeded values in `[-1, 1)`.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        crate::weights::random::noise(seed, n, 1.0)
    }

    /// `Σ x·w` in f64.
    fn exact(x: &[f32], w: &[f32]) -> f64 {
        x.iter().zip(w).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum()
    }

    /// Group bounds: equal groups of `group` over `d_in`.
    fn even(d_in: usize, group: usize) -> Vec<usize> {
        (0..=d_in / group).map(|g| g * group).collect()
    }

    #[test]
    fn affine_rows_equal_the_dot_with_the_dequantized_row() {
        let Some(lut) = Lut::detect() else { return };
        // Narrow (16- and 32-code) layouts, wide ones with whole and half last chunks, groups
        // of 64 to 192, and uneven groups as act-order stores them.
        let layouts = [even(64, 16), even(96, 32), even(144, 48), even(32, 32), even(256, 64), even(128, 128), even(576, 64), even(320, 64), even(384, 192), vec![0, 64, 192, 256, 448]];
        for bits in 1..=4u32 {
            for bounds in &layouts {
                let Some(order) = Lut::affine_order(bits, bounds) else {
                    assert!(bits == 4 && bounds.iter().any(|b| b % 32 != 0), "{bits} bits, {bounds:?}");
                    continue;
                };
                let d_in = bounds[bounds.len() - 1];
                let codes: Vec<u8> = values(d_in, u64::from(bits)).iter().map(|v| ((v + 1.0) * 7.99) as u8 % (1 << bits)).collect();
                let mut row = vec![0u8; row_bytes(bits, d_in)];
                pack_codes(bits, &codes, &mut row);
                let groups = bounds.len() - 1;
                let scales: Vec<f32> = values(groups, 5).iter().map(|v| 0.01 + v.abs() * 0.1).collect();
                let zeros: Vec<f32> = values(groups, 6).iter().map(|v| (v + 1.0) * (1 << bits) as f32 / 2.0).collect();
                let mut w = vec![0f32; d_in];
                for g in 0..groups {
                    dequant_span(bits, &row, bounds[g], bounds[g + 1], scales[g], zeros[g], &mut w);
                }
                for rows in [1, 3, 4, 6] {
                    let xs: Vec<f32> = values(rows * d_in, 9).iter().map(|v| v * 2.0).collect();
                    let mut out = vec![0f32; rows];
                    lut.affine_rows(order, bits, &row, bounds, &scales, &zeros, &order.apply(&xs, d_in), &mut out);
                    for (r, &y) in out.iter().enumerate() {
                        let want = exact(&xs[r * d_in..(r + 1) * d_in], &w);
                        // f32 sums of <= 576 products of size <= 2·1.6·8: a few ulps of 1e2.
                        assert!((f64::from(y) - want).abs() < 2e-4 * (1.0 + want.abs()), "{bits} bits, {order:?}, {bounds:?}, row {r}: {y} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn fp4_rows_equal_the_dot_with_the_dequantized_row() {
        let Some(lut) = Lut::detect() else { return };
        let code: [f32; 16] = std::array::from_fn(|j| j as f32 / 7.5 - 1.0);
        for (d_in, block) in [(64usize, 64usize), (128, 32), (256, 128), (576, 64), (192, 64), (384, 128)] {
            let bytes: Vec<u8> = values(d_in / 2, 3).iter().map(|v| ((v + 1.0) * 127.9) as u8).collect();
            let absmax: Vec<f32> = values(d_in / block, 4).iter().map(|v| v.abs() + 0.1).collect();
            let w: Vec<f32> = (0..d_in)
                .map(|i| {
                    let b = bytes[i / 2];
                    let q = if i % 2 == 0 { b >> 4 } else { b & 0xF };
                    code[q as usize] * absmax[i / block]
                })
                .collect();
            for rows in [1, 5] {
                let xs = values(rows * d_in, 8);
                let mut out = vec![0f32; rows];
                let order = Lut::fp4_order(d_in, block).expect("whole blocks of 32");
                lut.fp4_rows(order, &code, &bytes, &absmax, &order.apply(&xs, d_in), &mut out);
                for (r, &y) in out.iter().enumerate() {
                    let want = exact(&xs[r * d_in..(r + 1) * d_in], &w);
                    assert!((f64::from(y) - want).abs() < 1e-4 * (1.0 + want.abs()), "d_in {d_in}, block {block}, {order:?}, row {r}: {y} vs {want}");
                }
            }
        }
    }
}
