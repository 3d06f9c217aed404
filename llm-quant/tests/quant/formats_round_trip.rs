//! Every quantized format runs the same numbers three ways — dequantize-then-matmul (the
//! reference), the fused kernel, and after a save/load through its checkpoint layout.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use llm_core::CausalLm;
use llm_core::quant::{QuantExecution, QuantizedWeight};
use llm_core::weights::{load_model, LoadOptions};
use llm_quant::int8::{Granularity, Int8Scheme};
use llm_quant::nf4::Fp4Kind;
use llm_quant::{quantize_model, quantize_weight, save_quantized, Method};
use llm_testkit::{repo_path, temp_path};

/// The CPU reference backend.
type B0 = burn::backend::Flex;
type B = B0;

/// A deterministic pseudo-random matrix (xorshift), values in [-1, 1).
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn methods() -> Vec<(&'static str, Method)> {
    vec![
        ("absmax-tensor", Method::Int8 { scheme: Int8Scheme::Absmax, granularity: Granularity::PerTensor }),
        ("absmax-row", Method::Int8 { scheme: Int8Scheme::Absmax, granularity: Granularity::PerRow }),
        ("zeropoint-group32", Method::Int8 { scheme: Int8Scheme::ZeroPoint, granularity: Granularity::PerGroup(32) }),
        ("nf4", Method::Fp4 { kind: Fp4Kind::Nf4, blocksize: 64, double_quant: false }),
        ("nf4-dq", Method::Fp4 { kind: Fp4Kind::Nf4, blocksize: 64, double_quant: true }),
        ("fp4", Method::Fp4 { kind: Fp4Kind::Fp4, blocksize: 64, double_quant: false }),
        ("rtn2-g32", Method::Rtn { bits: 2, group_size: Some(32), sym: false, partial_groups: false }),
        ("rtn3-g32", Method::Rtn { bits: 3, group_size: Some(32), sym: true, partial_groups: false }),
        ("rtn4-g16", Method::Rtn { bits: 4, group_size: Some(16), sym: false, partial_groups: false }),
        ("rtn4-g32", Method::Rtn { bits: 4, group_size: Some(32), sym: false, partial_groups: false }),
        ("rtn4-g48-partial", Method::Rtn { bits: 4, group_size: Some(48), sym: true, partial_groups: true }),
        ("rtn8-row", Method::Rtn { bits: 8, group_size: None, sym: true, partial_groups: false }),
        ("llm.int8", Method::LlmInt8 { threshold: 6.0 }),
    ]
}

#[test]
fn fused_kernels_match_dequantize_then_matmul() {
    let (d_out, d_in, rows) = (48, 128, 3);
    let w = random(d_out * d_in, 1);
    let x: Vec<f32> = random(rows * d_in, 2).iter().map(|v| v * 2.0).collect();
    for (name, method) in methods() {
        if matches!(method, Method::LlmInt8 { .. }) {
            continue; // its product quantizes activations by design; tested below
        }
        let q = quantize_weight(&w, d_out, d_in, method).unwrap();
        let deq = q.dequantize();
        let fused = q.matmul(&x, rows);
        for r in 0..rows {
            for o in 0..d_out {
                let want: f64 = (0..d_in).map(|c| f64::from(x[r * d_in + c]) * f64::from(deq[o * d_in + c])).sum();
                let got = f64::from(fused[r * d_out + o]);
                // f32 accumulation of 128 products of magnitude <= 2: 1e-4 absolute covers it.
                assert!((got - want).abs() < 1e-4, "{name}: row {r} out {o}: fused {got} vs reference {want}");
            }
        }
    }
}

#[test]
fn llm_int8_splits_outlier_columns_into_float() {
    let (d_out, d_in) = (8, 64);
    let w = random(d_out * d_in, 3);
    let mut x = random(2 * d_in, 4);
    x[5] = 9.0; // column 5 is an outlier in row 0
    let q = quantize_weight(&w, d_out, d_in, Method::LlmInt8 { threshold: 6.0 }).unwrap();
    let QuantizedWeight::OutlierInt8(int8) = &q else { panic!("LLM.int8 weight") };
    assert_eq!(int8.outlier_columns(&x), vec![5]);
    let deq = q.dequantize();
    let y = q.matmul(&x, 2);
    for r in 0..2 {
        for o in 0..d_out {
            // Outlier column in float against the dequantized weight; the rest int8 x int8.
            let xr = &x[r * d_in..(r + 1) * d_in];
            // bitsandbytes: the row's absmax skips outlier elements; the int8 codes skip outlier columns.
            let absmax = xr.iter().filter(|v| v.abs() < 6.0).fold(0f32, |m, v| m.max(v.abs()));
            let acc: i32 = (0..d_in)
                .filter(|&c| c != 5)
                .map(|c| (xr[c] * (127.0 / absmax)).round_ties_even() as i32 * i32::from(int8.codes[o * d_in + c]))
                .sum();
            let want = acc as f32 * (absmax * int8.row_absmax[o] / (127.0 * 127.0)) + xr[5] * deq[o * d_in + 5];
            assert!((y[r * d_out + o] - want).abs() < 1e-5, "row {r} out {o}: {} vs {want}", y[r * d_out + o]);
            // And LLM.int8 stays close to the float product (its point).
            let exact: f32 = (0..d_in).map(|c| xr[c] * w[o * d_in + c]).sum();
            assert!((y[r * d_out + o] - exact).abs() < 0.05 * (1.0 + exact.abs()), "row {r} out {o}");
        }
    }
}

fn logits<D: Backend>(model: &CausalLm<D>, ids: &[i64]) -> Vec<f32> {
    let ids = Tensor::<D, 2, Int>::from_data(TensorData::new(ids.to_vec(), [1, ids.len()]), &model.device());
    model.forward(ids).into_data().iter::<f32>().collect()
}

llm_testkit::backend_test! {
    fn every_layout_saves_and_loads_with_identical_logits<B>(device, kind) {
        let src = repo_path("fixtures/a_tiny_llama/llama");
        let ids = [1i64, 328, 384, 353, 219, 17, 44];
        // quantize_model builds layers with QuantExecution::Auto (fused for these 7-row inputs):
        // load the same way so both sides run the same kernel.
        let options = LoadOptions { quant_execution: QuantExecution::Auto, ..Default::default() };
        for (name, method) in methods() {
            let mut model = load_model::<B>(&src, options, device).unwrap();
            let reports = quantize_model(&mut model, method, |n| n == "lm_head", |_| {}).unwrap();
            assert_eq!(reports.len(), 14, "{name}: 7 linears x 2 layers");
            let before = logits(&model, &ids);
            let dir = temp_path(&format!("roundtrip-{kind}-{name}"));
            save_quantized(&model, None, method.config_json(), &dir).unwrap();
            if !kind.is_cpu() {
                // The saved layers on Flex, whose kernels the bitsandbytes/GPTQModel parity
                // tests pin. GPU backends hold quantized layers as dequantized weights on the
                // device (QuantExecution::Materialize: no int8 activations for LLM.int8), so
                // compare with Flex's dequantized path: the same products in another summation
                // order, 1e-4 as the dense parity tests.
                let dequantize = LoadOptions { quant_execution: QuantExecution::Dequantize, ..Default::default() };
                let cpu = load_model::<B0>(&dir, dequantize, &Default::default()).unwrap();
                let want = logits(&cpu, &ids);
                let diff = before.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(diff <= 1e-4, "{name} on {kind}: max |diff| {diff} to Flex");
            }
            let loaded = load_model::<B>(&dir, options, device).unwrap_or_else(|e| panic!("{name}: {e}"));
            let after = logits(&loaded, &ids);
            let diff = before.iter().zip(&after).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            // GPTQ-layout scales are rounded to fp16 when quantizing, so every layout is bit-exact.
            assert_eq!(diff, 0.0, "{name}: logits moved through save/load");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[test]
fn a_checkpoint_may_mix_formats_layer_by_layer() {
    // Layer 0 in NF4, layer 1 in 4-bit groups, LM head dense: one directory, each layer read by
    // the tensors it carries.
    let device = Default::default();
    let mut model = load_model::<B>(repo_path("fixtures/a_tiny_llama/llama"), LoadOptions::default(), &device).unwrap();
    let nf4 = Method::Fp4 { kind: Fp4Kind::Nf4, blocksize: 64, double_quant: true };
    let rtn = Method::Rtn { bits: 4, group_size: Some(32), sym: false, partial_groups: false };
    quantize_model(&mut model, nf4, |n| !n.starts_with("model.layers.0."), |_| {}).unwrap();
    quantize_model(&mut model, rtn, |n| !n.starts_with("model.layers.1."), |_| {}).unwrap();
    let ids = [1i64, 328, 384, 353, 219];
    let before = logits(&model, &ids);
    let dir = temp_path("mixed");
    save_quantized(&model, None, rtn.config_json(), &dir).unwrap();
    let loaded = load_model::<B>(&dir, LoadOptions::default(), &device).unwrap();
    let kinds: Vec<String> = loaded.linears().iter().map(|(_, l)| l.quantized_weight().map_or("dense".into(), |q| q.describe())).collect();
    assert_eq!(kinds[0], "nf4");
    assert_eq!(kinds[7], "int4-g32");
    assert_eq!(kinds.last().unwrap(), "dense");
    assert_eq!(before, logits(&loaded, &ids));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A GGUF loads with its linear weights in GGML blocks; quantizing it must treat those as the
/// model's weights (it once skipped them as "already quantized", leaving the model unchanged).
#[test]
fn a_gguf_model_held_in_ggml_blocks_is_quantized_not_skipped() {
    let mut model = load_model::<B>(repo_path("fixtures/l_ggml/tiny-q4_k_m.gguf"), LoadOptions::default(), &Default::default()).unwrap();
    assert!(model.linears().iter().any(|(_, l)| matches!(l.quantized_weight(), Some(QuantizedWeight::Ggml(_)))));
    let method = Method::Fp4 { kind: Fp4Kind::Nf4, blocksize: 64, double_quant: false };
    let reports = quantize_model(&mut model, method, |n| n == "lm_head", |_| {}).unwrap();
    assert_eq!(reports.len(), 2 * 7);
    for (name, l) in model.linears().iter().filter(|(n, _)| n != "lm_head") {
        assert!(!matches!(l.quantized_weight(), Some(QuantizedWeight::Ggml(_)) | None), "{name} was not quantized");
    }
}
