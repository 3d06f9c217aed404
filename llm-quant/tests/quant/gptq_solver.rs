//! Tests of the GPTQ solver against the reference fixture (`e_quant`).
use llm_quant::error::QuantError;
use llm_quant::gptq::{gptq_quantize, rtn_quantize, GptqOutput, GptqParams, Hessian};
use llm_testkit::{fixture, read_json};
use safetensors::{Dtype, SafeTensors};
use std::time::Instant;


struct Fixture {
    bytes: Vec<u8>,
    golden: serde_json::Value,
}

impl Fixture {
    fn load() -> Self {
        let bytes = std::fs::read(fixture("e_quant/quant.safetensors")).expect("fixture");
        let golden = read_json(&fixture("e_quant/golden.json"));
        Self { bytes, golden }
    }
    fn f32(&self, name: &str) -> Vec<f32> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
    }
    fn i32(&self, name: &str) -> Vec<i32> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), Dtype::I32, "{name}");
        t.data().chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap())).collect()
    }
    fn gold(&self, tag: &str, key: &str) -> f64 {
        self.golden["gptq"][tag][key].as_f64().unwrap()
    }
}

const ROWS: usize = 32;
const COLS: usize = 256;
const SAMPLES: usize = 512;

fn fixture_params(sym: bool) -> GptqParams {
    GptqParams { bits: 4, group_size: Some(32), sym, damp_percent: 0.01, block_size: 128, ..GptqParams::default() }
}

fn hessian_from_x(x: &[f32], batches: &[usize]) -> Hessian {
    let mut h = Hessian::new(COLS);
    let mut at = 0;
    for &b in batches {
        h.add_batch(&x[at * COLS..(at + b) * COLS], b).unwrap();
        at += b;
    }
    assert_eq!(at, SAMPLES);
    h
}

/// Mean over all entries of (X·Qᵀ − X·Wᵀ)², X: [SAMPLES, COLS], Q/W: [ROWS, COLS].
fn output_mse(x: &[f32], q: &[f32], w: &[f32]) -> f64 {
    let mut s = 0.0;
    for xr in x.chunks_exact(COLS) {
        for r in 0..ROWS {
            let (qr, wr) = (&q[r * COLS..(r + 1) * COLS], &w[r * COLS..(r + 1) * COLS]);
            let yq: f64 = xr.iter().zip(qr).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            let yw: f64 = xr.iter().zip(wr).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
            s += (yq - yw) * (yq - yw);
        }
    }
    s / (SAMPLES * ROWS) as f64
}

/// dequant[r, c] == scales[r, g_idx[c]] * (codes[r, c] - zeros[r, g_idx[c]]), exactly (in f32
/// after the f64 product), and g_idx / codes within range.
fn assert_reconstructs(o: &GptqOutput, rows: usize, cols: usize, bits: u32) {
    let ng = o.scales.len() / rows;
    assert_eq!(o.scales.len(), rows * ng);
    assert_eq!(o.zeros.len(), rows * ng);
    assert_eq!(o.g_idx.len(), cols);
    for r in 0..rows {
        for c in 0..cols {
            let g = o.g_idx[c] as usize;
            assert!(g < ng);
            let code = o.codes[r * cols + c];
            assert!(u32::from(code) < (1 << bits));
            let (s, z) = (o.scales[r * ng + g], o.zeros[r * ng + g]);
            assert_eq!(z, z.round(), "zero not integral");
            let d = f64::from(s) * (f64::from(code) - f64::from(z));
            let got = f64::from(o.dequant[r * cols + c]);
            assert!((d - got).abs() <= 1e-6 * d.abs().max(1e-3), "r{r} c{c}: {d} vs {got}");
        }
    }
}

#[test]
fn hessian_matches_fixture() {
    let f = Fixture::load();
    let x = f.f32("gptq.calib_x");
    let href = f.f32("gptq.H");
    let maxabs = href.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    for batches in [&[512usize][..], &[100, 1, 300, 111]] {
        let h = hessian_from_x(&x, batches);
        assert_eq!(h.n_samples, SAMPLES);
        let mut worst = 0f64;
        for (a, b) in h.h.iter().zip(&href) {
            let b = f64::from(*b);
            worst = worst.max((a - b).abs() / b.abs().max(1e-3 * maxabs));
        }
        println!("Hessian batches {batches:?}: worst relative error {worst:.2e}");
        assert!(worst < 1e-5);
        for i in 0..COLS {
            for j in 0..COLS {
                assert_eq!(h.h[i * COLS + j], h.h[j * COLS + i]);
            }
        }
    }
}

fn check_reference(tag: &str, h: &Hessian, label: &str) {
    let f = Fixture::load();
    let sym = tag == "sym";
    let (w, x) = (f.f32("gptq.weight"), f.f32("gptq.calib_x"));
    let t0 = Instant::now();
    let o = gptq_quantize(&w, ROWS, COLS, h, &fixture_params(sym), "gptq").unwrap();
    let dt = t0.elapsed();
    let codes = f.i32(&format!("gptq.{tag}.qweight_int"));
    let mism = o.codes.iter().zip(&codes).filter(|(a, b)| i32::from(**a) != **b).count();
    let scales = f.f32(&format!("gptq.{tag}.scales"));
    let zeros = f.f32(&format!("gptq.{tag}.zeros"));
    let dq = f.f32(&format!("gptq.{tag}.dequant"));
    let s_rel = o.scales.iter().zip(&scales).map(|(a, b)| ((a - b) / b).abs()).fold(0f32, f32::max);
    let dq_abs = o.dequant.iter().zip(&dq).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let mse = output_mse(&x, &o.dequant, &w);
    let (ref_mse, rtn_mse) = (f.gold(tag, "ref_output_mse"), f.gold(tag, "rtn_output_mse"));
    println!(
        "{tag} ({label}): code mismatches {mism}/{}, scale rel {s_rel:.1e}, dequant abs {dq_abs:.1e}, \
         mse {mse:.9} (ref {ref_mse:.9}, rtn {rtn_mse:.9}), loss {:.6}, {dt:?}",
        codes.len(),
        o.loss
    );
    assert_eq!(mism, 0);
    assert!(s_rel <= 1e-6);
    assert_eq!(o.zeros, zeros);
    assert!(dq_abs <= 1e-6);
    assert!(((mse - ref_mse) / ref_mse).abs() <= 1e-6, "{mse} vs {ref_mse}");
    assert!(mse < rtn_mse);
    assert_eq!(o.damp_retries, 0);
    assert_eq!(o.damp_percent_used, 0.01);
    assert!(o.loss > 0.0);
    assert_eq!(o.g_idx, (0..COLS as u32).map(|c| c / 32).collect::<Vec<_>>());
    assert_reconstructs(&o, ROWS, COLS, 4);
}

#[test]
fn gptq_matches_reference_with_own_hessian() {
    let f = Fixture::load();
    let h = hessian_from_x(&f.f32("gptq.calib_x"), &[512]);
    for tag in ["sym", "asym"] {
        check_reference(tag, &h, "add_batch H");
    }
}

#[test]
fn gptq_matches_reference_with_fixture_hessian() {
    let f = Fixture::load();
    let h = Hessian { cols: COLS, n_samples: SAMPLES, h: f.f32("gptq.H").iter().map(|&v| f64::from(v)).collect() };
    for tag in ["sym", "asym"] {
        check_reference(tag, &h, "fixture H");
    }
}

#[test]
fn rtn_matches_reference() {
    let f = Fixture::load();
    let w = f.f32("gptq.weight");
    for (tag, sym) in [("sym", true), ("asym", false)] {
        let o = rtn_quantize(&w, ROWS, COLS, &GptqParams { bits: 4, group_size: Some(32), sym, ..Default::default() }).unwrap();
        let r = f.f32(&format!("gptq.{tag}.rtn_dequant"));
        let worst = o.dequant.iter().zip(&r).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        println!("rtn {tag}: max abs {worst:.1e}");
        assert!(worst <= 1e-6);
        let mse = output_mse(&f.f32("gptq.calib_x"), &o.dequant, &w);
        assert!(((mse - f.gold(tag, "rtn_output_mse")) / mse).abs() < 1e-6);
        assert_reconstructs(&o, ROWS, COLS, 4);
    }
}

fn run_variant(p: &GptqParams) -> (GptqOutput, f64, f64) {
    let f = Fixture::load();
    let (w, x) = (f.f32("gptq.weight"), f.f32("gptq.calib_x"));
    let h = hessian_from_x(&x, &[512]);
    let o = gptq_quantize(&w, ROWS, COLS, &h, p, "gptq").unwrap();
    assert_reconstructs(&o, ROWS, COLS, p.bits);
    let r = rtn_quantize(&w, ROWS, COLS, p).unwrap();
    (o.clone(), output_mse(&x, &o.dequant, &w), output_mse(&x, &r.dequant, &w))
}

#[test]
fn act_order_beats_rtn_and_reconstructs() {
    for sym in [true, false] {
        let p = GptqParams { act_order: true, ..fixture_params(sym) };
        let (o, mse, rtn) = run_variant(&p);
        println!("act_order sym={sym}: mse {mse:.6} rtn {rtn:.6}");
        assert!(mse < rtn);
        // g_idx is a permutation of the group layout: each group holds exactly 32 columns.
        let mut count = [0usize; 8];
        o.g_idx.iter().for_each(|&g| count[g as usize] += 1);
        assert_eq!(count, [32; 8]);
        // The high-energy input channel 3 comes first, so it is in group 0.
        assert_eq!(o.g_idx[3], 0);
    }
}

#[test]
fn static_groups_beat_rtn_and_reconstruct() {
    for act_order in [true, false] {
        let p = GptqParams { act_order, static_groups: true, ..fixture_params(false) };
        let (o, mse, rtn) = run_variant(&p);
        println!("static_groups act_order={act_order}: mse {mse:.6} rtn {rtn:.6}");
        assert!(mse < rtn);
        assert_eq!(o.g_idx, (0..COLS as u32).map(|c| c / 32).collect::<Vec<_>>());
    }
}

#[test]
fn other_bit_widths_and_one_group() {
    let mut last = f64::INFINITY;
    for bits in [2, 3, 4, 8] {
        let (o, mse, rtn) = run_variant(&GptqParams { bits, ..fixture_params(true) });
        println!("{bits}-bit: mse {mse:.3e} rtn {rtn:.3e}");
        assert!(mse < rtn && mse < last);
        assert!(o.codes.iter().all(|&c| u32::from(c) < (1 << bits)));
        last = mse;
    }
    let (o, mse, rtn) = run_variant(&GptqParams { group_size: None, block_size: 100, ..fixture_params(false) });
    println!("one group, block 100: mse {mse:.6} rtn {rtn:.6}");
    assert!(mse < rtn);
    assert_eq!(o.scales.len(), ROWS);
    assert!(o.g_idx.iter().all(|&g| g == 0));
}

#[test]
fn rows_are_independent() {
    // Row independence: quantizing a subset of rows gives the same rows.
    let f = Fixture::load();
    let (w, x) = (f.f32("gptq.weight"), f.f32("gptq.calib_x"));
    let h = hessian_from_x(&x, &[512]);
    let p = fixture_params(true);
    let all = gptq_quantize(&w, ROWS, COLS, &h, &p, "l").unwrap();
    let part = gptq_quantize(&w[5 * COLS..12 * COLS], 7, COLS, &h, &p, "l").unwrap();
    assert_eq!(&all.codes[5 * COLS..12 * COLS], &part.codes[..]);
    assert_eq!(&all.dequant[5 * COLS..12 * COLS], &part.dequant[..]);
}

fn config_field(e: QuantError) -> String {
    match e {
        QuantError::Config { field, message } => {
            println!("config error {field}: {message}");
            field
        }
        other => panic!("expected Config, got {other:?}"),
    }
}

#[test]
fn bad_settings_are_config_errors() {
    let f = Fixture::load();
    let w = f.f32("gptq.weight");
    let h = hessian_from_x(&f.f32("gptq.calib_x"), &[512]);
    let q = |p: GptqParams| gptq_quantize(&w, ROWS, COLS, &h, &p, "l").unwrap_err();
    assert_eq!(config_field(q(GptqParams { bits: 5, ..fixture_params(true) })), "bits");
    let e = q(GptqParams { group_size: Some(33), ..fixture_params(true) });
    assert!(e.to_string().contains("256"), "{e}");
    assert_eq!(config_field(e), "group_size");
    assert_eq!(config_field(q(GptqParams { group_size: Some(0), ..fixture_params(true) })), "group_size");
    assert_eq!(config_field(q(GptqParams { damp_percent: 0.0, ..fixture_params(true) })), "damp_percent");
    assert_eq!(config_field(q(GptqParams { damp_percent: 1.0, ..fixture_params(true) })), "damp_percent");
    assert_eq!(config_field(q(GptqParams { block_size: 0, ..fixture_params(true) })), "block_size");
    assert_eq!(config_field(rtn_quantize(&w, ROWS, COLS, &GptqParams { bits: 5, group_size: Some(32), ..Default::default() }).unwrap_err()), "bits");
    assert_eq!(config_field(rtn_quantize(&w, ROWS, COLS, &GptqParams { bits: 4, group_size: Some(33), ..Default::default() }).unwrap_err()), "group_size");
    assert!(GptqParams::default().validate().is_ok());
    // Shapes and non-finite values.
    assert!(matches!(gptq_quantize(&w[1..], ROWS, COLS, &h, &fixture_params(true), "l"), Err(QuantError::Shape { .. })));
    let mut bad = w.clone();
    bad[7] = f32::NAN;
    assert!(matches!(gptq_quantize(&bad, ROWS, COLS, &h, &fixture_params(true), "l"), Err(QuantError::NonFinite { .. })));
    let mut hb = Hessian::new(COLS);
    let mut xb = vec![0.5f32; 3 * COLS];
    xb[10] = f32::INFINITY;
    assert!(matches!(hb.add_batch(&xb, 3), Err(QuantError::NonFinite { .. })));
    assert_eq!(hb.n_samples, 0);
    assert!(matches!(hb.add_batch(&xb, 2), Err(QuantError::Shape { .. })));
    assert!(matches!(
        gptq_quantize(&w, ROWS, COLS, &Hessian::new(COLS), &fixture_params(true), "l"),
        Err(QuantError::Calibration(_))
    ));
}

struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal()).collect()
    }
}

#[test]
fn indefinite_hessian_retries_damping() {
    // Rank-deficient H (16 samples, 64 columns, duplicated columns) shifted by -3% of its mean
    // diagonal: not positive definite until damp_percent exceeds 0.03.
    let (n, rows) = (64, 8);
    let mut rng = Rng(7);
    let mut x = rng.vec(16 * n);
    for r in 0..16 {
        x[r * n + 1] = x[r * n];
    }
    let mut h = Hessian::new(n);
    h.add_batch(&x, 16).unwrap();
    let mean = (0..n).map(|i| h.h[i * n + i]).sum::<f64>() / n as f64;
    (0..n).for_each(|i| h.h[i * n + i] -= 0.03 * mean);
    let w = rng.vec(rows * n);
    let p = GptqParams { group_size: Some(16), ..GptqParams::default() };
    let o = gptq_quantize(&w, rows, n, &h, &p, "l").unwrap();
    println!("retries {} damp {}", o.damp_retries, o.damp_percent_used);
    assert!(o.damp_retries >= 2 && o.damp_percent_used > 0.03 && o.damp_percent_used < 0.05);
    assert_reconstructs(&o, rows, n, 4);
    let p0 = GptqParams { damp_auto_increment: 0.0, ..p };
    match gptq_quantize(&w, rows, n, &h, &p0, "model.layers.0.mlp.up_proj") {
        Err(QuantError::NotPositiveDefinite { layer, damp }) => {
            assert_eq!(layer, "model.layers.0.mlp.up_proj");
            assert_eq!(damp, 0.01);
        }
        other => panic!("{other:?}"),
    }
    // Never factorable below damp 1 (H shifted by -2 x mean): error after the retries run out.
    (0..n).for_each(|i| h.h[i * n + i] -= 2.0 * mean);
    let p1 = GptqParams { damp_auto_increment: 0.25, ..p };
    assert!(matches!(gptq_quantize(&w, rows, n, &h, &p1, "l"), Err(QuantError::NotPositiveDefinite { .. })));
}

#[test]
fn dead_columns_quantize_to_zero() {
    let (n, rows) = (64, 4);
    let mut rng = Rng(11);
    let mut x = rng.vec(200 * n);
    for r in 0..200 {
        x[r * n + 9] = 0.0;
    }
    let mut h = Hessian::new(n);
    h.add_batch(&x, 200).unwrap();
    let w = rng.vec(rows * n);
    for sym in [true, false] {
        let p = GptqParams { group_size: Some(32), sym, ..GptqParams::default() };
        let o = gptq_quantize(&w, rows, n, &h, &p, "l").unwrap();
        for r in 0..rows {
            assert_eq!(o.dequant[r * n + 9], 0.0);
        }
    }
}

fn time_layer(rows: usize, cols: usize) {
    let mut rng = Rng(3);
    let w: Vec<f32> = rng.vec(rows * cols).iter().map(|v| v / (cols as f32).sqrt()).collect();
    let samples = 2048;
    let x = rng.vec(samples * cols);
    let t0 = Instant::now();
    let mut h = Hessian::new(cols);
    for b in x.chunks(512 * cols) {
        h.add_batch(b, b.len() / cols).unwrap();
    }
    let th = t0.elapsed();
    for act_order in [false, true] {
        let p = GptqParams { act_order, group_size: Some(64), ..GptqParams::default() };
        let t1 = Instant::now();
        let o = gptq_quantize(&w, rows, cols, &h, &p, "l").unwrap();
        println!(
            "[{rows}x{cols}] act_order={act_order}: gptq_quantize {:?} (Hessian of {samples} rows: {th:?}), loss {:.3}",
            t1.elapsed(),
            o.loss
        );
    }
}

#[test]
#[ignore = "timing; run with --ignored --nocapture"]
fn timing_random_layers() {
    println!("threads: {:?}", std::thread::available_parallelism());
    time_layer(1536, 576);
    time_layer(576, 1536);
    time_layer(1536, 1536);
    time_layer(8960, 1536);
    let cols = 1536;
    let x = Rng(5).vec(4096 * cols);
    let mut h = Hessian::new(cols);
    let t = Instant::now();
    for _ in 0..8 {
        h.add_batch(&x, 4096).unwrap();
    }
    let dt = t.elapsed();
    println!("add_batch 8 x 4096x1536: {dt:?} ({:.1} GFLOP/s)", 8.0 * 4096.0 * 1536.0 * 1537.0 / dt.as_secs_f64() / 1e9);
}

#[test]
fn partial_groups_are_an_opt_in_shorter_last_group() {
    // 96 does not divide 256: an error by default, three groups (96, 96, 64) when allowed.
    let strict = GptqParams { group_size: Some(96), ..fixture_params(false) };
    let f = Fixture::load();
    let h = hessian_from_x(&f.f32("gptq.calib_x"), &[512]);
    let err = gptq_quantize(&f.f32("gptq.weight"), ROWS, COLS, &h, &strict, "gptq").unwrap_err();
    assert_eq!(config_field(err), "group_size");
    for act_order in [false, true] {
        let p = GptqParams { partial_groups: true, act_order, ..strict.clone() };
        let (o, mse, rtn) = run_variant(&p);
        assert!(mse < rtn, "act_order {act_order}: {mse} vs rtn {rtn}");
        assert_eq!(o.scales.len(), ROWS * 3);
        let mut count = [0usize; 3];
        o.g_idx.iter().for_each(|&g| count[g as usize] += 1);
        assert_eq!(count, [96, 96, 64]);
    }
}
