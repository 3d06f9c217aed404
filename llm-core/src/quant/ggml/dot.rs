//! `Σ w·x` of one stored GGML row against one quantized activation row ([`ActRow`]), in
//! integer arithmetic per 32 values: the weight codes of a block are unpacked to `i8` in
//! registers, multiplied with the activation codes and summed in `i32`; the block's scales
//! (and minimums) are applied once per 32 (or per 16) values in f32.
//!
//! With `w = d·q + m` per block (or `d·(q − offset)`) and `x = dₓ·qₓ`:
//! `Σ w·x = d·dₓ·Σ q·qₓ + m·dₓ·Σ qₓ`, where `Σ qₓ` comes with the activation row. Q4_K, Q5_K
//! and Q6_K take activations quantized per 256 values ([`ActRowK`]) and sum a whole
//! super-block in integers before one f32 scaling. The integer sums are exact; only the
//! per-block f32 products round, so a kernel differs from the f64 sum of the dequantized weight
//! times the dequantized activations by f32 rounding alone.

use super::act::{ActRow, ActRowK, QuantizedRow, QA, QK};
use crate::weights::gguf::quants::{k_scale_min, q3_k_scales, GgmlType, QK_K};

/// `Σ c[k]·x[k]` over 16 codes.
#[inline(always)]
fn idot16(c: &[i8], x: &[i8]) -> i32 {
    let mut s = 0i32;
    for k in 0..16 {
        s += i32::from(c[k]) * i32::from(x[k]);
    }
    s
}

/// `(Σ over values 0..16, Σ over values 16..32)` of `c[k]·x[k]`: the two 16-value sub-blocks.
#[inline(always)]
fn idot_halves(c: &[i8; 32], x: &[i8]) -> (i32, i32) {
    (idot16(&c[..16], &x[..16]), idot16(&c[16..], &x[16..32]))
}

#[inline(always)]
fn idot32(c: &[i8; 32], x: &[i8]) -> i32 {
    let (lo, hi) = idot_halves(c, x);
    lo + hi
}

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// The dot product of a stored row of `ty` (whole blocks, a type that pairs with blocks of 32)
/// with `a`.
#[inline(always)]
pub(super) fn row_dot(ty: GgmlType, w: &[u8], a: &ActRow) -> f32 {
    match ty {
        GgmlType::Q4_0 => legacy::<18>(w, a, |blk, c| {
            nibbles(&blk[2..18], c, 8);
            (f16_at(blk, 0), 0.0)
        }),
        GgmlType::Q4_1 => legacy::<20>(w, a, |blk, c| {
            nibbles(&blk[4..20], c, 0);
            (f16_at(blk, 0), f16_at(blk, 2))
        }),
        GgmlType::Q5_0 => legacy::<22>(w, a, |blk, c| {
            five_bits(&blk[2..22], c, 16);
            (f16_at(blk, 0), 0.0)
        }),
        GgmlType::Q5_1 => legacy::<24>(w, a, |blk, c| {
            five_bits(&blk[4..24], c, 0);
            (f16_at(blk, 0), f16_at(blk, 2))
        }),
        GgmlType::Q8_0 => legacy::<34>(w, a, |blk, c| {
            for (d, &q) in c.iter_mut().zip(&blk[2..34]) {
                *d = q as i8;
            }
            (f16_at(blk, 0), 0.0)
        }),
        GgmlType::Q2_K => q2_k(w, a),
        GgmlType::Q3_K => q3_k(w, a),
        _ => unreachable!("GgmlWeight admits only the quantized block types; K-quants from Q4_K take row_dot_k"),
    }
}

/// Codes of a Q4 block: low nibbles are values 0..16, high nibbles 16..32.
#[inline(always)]
fn nibbles(qs: &[u8], c: &mut [i8; 32], offset: i8) {
    for k in 0..16 {
        c[k] = (qs[k] & 0xF) as i8 - offset;
        c[k + 16] = (qs[k] >> 4) as i8 - offset;
    }
}

/// Codes of a Q5 block `[qh u32][qs 16]`: as Q4 with the fifth bit of value `j` at bit `j`.
#[inline(always)]
fn five_bits(b: &[u8], c: &mut [i8; 32], offset: i8) {
    let qh = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let qs = &b[4..20];
    for k in 0..16 {
        c[k] = ((qs[k] & 0xF) | ((((qh >> k) & 1) as u8) << 4)) as i8 - offset;
        c[k + 16] = ((qs[k] >> 4) | ((((qh >> (k + 16)) & 1) as u8) << 4)) as i8 - offset;
    }
}

/// Blocks of 32 with one scale and one minimum: `unpack` fills the codes and returns `(d, m)`.
#[inline(always)]
fn legacy<const SIZE: usize>(w: &[u8], a: &ActRow, unpack: impl Fn(&[u8], &mut [i8; 32]) -> (f32, f32)) -> f32 {
    let mut acc = 0f32;
    let mut c = [0i8; 32];
    for (b, blk) in w.chunks_exact(SIZE).enumerate() {
        let (d, m) = unpack(blk, &mut c);
        let i = idot32(&c, &a.qs[QA * b..QA * b + QA]);
        let dx = a.d[b];
        acc += d * dx * i as f32;
        if m != 0.0 {
            acc += m * dx * (a.sums[2 * b] + a.sums[2 * b + 1]) as f32;
        }
    }
    acc
}

/// Q2_K `[scales 16][qs 64][d][dmin]`: 32-value unit `u` is bits `2(u % 4)` of `qs[32(u / 4)..]`.
#[inline(always)]
fn q2_k(w: &[u8], a: &ActRow) -> f32 {
    let mut acc = 0f32;
    let mut c = [0i8; 32];
    for (sb, blk) in w.chunks_exact(84).enumerate() {
        let (scales, qs) = (&blk[..16], &blk[16..80]);
        let (d, dmin) = (f16_at(blk, 80), f16_at(blk, 82));
        for u in 0..8 {
            let (h, j) = (u / 4, u % 4);
            for k in 0..32 {
                c[k] = ((qs[32 * h + k] >> (2 * j)) & 3) as i8;
            }
            let b = sb * 8 + u;
            let (lo, hi) = idot_halves(&c, &a.qs[QA * b..QA * b + QA]);
            let (s0, s1) = (scales[2 * u], scales[2 * u + 1]);
            let isc = i32::from(s0 & 0xF) * lo + i32::from(s1 & 0xF) * hi;
            let imin = i32::from(s0 >> 4) * a.sums[2 * b] + i32::from(s1 >> 4) * a.sums[2 * b + 1];
            acc += a.d[b] * (d * isc as f32 - dmin * imin as f32);
        }
    }
    acc
}

/// Q3_K `[hmask 32][qs 64][scales 12][d]`: low bits as Q2_K, bit `u` of `hmask[k]` clear subtracts 4.
#[inline(always)]
fn q3_k(w: &[u8], a: &ActRow) -> f32 {
    let mut acc = 0f32;
    let mut c = [0i8; 32];
    for (sb, blk) in w.chunks_exact(110).enumerate() {
        let (hmask, qs) = (&blk[..32], &blk[32..96]);
        let scales = q3_k_scales(&blk[96..108]);
        let d = f16_at(blk, 108);
        for u in 0..8 {
            let (h, j) = (u / 4, u % 4);
            for k in 0..32 {
                let low = ((qs[32 * h + k] >> (2 * j)) & 3) as i8;
                let clear = (((hmask[k] >> u) & 1) ^ 1) as i8;
                c[k] = low - 4 * clear;
            }
            let b = sb * 8 + u;
            let (lo, hi) = idot_halves(&c, &a.qs[QA * b..QA * b + QA]);
            let isc = i32::from(scales[2 * u]) * lo + i32::from(scales[2 * u + 1]) * hi;
            acc += a.d[b] * d * isc as f32;
        }
    }
    acc
}

/// Q4_K / Q5_K · a Q8_K row: unit `u` is nibble `u % 2` of `qs[32(u / 2)..]` (Q5_K: fifth bit
/// `u` of `qh[k]`). A super-block's sums are integers, `Σᵤ sc[u]·(q·x)ᵤ` and
/// `Σᵤ mn[u]·Σxᵤ`, scaled once by `d·dₓ` and `dmin·dₓ`.
#[inline(always)]
fn q45_k<const SIZE: usize>(w: &[u8], a: &ActRowK) -> f32 {
    let five = SIZE == 176;
    let mut acc = 0f32;
    let mut c = [0i8; 32];
    for (sb, blk) in w.chunks_exact(SIZE).enumerate() {
        let (d, dmin) = (f16_at(blk, 0), f16_at(blk, 2));
        let (sc, mn) = k_scale_min(&blk[4..16]);
        let (qh, qs) = if five { (&blk[16..48], &blk[48..176]) } else { (&blk[..0], &blk[16..144]) };
        let (mut isum, mut imin) = (0i32, 0i32);
        for u in 0..8 {
            let shift = 4 * (u % 2);
            let q = &qs[32 * (u / 2)..32 * (u / 2) + 32];
            for k in 0..32 {
                c[k] = ((q[k] >> shift) & 0xF) as i8;
            }
            if five {
                for k in 0..32 {
                    c[k] |= (((qh[k] >> u) & 1) << 4) as i8;
                }
            }
            let x = &a.qs[QK * sb + 32 * u..QK * sb + 32 * u + 32];
            isum += i32::from(sc[u]) * idot32(&c, x);
            imin += i32::from(mn[u]) * (i32::from(a.bsums[16 * sb + 2 * u]) + i32::from(a.bsums[16 * sb + 2 * u + 1]));
        }
        let dx = a.d[sb];
        acc += d * dx * isum as f32 - dmin * dx * imin as f32;
    }
    acc
}

/// Q6_K `[ql 128][qh 64][scales 16 (i8)][d]` · a Q8_K row: codes stored `+32`; a super-block's
/// integer sum `Σ s·(q·x) − 32·Σ s·Σx` (per 16 values) scaled once by `d·dₓ`.
#[inline(always)]
fn q6_k(w: &[u8], a: &ActRowK) -> f32 {
    let mut acc = 0f32;
    let mut c = [0i8; 32];
    for (sb, blk) in w.chunks_exact(210).enumerate() {
        let (ql, qh, scales) = (&blk[..128], &blk[128..192], &blk[192..208]);
        let d = f16_at(blk, 208);
        let mut isum = 0i32;
        for u in 0..8 {
            let (h, t) = (u / 4, u % 4);
            let low = &ql[64 * h + 32 * (t % 2)..][..32];
            let high = &qh[32 * h..32 * h + 32];
            for k in 0..32 {
                let l = (low[k] >> (4 * (t / 2))) & 0xF;
                let hb = (high[k] >> (2 * t)) & 3;
                c[k] = (l | hb << 4) as i8;
            }
            let (lo, hi) = idot_halves(&c, &a.qs[QK * sb + 32 * u..QK * sb + 32 * u + 32]);
            isum += i32::from(scales[2 * u] as i8) * lo + i32::from(scales[2 * u + 1] as i8) * hi;
        }
        let offset: i32 = (0..16).map(|k| i32::from(scales[k] as i8) * i32::from(a.bsums[16 * sb + k])).sum();
        acc += d * a.d[sb] * (isum - 32 * offset) as f32;
    }
    acc
}

/// Whether weights of `ty` take their activations in super-blocks of 256 ([`ActRowK`], as
/// llama.cpp pairs them with Q8_K) rather than blocks of 32 ([`ActRow`]).
pub fn pairs_with_q8_k(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K)
}

/// The dot product of a stored row of `ty` (whole blocks) with `a`, quantized for `ty`
/// ([`QuantizedRow::new`]); `None` if `a` holds the other kind of activation blocks.
pub fn dot(ty: GgmlType, w: &[u8], a: &QuantizedRow) -> Option<f32> {
    match (a, pairs_with_q8_k(ty)) {
        (QuantizedRow::Blocks(a), false) => Some(row_dot(ty, w, a)),
        (QuantizedRow::SuperBlocks(a), true) => Some(row_dot_k(ty, w, a)),
        _ => None,
    }
}

/// The dot product of a stored row of a type [`pairs_with_q8_k`] with `a`.
#[inline(always)]
pub(super) fn row_dot_k(ty: GgmlType, w: &[u8], a: &ActRowK) -> f32 {
    match ty {
        GgmlType::Q4_K => q45_k::<144>(w, a),
        GgmlType::Q5_K => q45_k::<176>(w, a),
        GgmlType::Q6_K => q6_k(w, a),
        _ => unreachable!("only the types that pair with Q8_K"),
    }
}

/// Elements per block of a quantized type, if it is one [`row_dot`] serves.
pub fn block_elems(ty: GgmlType) -> Option<usize> {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => Some(32),
        GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => Some(QK_K),
        _ => None,
    }
}
