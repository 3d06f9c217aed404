//! GPTQ checkpoints in GPTQModel's layout: a real GPTQModel checkpoint re-saved by us is
//! byte-identical tensor by tensor, and our own GPTQ output round-trips with identical logits.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};
use llm_core::weights::{load_model, LoadOptions};
use llm_core::{CausalLm, Tokenizer};
use llm_quant::{quantize_gptq, save_quantized, Calibration, GptqConfig, GptqParams};
use llm_testkit::{read_json, repo_path, temp_path};
use safetensors::SafeTensors;

type B = burn::backend::Flex;

fn tensors(path: &Path) -> BTreeMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.iter().map(|(n, v)| (n.to_string(), (v.dtype(), v.shape().to_vec(), v.data().to_vec()))).collect()
}

fn logits(model: &CausalLm<B>, ids: &[i64]) -> Vec<f32> {
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids.to_vec(), [1, ids.len()]), &Default::default());
    model.forward(ids).into_data().iter::<f32>().collect()
}

#[test]
fn gptqmodel_checkpoint_resaved_is_byte_identical() {
    let src = repo_path("fixtures/k_gptq_ckpt");
    let model = load_model::<B>(&src, LoadOptions::default(), &Default::default()).unwrap();
    let tokenizer = Tokenizer::from_dir(&src).unwrap();
    let theirs_config = read_json(&src.join("config.json"));
    let dir = temp_path("gptq-resave");
    save_quantized(&model, Some(&tokenizer), theirs_config["quantization_config"].clone(), &dir).unwrap();

    let theirs = tensors(&src.join("model.safetensors"));
    let ours = tensors(&dir.join("model.safetensors"));
    assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "tensor names");
    for (name, (dtype, shape, bytes)) in &theirs {
        let (d, s, b) = &ours[name];
        assert_eq!((d, s), (dtype, shape), "{name}: dtype/shape");
        assert!(b == bytes, "{name}: bytes differ");
    }
    // Our own GPTQ config carries the same top-level keys GPTQModel writes.
    let mut ours_keys: Vec<String> = GptqConfig::default().to_json().as_object().unwrap().keys().cloned().collect();
    let mut theirs_keys: Vec<String> = theirs_config["quantization_config"].as_object().unwrap().keys().cloned().collect();
    ours_keys.sort();
    theirs_keys.sort();
    assert_eq!(ours_keys, theirs_keys, "quantization_config keys");
    assert!(dir.join("quantize_config.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn our_gptq_checkpoint_round_trips_with_identical_logits_and_gptqmodel_layout() {
    let src = repo_path("fixtures/a_tiny_llama/llama");
    let device = Default::default();
    let mut model = load_model::<B>(&src, LoadOptions::default(), &device).unwrap();
    // The tiny model's vocabulary is the bpe512 tokenizer GPTQModel's checkpoint carries.
    let tokenizer = Tokenizer::from_dir(repo_path("fixtures/k_gptq_ckpt")).unwrap();
    let text = std::fs::read_to_string(repo_path("fixtures/i_generate/smollm2_ppl_text.txt")).unwrap();
    let calibration = Calibration::from_text(&tokenizer, &text, 8, 32, Some(1)).unwrap();
    let config = GptqConfig {
        params: GptqParams { bits: 4, group_size: Some(16), sym: false, act_order: true, ..Default::default() },
        ..Default::default()
    };
    let report = quantize_gptq(&mut model, &calibration, &config, |_| {}).unwrap();
    assert_eq!(report.layers.len(), 14);
    assert!(report.layers.iter().all(|l| l.relative_output_error < 0.05), "{:?}", report.layers);

    let dir = temp_path("gptq-ours");
    save_quantized(&model, Some(&tokenizer), config.to_json(), &dir).unwrap();
    let loaded = load_model::<B>(&dir, LoadOptions::default(), &device).unwrap();
    let ids = [1i64, 328, 384, 353, 219, 17, 44, 90, 12];
    assert_eq!(logits(&model, &ids), logits(&loaded, &ids), "logits after save/load");

    // Same layout as GPTQModel's checkpoint of the same architecture: names, dtypes, shapes.
    let theirs = tensors(&repo_path("fixtures/k_gptq_ckpt/model.safetensors"));
    let ours = tensors(&dir.join("model.safetensors"));
    let layout = |t: &BTreeMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)>| {
        t.iter().map(|(n, (d, s, _))| (n.clone(), *d, s.clone())).collect::<Vec<_>>()
    };
    assert_eq!(layout(&ours), layout(&theirs));
    let _ = std::fs::remove_dir_all(&dir);
}
