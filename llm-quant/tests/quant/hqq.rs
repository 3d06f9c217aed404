//! HQQ against hqq 0.2.8.post1 itself (`fixtures/hqq_ref`, made by scripts/hqq-reference.sh on
//! CPU in float32): codes, solver iterations, scale and zero per case; hqq's bit packing; a
//! layer as `HQQLinear.state_dict()` writes it and a tiny Llama as transformers 4.57 saves it
//! load and run; our checkpoints have HQQLinear's keys and round-trip with identical logits.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};
use llm_core::quant::{hqq_pack, QuantizedWeight};
use llm_core::weights::{load_model, read_quantized, CheckpointLayout, LoadOptions, SafetensorsSource};
use llm_core::CausalLm;
use llm_quant::hqq::{config_json, quantize_hqq, HqqMetaDtype, HqqParams};
use llm_quant::{quantize_model, save_quantized, Method};
use llm_testkit::{assert_close, read_f32, read_json, repo_path, temp_path};
use safetensors::SafeTensors;

type B = burn::backend::Flex;

fn raw(path: &Path) -> BTreeMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.iter().map(|(n, v)| (n.to_string(), (v.dtype(), v.shape().to_vec(), v.data().to_vec()))).collect()
}

fn params_of(case: &serde_json::Value) -> HqqParams {
    let p = &case["weight_quant_params"];
    let mut params = HqqParams::new(p["nbits"].as_u64().unwrap() as u32, p["group_size"].as_u64().unwrap() as usize);
    params.round_zero = p["round_zero"].as_bool().unwrap();
    params.optimize = p["optimize"].as_bool().unwrap();
    // The fixture ran with compute dtype float32: scale and zero are stored unrounded.
    params.meta_dtype = HqqMetaDtype::F32;
    params
}

/// Every axis-1 case: same codes, same iterations, scale to f32 rounding, zero within the
/// drift of a different summation order (torch's mean vs our f64 sum) and `powf`.
#[test]
fn hqq_quantizes_as_hqq_itself() {
    let dir = repo_path("fixtures/hqq_ref");
    let golden = read_json(&dir.join("golden.json"));
    let cases = dir.join("cases.safetensors");
    let mut checked = 0;
    for case in golden["cases"].as_array().unwrap() {
        let name = case["case"].as_str().unwrap();
        if case["weight_quant_params"]["axis"] != 1 {
            continue;
        }
        let (shape, w) = read_f32(&cases, case["input"].as_str().unwrap());
        let params = params_of(case);
        let ours = quantize_hqq(&w, shape[0], shape[1], &params).unwrap();
        assert_eq!(ours.iterations as u64, case["optimizer_steps"].as_u64().unwrap(), "{name}: solver iterations");
        let (_, codes) = read_f32(&cases, &format!("{name}.W_q"));
        let differ = ours.codes.iter().zip(&codes).filter(|(a, b)| f32::from(**a) != **b).count();
        assert_eq!(differ, 0, "{name}: {differ} codes differ");
        let (_, scale) = read_f32(&cases, &format!("{name}.scale"));
        assert_close(&format!("{name} scale"), &ours.scale, &scale, 1e-6 * scale.iter().fold(0f32, |m, v| m.max(v.abs())));
        let (_, zero) = read_f32(&cases, &format!("{name}.zero"));
        assert_close(&format!("{name} zero"), &ours.zero, &zero, 2e-5 * zero.iter().fold(1f32, |m, v| m.max(v.abs())));
        let (_, deq) = read_f32(&cases, &format!("{name}.W_deq"));
        let max_scale = scale.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert_close(&format!("{name} dequantized"), &ours.dequantize(params.group_size), &deq, 2e-5 * max_scale * 256.0);
        checked += 1;
    }
    assert_eq!(checked, 12, "axis-1 cases checked");
}

/// hqq's `BitPack` of every case's codes, byte for byte.
#[test]
fn hqq_packing_is_hqqs_bitpack() {
    let dir = repo_path("fixtures/hqq_ref");
    let golden = read_json(&dir.join("golden.json"));
    let cases = raw(&dir.join("cases.safetensors"));
    for case in golden["cases"].as_array().unwrap() {
        let name = case["case"].as_str().unwrap();
        if case["weight_quant_params"]["axis"] != 1 {
            continue;
        }
        let g = case["weight_quant_params"]["group_size"].as_u64().unwrap() as usize;
        let (_, shape, codes) = &cases[&format!("{name}.W_q")];
        let rows = shape[0] * shape[1] / g;
        let packing = case["packing"].as_str().unwrap();
        let words = hqq_pack(codes, rows, g, packing).unwrap();
        let (dtype, packed_shape, bytes) = &cases[&format!("{name}.W_q_packed")];
        let ours: Vec<u8> = match dtype {
            safetensors::Dtype::I32 => words.iter().flat_map(|w| (*w as i32).to_le_bytes()).collect(),
            _ => words.iter().map(|&w| w as u8).collect(),
        };
        assert_eq!(words.len() / g, packed_shape[0], "{name}: packed rows");
        assert!(&ours == bytes, "{name}: packed bytes differ");
    }
}

/// A layer as `HQQLinear.state_dict()` writes it: read, dequantized as hqq does, and run.
#[test]
fn an_hqqlinear_state_dict_reads_and_runs() {
    let dir = repo_path("fixtures/hqq_ref");
    let source = SafetensorsSource::open_files("layer".into(), &[dir.join("layer.safetensors")]).unwrap();
    let prefix = "model.layers.0.mlp.down_proj";
    assert_eq!(CheckpointLayout::detect(&source, prefix, None), CheckpointLayout::Hqq);
    let io = dir.join("layer_io.safetensors");
    let (shape, w_deq) = read_f32(&io, "W_deq");
    let q = read_quantized(&source, CheckpointLayout::Hqq, prefix, shape[0], shape[1], None).unwrap();
    assert_eq!(q.dequantize(), w_deq, "dequantized as hqq does");
    let (x_shape, x) = read_f32(&io, "x");
    let (_, bias) = read_f32(&io, "bias");
    let (_, y) = read_f32(&io, "y");
    let mut ours = q.matmul(&x, x_shape[0]);
    for (i, v) in ours.iter_mut().enumerate() {
        *v += bias[i % shape[0]];
    }
    let scale = y.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert_close("HQQLinear forward", &ours, &y, 1e-5 * scale);
    // Reading a layer written for other widths is an error naming the tensor.
    let e = read_quantized(&source, CheckpointLayout::Hqq, prefix, shape[0], shape[1] * 2, None).unwrap_err();
    assert!(e.to_string().contains("down_proj.shape"), "{e}");
}

fn logits(model: &CausalLm<B>, ids: &[i64]) -> Vec<f32> {
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids.to_vec(), [1, ids.len()]), &Default::default());
    model.forward(ids).into_data().iter::<f32>().collect()
}

/// transformers 4.57's HQQ checkpoint of the tiny Llama: its logits, within float32 summation
/// order (the same tolerance as the float parity tests).
#[test]
fn a_transformers_hqq_checkpoint_loads_with_its_logits() {
    let dir = repo_path("fixtures/hqq_ref");
    let model = load_model::<B>(dir.join("tiny"), LoadOptions::default(), &Default::default()).unwrap();
    let ids: Vec<i64> = read_json(&dir.join("golden.json"))["tiny"]["prompt_input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let (_, want) = read_f32(&dir.join("tiny_logits.safetensors"), "logits_hqq");
    assert_close("HQQ tiny logits", &logits(&model, &ids), &want, 1e-4);
    let linears = model.linears();
    let q = linears.iter().find(|(n, _)| n == "model.layers.0.self_attn.q_proj").unwrap().1;
    assert!(matches!(q.quantized_weight(), Some(QuantizedWeight::Affine(a)) if a.bits == 4 && a.n_groups() == 1));
}

#[test]
fn our_hqq_checkpoint_has_hqqlinear_keys_and_round_trips_with_identical_logits() {
    let src = repo_path("fixtures/a_tiny_llama/llama");
    let mut model = load_model::<B>(&src, LoadOptions::default(), &Default::default()).unwrap();
    let params = HqqParams::new(4, 64);
    quantize_model(&mut model, Method::Hqq(params), |n| n == "lm_head", |_| {}).unwrap();
    let ids: Vec<i64> = (0..16).map(|i| (i * 29 + 5) % 512).collect();
    let want = logits(&model, &ids);
    let out = temp_path("hqq-checkpoint");
    save_quantized(&model, None, config_json(&params), &out).unwrap();

    // transformers' HqqConfig(nbits=4, group_size=64) writes the same quantization_config, and
    // the RoPE base is spelled as 4.x (the version that loads HQQ) reads it too.
    let theirs = read_json(&repo_path("fixtures/hqq_ref/tiny/config.json"));
    let config = read_json(&out.join("config.json"));
    assert_eq!(config["quantization_config"], theirs["quantization_config"]);
    assert_eq!((config["rope_theta"].as_f64(), theirs["rope_theta"].as_f64()), (Some(10_000.0), Some(10_000.0)));
    // The same keys, dtypes and shapes per layer as transformers' checkpoint, but scale and
    // zero: f16 here (hqq's default compute dtype), f32 there (the fixture's).
    let ours = raw(&out.join("model.safetensors"));
    let theirs = raw(&repo_path("fixtures/hqq_ref/tiny/model.safetensors"));
    let layer = |t: &BTreeMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)>| -> Vec<(String, safetensors::Dtype, Vec<usize>)> {
        t.iter()
            .filter(|(n, _)| n.starts_with("model.layers.1.mlp.up_proj."))
            .map(|(n, (d, s, _))| (n.clone(), if n.ends_with(".scale") || n.ends_with(".zero") || n.ends_with("compute_dtype") { safetensors::Dtype::BOOL } else { *d }, if n.ends_with("compute_dtype") { vec![] } else { s.clone() }))
            .collect()
    };
    assert_eq!(layer(&ours), layer(&theirs), "HQQLinear keys");
    assert_eq!(ours["model.layers.1.mlp.up_proj.compute_dtype"].2, b"torch.float16");

    let back = load_model::<B>(&out, LoadOptions::default(), &Default::default()).unwrap();
    assert_eq!(logits(&back, &ids), want, "logits after the round trip");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn hqq_refuses_what_it_cannot_quantize_by_name() {
    let w = vec![0.5f32; 4 * 96];
    let e = quantize_hqq(&w, 4, 96, &HqqParams::new(7, 32)).unwrap_err();
    assert!(e.to_string().contains("bits"), "{e}");
    let e = quantize_hqq(&w, 4, 96, &HqqParams::new(4, 12)).unwrap_err();
    assert!(e.to_string().contains("group_size"), "{e}");
    let mut bad = w.clone();
    bad[7] = f32::NAN;
    let e = quantize_hqq(&bad, 4, 96, &HqqParams::new(4, 32)).unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
    // A layer whose width the group does not divide names the layer.
    let mut model = load_model::<B>(repo_path("fixtures/a_tiny_llama/llama"), LoadOptions::default(), &Default::default()).unwrap();
    let e = quantize_model(&mut model, Method::Hqq(HqqParams::new(4, 48)), |n| n == "lm_head", |_| {}).unwrap_err();
    assert!(e.to_string().contains("model.layers.0.self_attn.q_proj"), "{e}");
}
