//! AVX-512 kernels of a Q8_0 row against float rows (the tied LM head's product, whose input
//! stays f32: see [`super::GgmlWeight::matmul_f32_input`]): each block's 32 codes widened to
//! f32 in two 16-lane registers, half the instructions of the AVX2 kernels.
//!
//! Every kernel gives each (weight row, input row) pair the same arithmetic in the same order:
//! per block `s = q[16..32]·x[16..32] + q[0..16]·x[0..16]` (a multiply, then a fused
//! multiply-add, lane by lane), `acc = d·s + acc` over the blocks, then `acc`'s 16 lanes
//! summed by `_mm512_reduce_add_ps`. So the batched kernels (four input rows, or four weight
//! rows) return what the one-row kernel returns, bit for bit.
//!
//! # Safety
//! Every kernel needs [`available`]'s instruction sets, weight rows of whole Q8_0 blocks and
//! float rows of as many values.

#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

/// Bytes of a Q8_0 block: an f16 step and 32 codes.
const BLOCK: usize = 34;

/// Whether this CPU runs these kernels (AVX-512 F, F16C), checked once.
pub fn available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("f16c"))
}

/// The block's step in all 16 lanes.
#[inline(always)]
unsafe fn step(blk: *const u8) -> __m512 {
    let bits = u16::from_le_bytes([*blk, *blk.add(1)]);
    _mm512_cvtph_ps(_mm256_set1_epi16(bits as i16))
}

/// The block's 32 codes as f32: values 0..16, then 16..32.
#[inline(always)]
unsafe fn codes(blk: *const u8) -> [__m512; 2] {
    let widen = |p: *const u8| _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p.cast())));
    [widen(blk.add(2)), widen(blk.add(18))]
}

/// `q[16..32]·x[16..32] + q[0..16]·x[0..16]` lane by lane, `x` the block's 32 floats.
#[inline(always)]
unsafe fn block_dot(q: &[__m512; 2], x: *const f32) -> __m512 {
    _mm512_fmadd_ps(q[1], _mm512_loadu_ps(x.add(16)), _mm512_mul_ps(q[0], _mm512_loadu_ps(x)))
}

/// A Q8_0 row · a float row.
#[target_feature(enable = "avx512f,f16c")]
pub unsafe fn q8_0_f32(w: &[u8], x: &[f32]) -> f32 {
    debug_assert!(w.len() / BLOCK * 32 == x.len());
    let mut acc = _mm512_setzero_ps();
    for b in 0..w.len() / BLOCK {
        let blk = w.as_ptr().add(b * BLOCK);
        acc = _mm512_fmadd_ps(step(blk), block_dot(&codes(blk), x.as_ptr().add(32 * b)), acc);
    }
    _mm512_reduce_add_ps(acc)
}

/// A Q8_0 row · four float rows (each block's codes widened once).
#[target_feature(enable = "avx512f,f16c")]
pub unsafe fn q8_0_f32_x4(w: &[u8], x: [&[f32]; 4]) -> [f32; 4] {
    debug_assert!(x.iter().all(|r| w.len() / BLOCK * 32 == r.len()));
    let mut acc = [_mm512_setzero_ps(); 4];
    for b in 0..w.len() / BLOCK {
        let blk = w.as_ptr().add(b * BLOCK);
        let (d, q) = (step(blk), codes(blk));
        for r in 0..4 {
            acc[r] = _mm512_fmadd_ps(d, block_dot(&q, x[r].as_ptr().add(32 * b)), acc[r]);
        }
    }
    std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]))
}

/// Four Q8_0 rows · one float row: four independent running sums (one row's sums chain every
/// block on the previous `vfmadd`), and the next four rows, stored right after these, fetched
/// ahead (the rows are read block by block in turn, which the hardware prefetchers do not follow).
#[target_feature(enable = "avx512f,f16c")]
pub unsafe fn q8_0_f32_w4(w: [&[u8]; 4], x: &[f32]) -> [f32; 4] {
    debug_assert!(w.iter().all(|r| r.len() / BLOCK * 32 == x.len()));
    let mut acc = [_mm512_setzero_ps(); 4];
    let next = w[3].as_ptr().wrapping_add(w[3].len());
    for b in 0..w[0].len() / BLOCK {
        super::avx2::prefetch(next.wrapping_add(4 * BLOCK * b), 4 * BLOCK);
        let xb = x.as_ptr().add(32 * b);
        for r in 0..4 {
            let blk = w[r].as_ptr().add(b * BLOCK);
            acc[r] = _mm512_fmadd_ps(step(blk), block_dot(&codes(blk), xb), acc[r]);
        }
    }
    std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]))
}
