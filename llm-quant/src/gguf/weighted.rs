//! The quantizers llama-quantize runs when it has an importance matrix: ggml's
//! `quantize_row_*_impl` with `quant_weights`, one weight per input column (the mean square
//! of that column's activations over the calibration text). Each block's error is weighted by
//! `qw[j] · √(σ² + x[j]²)`, so columns the model leans on are kept more faithfully; scales of
//! sub-blocks are themselves chosen by `make_qp_quants` under those weights. Ported in C's
//! operation order, like [`super::kquants`], and held to llama.cpp's bytes by a test.
//!
//! Q8_0, F16 and BF16 ignore the matrix, as ggml does.

// Indexed loops mirror ggml's C line for line, which is what keeps the bytes identical.
#![allow(clippy::needless_range_loop)]

use super::kquants::{f16_round, k4_finish, make_qkx2_quants, make_qx_quants, nearest_int, push_2bit, q3_k_finish, q6_k_blocks, GROUP_MAX_EPS, QK_K};
use super::legacy::{push_q5, QK};
use llm_core::weights::gguf::quants::GgmlType;

/// `make_qkx3_quants` with weights: `make_qkx2_quants` with the same arithmetic (the two differ
/// only where no weights are given, and in `max <= min`, equal to `max == min` once `min <= 0`).
fn make_qkx3_quants(nmax: i32, x: &[f32], w: &[f32], l: &mut [u8], rmin: f32, rdelta: f32, nstep: i32) -> (f32, f32) {
    make_qkx2_quants(nmax, x, w, l, rmin, rdelta, nstep, false)
}

/// `make_qp_quants`: non-negative values `x` (sub-block scales or mins) to codes `0..=nmax`
/// under weights `qw`, the scale refined by coordinate descent. Returns the scale.
fn make_qp_quants(nmax: i32, x: &[f32], l: &mut [u8], qw: &[f32]) -> f32 {
    let n = x.len();
    let max = x.iter().fold(0.0f32, |m, &v| if v > m { v } else { m });
    if max < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let mut iscale = nmax as f32 / max;
    for i in 0..n {
        l[i] = nearest_int(iscale * x[i]) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0f32;
    for i in 0..n {
        let diff = x[i] - scale * l[i] as f32;
        best_mse += qw[i] * diff * diff;
    }
    for is in -4..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1 * is as f32 + nmax as f32) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0f32;
        for i in 0..n {
            let q = nearest_int(iscale_is * x[i]).min(nmax);
            let diff = x[i] - scale_is * q as f32;
            mse += qw[i] * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let q = nearest_int(iscale * x[i]).min(nmax);
        l[i] = q as u8;
        sumlx += qw[i] * x[i] * q as f32;
        suml2 += qw[i] * q as f32 * q as f32;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for i in 0..n {
            let w = qw[i];
            let li = l[i] as f32;
            let mut slx = sumlx - w * x[i] * li;
            let mut sl2 = suml2 - w * li * li;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(x[i] * sl2 / slx).min(nmax);
                if new_l != l[i] as i32 {
                    slx += w * x[i] * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l[i] = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

fn sum_sq(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |s, v| s + v * v)
}

/// `qw[j] · √(σ² + x[j]²)`.
fn weights(qw: &[f32], x: &[f32], sigma2: f32) -> Vec<f32> {
    qw.iter().zip(x).map(|(q, v)| q * (sigma2 + v * v).sqrt()).collect()
}

/// Whether ggml quantizes `ty` differently under an importance matrix.
pub fn uses_importance(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K
    )
}

/// Quantizes one row `x` to `ty` under the importance `qw` (one per column of the row).
/// `None` for a type the matrix does not change (Q8_0, floats: use the plain quantizer).
pub fn quantize_row_weighted(ty: GgmlType, x: &[f32], qw: &[f32], out: &mut Vec<u8>) -> Option<()> {
    match ty {
        GgmlType::Q4_0 => legacy_row(x, qw, out, |xb, w, out| {
            let mut l = [0i8; QK];
            let d = make_qx_quants(8, xb, &mut l, Some(w));
            out.extend(f16_round(d).to_le_bytes());
            out.extend((0..QK / 2).map(|j| l[j] as u8 | ((l[j + QK / 2] as u8) << 4)));
        }),
        GgmlType::Q5_0 => legacy_row(x, qw, out, |xb, w, out| {
            let mut l = [0i8; QK];
            let d = make_qx_quants(16, xb, &mut l, Some(w));
            out.extend(f16_round(d).to_le_bytes());
            push_q5(&l.map(|v| v as u8), out);
        }),
        GgmlType::Q4_1 | GgmlType::Q5_1 => {
            let nmax = if ty == GgmlType::Q4_1 { 15 } else { 31 };
            legacy_row(x, qw, out, |xb, w, out| {
                let mut l = [0u8; QK];
                let (d, min) = make_qkx3_quants(nmax, xb, w, &mut l, -0.9, 0.05, 36);
                out.extend(f16_round(d).to_le_bytes());
                out.extend(f16_round(-min).to_le_bytes());
                if nmax == 15 {
                    out.extend((0..QK / 2).map(|j| l[j] | (l[j + QK / 2] << 4)));
                } else {
                    push_q5(&l, out);
                }
            })
        }
        GgmlType::Q2_K => x.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K)).for_each(|(x, qw)| q2_k_block(x, qw, out)),
        GgmlType::Q3_K => x.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K)).for_each(|(x, qw)| q3_k_block(x, qw, out)),
        GgmlType::Q4_K | GgmlType::Q5_K => {
            let nmax = if ty == GgmlType::Q4_K { 15 } else { 31 };
            x.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K)).for_each(|(x, qw)| k4_block(x, qw, nmax, out))
        }
        GgmlType::Q6_K => q6_k_blocks(x, Some(qw), out),
        _ => return None,
    }
    Some(())
}

/// The legacy impls: σ² is the mean square of the whole row, then block by block.
fn legacy_row(x: &[f32], qw: &[f32], out: &mut Vec<u8>, block: impl Fn(&[f32], &[f32], &mut Vec<u8>)) {
    let sigma2 = sum_sq(x) / x.len() as f32;
    for (xb, qb) in x.chunks_exact(QK).zip(qw.chunks_exact(QK)) {
        block(xb, &weights(qb, xb, sigma2), out);
    }
}

/// `quantize_row_q2_K_impl`, one super-block.
fn q2_k_block(x: &[f32], qw: &[f32], out: &mut Vec<u8>) {
    let sigma2 = sum_sq(x) / QK_K as f32;
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins, mut sw) = ([0f32; 16], [0f32; 16], [0f32; 16]);
    for j in 0..16 {
        let w = weights(&qw[16 * j..16 * j + 16], &x[16 * j..16 * j + 16], sigma2);
        sw[j] = w.iter().fold(0.0f32, |s, v| s + v);
        (scales[j], mins[j]) = make_qkx3_quants(3, &x[16 * j..16 * j + 16], &w, &mut l[16 * j..], -0.9, 0.05, 36);
    }
    let (mut ls, mut lm) = ([0u8; 16], [0u8; 16]);
    let d = f16_round(make_qp_quants(15, &scales, &mut ls, &sw));
    let dmin = f16_round(make_qp_quants(15, &mins, &mut lm, &sw));
    let sc: [u8; 16] = std::array::from_fn(|j| ls[j] | (lm[j] << 4));
    let (dm, mm) = (d.to_f32(), dmin.to_f32());
    for j in 0..16 {
        let dj = dm * (sc[j] & 0xf) as f32;
        if dj == 0.0 {
            continue;
        }
        let m = mm * (sc[j] >> 4) as f32;
        for ii in 0..16 {
            l[16 * j + ii] = nearest_int((x[16 * j + ii] + m) / dj).clamp(0, 3) as u8;
        }
    }
    out.extend(sc);
    push_2bit(&l, out);
    out.extend(d.to_le_bytes());
    out.extend(dmin.to_le_bytes());
}

/// `quantize_row_q3_K_impl`, one super-block.
fn q3_k_block(x: &[f32], qw: &[f32], out: &mut Vec<u8>) {
    let sigma2 = 2.0 * sum_sq(x) / QK_K as f32;
    let mut l = [0i8; QK_K];
    let (mut scales, mut sw) = ([0f32; 16], [0f32; 16]);
    for j in 0..16 {
        let w = weights(&qw[16 * j..16 * j + 16], &x[16 * j..16 * j + 16], sigma2);
        sw[j] = w.iter().fold(0.0f32, |s, v| s + v);
        scales[j] = make_qx_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..], Some(&w));
    }
    let mut ls = [0i8; 16];
    let d_block = make_qx_quants(32, &scales, &mut ls, Some(&sw));
    let mut sc = [0u8; 12];
    for (j, &q) in ls.iter().enumerate() {
        let q = q as i32;
        if j < 8 {
            sc[j] = (q & 0xf) as u8;
        } else {
            sc[j - 8] |= ((q & 0xf) << 4) as u8;
        }
        sc[j % 4 + 8] |= ((q >> 4) << (2 * (j / 4))) as u8;
    }
    q3_k_finish(x, &sc, f16_round(d_block), l, out);
}

/// `quantize_row_q4_K_impl` (`nmax` 15) and `quantize_row_q5_K_impl` (31), one super-block.
fn k4_block(x: &[f32], qw: &[f32], nmax: i32, out: &mut Vec<u8>) {
    let sigma2 = 2.0 * sum_sq(x) / QK_K as f32;
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins, mut sw) = ([0f32; 8], [0f32; 8], [0f32; 8]);
    for j in 0..8 {
        let w = weights(&qw[32 * j..32 * j + 32], &x[32 * j..32 * j + 32], sigma2);
        sw[j] = w.iter().fold(0.0f32, |s, v| s + v);
        (scales[j], mins[j]) = make_qkx3_quants(nmax, &x[32 * j..32 * j + 32], &w, &mut l[32 * j..], -0.9, 0.05, 36);
    }
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    let d = f16_round(make_qp_quants(63, &scales, &mut ls, &sw));
    let dmin = f16_round(make_qp_quants(63, &mins, &mut lm, &sw));
    let mut sc = [0u8; 12];
    for j in 0..8 {
        // make_qp_quants keeps codes <= 63 already; Q5_K's MIN(63, ·) changes nothing.
        let (s, m) = (ls[j], lm[j]);
        if j < 4 {
            sc[j] = s;
            sc[j + 4] = m;
        } else {
            sc[j + 4] = (s & 0xf) | ((m & 0xf) << 4);
            sc[j - 4] |= (s >> 4) << 6;
            sc[j] |= (m >> 4) << 6;
        }
    }
    k4_finish(x, d, dmin, &sc, l, nmax, out);
}
