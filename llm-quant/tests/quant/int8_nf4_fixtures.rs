//! int8 (absmax, zero-point, LLM.int8 vectorwise) and NF4/FP4 against the torch/bitsandbytes
//! fixture `e_quant/quant.safetensors` (made by `reference/gen_fixtures.py`, section e).
use llm_quant::error::QuantError;
use llm_quant::int8::{int8_vectorwise, outlier_columns, quantize_int8, Granularity, Int8Scheme};
use llm_quant::nf4::{code_table, dynamic_map_signed, quantize_fp4, Fp4Kind, DOUBLE_QUANT_BLOCKSIZE};
use llm_testkit::fixture;
use safetensors::SafeTensors;

struct Fixture(Vec<u8>);

impl Fixture {
    fn load() -> Self {
        let path = fixture("e_quant/quant.safetensors");
        Self(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }
    fn raw(&self, name: &str) -> Vec<u8> {
        let st = SafeTensors::deserialize(&self.0).expect("fixture parses");
        st.tensor(name).unwrap_or_else(|_| panic!("{name} missing")).data().to_vec()
    }
    fn f32(&self, name: &str) -> Vec<f32> {
        self.raw(name).chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
    }
    fn i8(&self, name: &str) -> Vec<i8> {
        self.raw(name).iter().map(|&b| b as i8).collect()
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn mismatches<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

fn check_int8(scheme: Int8Scheme, granularity: Granularity) {
    let fx = Fixture::load();
    let x = fx.f32("x");
    let q = quantize_int8(&x, 8, 64, scheme, granularity).unwrap();
    let tag = match granularity {
        Granularity::PerTensor => "per_tensor",
        _ => "per_row",
    };
    let prefix = match scheme {
        Int8Scheme::Absmax => "absmax",
        Int8Scheme::ZeroPoint => "zeropoint",
    };
    let codes = fx.i8(&format!("{prefix}.{tag}.q"));
    assert_eq!(mismatches(&q.codes, &codes), 0, "{prefix} {tag} codes");
    assert_eq!(q.scales, fx.f32(&format!("{prefix}.{tag}.scale")), "{prefix} {tag} scales");
    match scheme {
        Int8Scheme::Absmax => assert!(q.zero_points.is_none()),
        Int8Scheme::ZeroPoint => {
            assert_eq!(q.zero_points.as_deref().unwrap(), fx.f32(&format!("{prefix}.{tag}.zero_point")))
        }
    }
    let diff = max_abs_diff(&q.dequantize(), &fx.f32(&format!("{prefix}.{tag}.dequant")));
    println!("{prefix} {tag}: dequant max abs diff {diff:e}");
    // Same f32 operations in the same order as torch: bit-identical, not just close.
    assert_eq!(diff, 0.0, "{prefix} {tag} dequant differs by {diff}");
}

#[test]
fn absmax_per_tensor_matches_torch() {
    check_int8(Int8Scheme::Absmax, Granularity::PerTensor);
}

#[test]
fn absmax_per_row_matches_torch() {
    check_int8(Int8Scheme::Absmax, Granularity::PerRow);
}

#[test]
fn zero_point_per_tensor_matches_torch() {
    check_int8(Int8Scheme::ZeroPoint, Granularity::PerTensor);
}

#[test]
fn zero_point_per_row_matches_torch() {
    check_int8(Int8Scheme::ZeroPoint, Granularity::PerRow);
}

#[test]
fn scale_index_orders_groups_row_major() {
    let x: Vec<f32> = (0..24).map(|i| i as f32 - 11.5).collect();
    let q = quantize_int8(&x, 2, 12, Int8Scheme::Absmax, Granularity::PerGroup(4)).unwrap();
    assert_eq!(q.scales.len(), 6);
    assert_eq!(q.scale_index(0, 0), 0);
    assert_eq!(q.scale_index(0, 11), 2);
    assert_eq!(q.scale_index(1, 4), 4);
    let pr = quantize_int8(&x, 2, 12, Int8Scheme::Absmax, Granularity::PerRow).unwrap();
    assert_eq!(pr.scale_index(1, 7), 1);
    let pt = quantize_int8(&x, 2, 12, Int8Scheme::Absmax, Granularity::PerTensor).unwrap();
    assert_eq!(pt.scale_index(1, 7), 0);
}

#[test]
fn per_group_round_trip_is_within_half_a_step() {
    let x = Fixture::load().f32("x");
    for scheme in [Int8Scheme::Absmax, Int8Scheme::ZeroPoint] {
        let q = quantize_int8(&x, 8, 64, scheme, Granularity::PerGroup(16)).unwrap();
        assert_eq!(q.scales.len(), 8 * 4);
        let dq = q.dequantize();
        for r in 0..8 {
            for c in 0..64 {
                let step = 1.0 / q.scales[q.scale_index(r, c)];
                let err = (dq[r * 64 + c] - x[r * 64 + c]).abs();
                assert!(err <= 0.5 * step * (1.0 + 1e-5), "{scheme:?} ({r},{c}): error {err} > half step {step}");
            }
        }
        // Finer groups never lose to one scale per row.
        let per_row = quantize_int8(&x, 8, 64, scheme, Granularity::PerRow).unwrap().dequantize();
        let sq = |d: &[f32]| d.iter().zip(&x).map(|(a, b)| (a - b) * (a - b)).sum::<f32>();
        assert!(sq(&dq) <= sq(&per_row), "{scheme:?}: per-group error above per-row");
    }
}

#[test]
fn constant_and_zero_groups_do_not_divide_by_zero() {
    let x = [0.0, 0.0, 0.0, 0.0, 0.3, 0.3, 0.3, 0.3];
    for scheme in [Int8Scheme::Absmax, Int8Scheme::ZeroPoint] {
        let q = quantize_int8(&x, 2, 4, scheme, Granularity::PerRow).unwrap();
        let dq = q.dequantize();
        assert!(dq.iter().all(|v| v.is_finite()), "{scheme:?}: {dq:?}");
        assert_eq!(&dq[..4], &[0.0; 4], "{scheme:?}: zeros stay exact");
        assert!(dq[4..].iter().all(|v| (v - 0.3).abs() < 1e-3), "{scheme:?}: constant row {dq:?}");
    }
}

#[test]
fn bad_int8_inputs_are_rejected() {
    let x = vec![0.5f32; 8 * 64];
    match quantize_int8(&x, 8, 64, Int8Scheme::Absmax, Granularity::PerGroup(7)) {
        Err(QuantError::Config { field, .. }) => assert_eq!(field, "group_size"),
        other => panic!("group 7 on 64 columns: {other:?}"),
    }
    assert!(matches!(
        quantize_int8(&x, 8, 64, Int8Scheme::Absmax, Granularity::PerGroup(0)),
        Err(QuantError::Config { .. })
    ));
    let mut nan = x.clone();
    nan[100] = f32::NAN;
    for scheme in [Int8Scheme::Absmax, Int8Scheme::ZeroPoint] {
        assert!(matches!(quantize_int8(&nan, 8, 64, scheme, Granularity::PerRow), Err(QuantError::NonFinite { .. })));
    }
    assert!(matches!(int8_vectorwise(&nan, 8, 64), Err(QuantError::NonFinite { .. })));
    // 1e6 overflows f16.
    let mut big = x.clone();
    big[3] = 1e6;
    assert!(matches!(int8_vectorwise(&big, 8, 64), Err(QuantError::NonFinite { .. })));
    assert!(matches!(quantize_int8(&x, 8, 63, Int8Scheme::Absmax, Granularity::PerRow), Err(QuantError::Shape { .. })));
    assert!(matches!(int8_vectorwise(&x, 7, 64), Err(QuantError::Shape { .. })));
}

#[test]
fn vectorwise_int8_matches_bitsandbytes() {
    let fx = Fixture::load();
    let x = fx.f32("x");
    let q = int8_vectorwise(&x, 8, 64).unwrap();
    let n = mismatches(&q.codes, &fx.i8("bnb.int8_vectorwise.q"));
    println!("vectorwise int8 vs bnb: {n} mismatches of {}", q.codes.len());
    assert_eq!(n, 0);
    assert_eq!(q.row_absmax, fx.f32("bnb.int8_vectorwise.row_absmax"));
    // Trap 8: on the raw f32 input, the per-row absmax quantizer differs from bnb (4 codes).
    let raw = quantize_int8(&x, 8, 64, Int8Scheme::Absmax, Granularity::PerRow).unwrap();
    assert_eq!(mismatches(&raw.codes, &q.codes), 4);
    // Dequantization stays within half a step of the f16-rounded input.
    let dq = q.dequantize();
    for (i, (&d, &v)) in dq.iter().zip(&x).enumerate() {
        let step = q.row_absmax[i / 64] / 127.0;
        assert!((d - v).abs() <= 0.5 * step + 2e-3 * v.abs(), "element {i}: {d} vs {v}");
    }
}

#[test]
fn outlier_columns_find_the_planted_outliers() {
    let x = Fixture::load().f32("x");
    // gen_fixtures plants 9.0 at (1, 5) and -7.5 at (6, 40).
    assert_eq!(outlier_columns(&x, 8, 64, 6.0), vec![5, 40]);
    assert_eq!(outlier_columns(&x, 8, 64, 8.0), vec![5]);
    assert!(outlier_columns(&x, 8, 64, 0.0).is_empty(), "threshold 0 disables the decomposition");
    // Compared on f16 values: 5.999 rounds to 6.0 in f16.
    assert_eq!(outlier_columns(&[0.0, 5.999, -1.0, 0.0], 2, 2, 6.0), vec![1]);
}

#[test]
fn nf4_matches_bitsandbytes_exactly() {
    let fx = Fixture::load();
    let w = fx.f32("nf4.input");
    assert_eq!(code_table(Fp4Kind::Nf4).to_vec(), fx.f32("nf4.code"));
    let q = quantize_fp4(&w, Fp4Kind::Nf4, 64, false).unwrap();
    assert_eq!(q.absmax, fx.f32("nf4.absmax"));
    let indices: Vec<u8> = (0..q.numel).map(|i| q.code_index(i)).collect();
    assert_eq!(mismatches(&indices, &fx.raw("nf4.indices")), 0);
    assert_eq!(mismatches(&q.packed, &fx.raw("nf4.packed_uint8")), 0);
    let diff = max_abs_diff(&q.dequantize(), &fx.f32("nf4.dequant"));
    println!("nf4 dequant max abs diff {diff:e}");
    assert_eq!(diff, 0.0);
}

#[test]
fn nf4_double_quant_matches_bitsandbytes() {
    let fx = Fixture::load();
    let w = fx.f32("nf4.input");
    let q = quantize_fp4(&w, Fp4Kind::Nf4, 64, true).unwrap();
    let dq = q.double_quant.as_ref().expect("double quantized");
    assert_eq!(dq.offset, 2.749_301_195_144_653_3_f64 as f32, "offset = mean(absmax) as torch sums");
    assert_eq!(dq.blocksize2, DOUBLE_QUANT_BLOCKSIZE);
    assert_eq!(dq.codes.len(), 8);
    assert_eq!(dq.absmax2.len(), 1);
    assert_eq!(dq.code.len(), 256);
    assert_eq!(q.absmax, dq.dequantize());
    // The 4-bit codes do not change: they come from the original absmax.
    let single = quantize_fp4(&w, Fp4Kind::Nf4, 64, false).unwrap();
    assert_eq!(q.packed, single.packed);
    let diff = max_abs_diff(&q.dequantize(), &fx.f32("nf4_double_quant.dequant"));
    println!("nf4 double-quant dequant max abs diff {diff:e}");
    assert_eq!(diff, 0.0, "double-quant dequant differs by {diff}");
}

#[test]
fn double_quant_on_many_blocks_stays_close() {
    // 1200 blocks of 64: several 256-blocks of absmax (the last partial) and a long torch-order
    // sum for the offset.
    let n = 1200 * 64 + 17;
    let w: Vec<f32> =
        (0..n).map(|i| ((i as f32 * 0.618_034).fract() - 0.5) * (1.0 + (i % 977) as f32 / 300.0)).collect();
    let single = quantize_fp4(&w, Fp4Kind::Nf4, 64, false).unwrap();
    let q = quantize_fp4(&w, Fp4Kind::Nf4, 64, true).unwrap();
    let dq = q.double_quant.as_ref().unwrap();
    assert_eq!(dq.codes.len(), single.absmax.len());
    assert_eq!(dq.absmax2.len(), single.absmax.len().div_ceil(256));
    let mean = single.absmax.iter().map(|&a| f64::from(a)).sum::<f64>() / single.absmax.len() as f64;
    assert!((f64::from(dq.offset) - mean).abs() <= 1e-6 * mean, "offset {} vs mean {mean}", dq.offset);
    // Each dequantized absmax is within half the widest gap of the dynamic map (about 0.0141)
    // times its 256-block's absmax2, plus rounding.
    for (i, (&a, &b)) in single.absmax.iter().zip(&q.absmax).enumerate() {
        let bound = dq.absmax2[i / 256] * 0.0071 + 1e-6;
        assert!((a - b).abs() <= bound, "block {i}: {a} vs {b}");
    }
}

#[test]
fn dynamic_map_is_bitsandbytes() {
    let m = dynamic_map_signed();
    assert!(m.windows(2).all(|w| w[0] < w[1]), "strictly ascending");
    assert_eq!(m[127], 0.0);
    assert_eq!(m.iter().filter(|v| **v < 0.0).count(), 127);
    // Entries of bitsandbytes' `create_dynamic_map()` as torch prints it; 18, 46, 72, 102, 116,
    // 137, 208 and 236 come out one ulp off unless linspace is computed with torch's fused
    // multiply-adds.
    let expected: [(usize, f64); 11] = [
        (0, -0.992968738079071),
        (18, -0.7398437261581421),
        (46, -0.3460937440395355),
        (72, -0.07609374821186066),
        (102, -0.006343749817460775),
        (116, -0.000493750034365803),
        (128, 5.500000384017767e-07),
        (137, 0.0003812500217463821),
        (208, 0.3460937440395355),
        (236, 0.7398437261581421),
        (255, 1.0),
    ];
    for (i, v) in expected {
        assert_eq!(m[i], v as f32, "entry {i}");
    }
}

#[test]
#[allow(clippy::excessive_precision)] // the C++ literals verbatim
fn fp4_table_is_bitsandbytes() {
    let t = code_table(Fp4Kind::Fp4);
    // The constants of bitsandbytes' C++ dDequantizeFP4, by index.
    let cpp: [f32; 16] = [
        0.0,
        5.208333333e-03,
        0.66666667,
        1.0,
        0.33333333,
        0.5,
        0.16666667,
        0.25,
        0.0,
        -5.208333333e-03,
        -0.66666667,
        -1.0,
        -0.33333333,
        -0.5,
        -0.16666667,
        -0.25,
    ];
    assert_eq!(t, cpp);
    assert!(t[8].is_sign_negative(), "index 8 is -0");
}

#[test]
fn fp4_round_trip_error_is_within_half_the_largest_gap() {
    let w = Fixture::load().f32("nf4.input");
    for kind in [Fp4Kind::Fp4, Fp4Kind::Nf4] {
        let mut sorted = code_table(kind).to_vec();
        sorted.sort_by(f32::total_cmp);
        let max_gap = sorted.windows(2).map(|p| p[1] - p[0]).fold(0.0, f32::max);
        for blocksize in [32, 64, 128] {
            let q = quantize_fp4(&w, kind, blocksize, false).unwrap();
            let dq = q.dequantize();
            for (b, block) in w.chunks(blocksize).enumerate() {
                let amax = q.absmax[b];
                for (j, &v) in block.iter().enumerate() {
                    let err = (dq[b * blocksize + j] - v).abs();
                    assert!(err <= amax * max_gap / 2.0 * (1.0 + 1e-6), "{kind:?}/{blocksize} block {b}: {err}");
                }
            }
        }
    }
}

#[test]
fn odd_length_and_partial_blocks() {
    let x: Vec<f32> = (0..101).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
    for kind in [Fp4Kind::Nf4, Fp4Kind::Fp4] {
        for double_quant in [false, true] {
            let q = quantize_fp4(&x, kind, 64, double_quant).unwrap();
            assert_eq!(q.packed.len(), 51);
            assert_eq!(q.absmax.len(), 2);
            let zero = if kind == Fp4Kind::Nf4 { 7 } else { 0 };
            assert_eq!(q.packed[50] & 0x0F, zero, "padding nibble encodes 0");
            assert_eq!(q.dequantize().len(), 101);
        }
    }
    // An all-zero block and a constant absmax set quantize to exact zeros / the offset.
    let z = vec![0.0f32; 128];
    let q = quantize_fp4(&z, Fp4Kind::Nf4, 64, true).unwrap();
    assert!(q.dequantize().iter().all(|&v| v == 0.0));
    assert_eq!(q.absmax, vec![0.0, 0.0]);
}

#[test]
fn bad_4bit_inputs_are_rejected() {
    let x = vec![0.25f32; 128];
    for bs in [0, 16, 48, 100, 8192] {
        match quantize_fp4(&x, Fp4Kind::Nf4, bs, false) {
            Err(QuantError::Config { field, .. }) => assert_eq!(field, "blocksize"),
            other => panic!("blocksize {bs}: {other:?}"),
        }
    }
    let mut nan = x.clone();
    nan[5] = f32::NAN;
    assert!(matches!(quantize_fp4(&nan, Fp4Kind::Nf4, 64, true), Err(QuantError::NonFinite { .. })));
    let mut inf = x;
    inf[0] = f32::INFINITY;
    assert!(matches!(quantize_fp4(&inf, Fp4Kind::Fp4, 64, false), Err(QuantError::NonFinite { .. })));
    assert!(matches!(quantize_fp4(&[], Fp4Kind::Nf4, 64, false), Err(QuantError::Shape { .. })));
}
