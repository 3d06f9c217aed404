//! LoRA attachment (peft's init, targets, frozen base) and peft-compatible files: our adapters
//! match the fixture adapter's schema and reload bit-exactly; merged checkpoints reload too.

use burn::module::AutodiffModule;
use burn::tensor::{Int, Tensor, TensorData};
use crate::common::*;
use llm_core::CausalLm;
use llm_core::adapter::PeftAdapter;
use llm_core::weights::{load_model, LoadOptions};
use llm_train::TrainError;
use llm_train::lora::{attach_lora, LoraSpec, TargetModules};
use llm_train::params::{param_infos, read_params};
use llm_train::peft::{save_adapter, save_merged};
use llm_train::sft::SftBatch;
use llm_train::trainer::{TrainConfig, Trainer};

type Inner = burn::backend::Flex;

fn logits<B: burn::tensor::backend::Backend>(model: &CausalLm<B>) -> Vec<f32> {
    let ids: Vec<i64> = vec![3, 87, 93, 273, 417, 203, 38, 73, 276];
    let t = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, 9]), &model.device());
    model.forward(t).into_data().to_vec::<f32>().unwrap()
}

fn spec(targets: TargetModules) -> LoraSpec {
    LoraSpec { r: 4, alpha: 8.0, targets, ..Default::default() }
}

#[test]
fn attach_initialises_like_peft_and_freezes_the_base() {
    let base = logits(&tiny_model().valid());
    let (model, modules) = attach_lora(tiny_model(), &spec(TargetModules::parse("q_proj,v_proj")), 1).unwrap();
    assert_eq!(modules.len(), 4);
    // B = 0: the adapted model computes the base model exactly.
    assert_eq!(logits(&model.valid()), base);
    let infos = param_infos(&model);
    let trainable: Vec<_> = infos.iter().filter(|p| p.trainable).map(|p| p.name.clone()).collect();
    assert_eq!(trainable.len(), 8);
    assert!(trainable.iter().all(|n| n.contains(".lora_")), "{trainable:?}");
    let params = read_params(&model, |n| n.contains(".lora_"));
    let (shape, a) = &params["model.layers.0.self_attn.q_proj.lora_A.weight"];
    assert_eq!(shape, &vec![4, 64]);
    // Kaiming-uniform with a = √5: U(-1/√d_in, 1/√d_in); 256 draws span most of it.
    let bound = 1.0 / 64f32.sqrt();
    assert!(a.iter().all(|x| x.abs() <= bound));
    assert!(a.iter().any(|x| x.abs() > 0.9 * bound));
    assert!(params["model.layers.0.self_attn.v_proj.lora_B.weight"].1.iter().all(|&x| x == 0.0));
}

#[test]
fn target_patterns_select_like_peft() {
    let all = |t: &str| attach_lora(tiny_model(), &spec(TargetModules::parse(t)), 0).unwrap().1;
    // all-linear: every linear but the head (2 layers · 7).
    let every = all("all-linear");
    assert_eq!(every.len(), 14);
    assert!(!every.iter().any(|n| n == "lm_head"));
    assert_eq!(all(r"re:.*layers\.1\.mlp\.(gate|up)_proj"), vec!["model.layers.1.mlp.gate_proj", "model.layers.1.mlp.up_proj"]);
    let err = attach_lora(tiny_model(), &spec(TargetModules::parse("qkv_proj")), 0).unwrap_err();
    assert!(matches!(err, TrainError::NoTargetMatch { .. }));
    let msg = err.to_string();
    assert!(msg.contains("qkv_proj") && msg.contains("model.layers.0.self_attn.q_proj") && msg.contains("lm_head"), "{msg}");
    let err = attach_lora(tiny_model(), &LoraSpec { r: 0, ..spec(TargetModules::AllLinear) }, 0).unwrap_err();
    assert!(err.to_string().contains("rank"), "{err}");
}

#[test]
fn rslora_scales_by_alpha_over_sqrt_r() {
    let s = LoraSpec { r: 16, alpha: 8.0, use_rslora: true, ..spec(TargetModules::AllLinear) };
    let (mut model, _) = attach_lora(tiny_model(), &s, 0).unwrap();
    let lora = model.linear_mut("model.layers.0.mlp.down_proj").unwrap().lora.as_ref().unwrap();
    assert_eq!(lora.scaling, 2.0);
}

/// Two AdamW steps on j_train's batch, so B is no longer zero.
fn trained(targets: &str) -> (Trainer<TrainBackend>, LoraSpec) {
    let s = LoraSpec { dropout: 0.1, ..spec(TargetModules::parse(targets)) };
    let (model, _) = attach_lora(tiny_model(), &s, 3).unwrap();
    let config = TrainConfig { batch_size: 3, ..Default::default() };
    let mut trainer = Trainer::new(model, config, 0).unwrap();
    let examples = tokenized();
    let batch = SftBatch::padded(&examples.iter().collect::<Vec<_>>(), 0);
    for _ in 0..2 {
        trainer.train_step(std::slice::from_ref(&batch), 10).unwrap();
    }
    (trainer, s)
}

#[test]
fn saved_adapter_has_peft_schema_and_reloads_bit_exactly() {
    let (trainer, s) = trained("q_proj,v_proj");
    let dir = temp_dir("adapter").join("out");
    let names = save_adapter(&trainer.model, &s, "../a_tiny_llama/llama", &dir).unwrap();
    assert_eq!(names.len(), 8);

    // Same keys as peft's adapter_config.json, same tensor names, dtypes and shapes as its file.
    let ours = read_json(&dir.join("adapter_config.json"));
    let peft = read_json(&fixture("c_lora/adapter/adapter_config.json"));
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&ours), keys(&peft));
    assert_eq!((ours["r"].as_u64(), ours["lora_alpha"].as_f64(), ours["peft_type"].as_str()), (Some(4), Some(8.0), Some("LORA")));
    let read = |p: std::path::PathBuf| {
        let bytes = std::fs::read(p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut v: Vec<_> = st.iter().map(|(n, t)| (n.to_string(), t.dtype(), t.shape().to_vec())).collect();
        v.sort();
        v
    };
    assert_eq!(read(dir.join("adapter_model.safetensors")), read(fixture("c_lora/adapter/adapter_model.safetensors")));

    // Our loader: the same tensors bit for bit, the same logits.
    let mut reloaded = load_model::<Inner>(fixture("a_tiny_llama/llama"), LoadOptions::default(), &Default::default()).unwrap();
    PeftAdapter::load(&dir).unwrap().apply(&mut reloaded).unwrap();
    let trained = trainer.model.valid();
    assert_eq!(read_params(&reloaded, |n| n.contains(".lora_")), read_params(&trained, |n| n.contains(".lora_")));
    assert!(read_params(&trained, |n| n.contains("lora_B")).values().any(|(_, v)| v.iter().any(|&x| x != 0.0)));
    assert_eq!(logits(&reloaded), logits(&trained));
}

#[test]
fn merged_checkpoint_reloads_with_the_adapted_logits() {
    let (trainer, s) = trained("all-linear");
    // The adapter itself: `all-linear` is written expanded to module names, as peft does.
    let adapter_dir = temp_dir("all-linear").join("adapter");
    save_adapter(&trainer.model, &s, "base", &adapter_dir).unwrap();
    let cfg = read_json(&adapter_dir.join("adapter_config.json"));
    let names: Vec<&str> = cfg["target_modules"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(names, ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]);
    let mut reloaded = load_model::<Inner>(fixture("a_tiny_llama/llama"), LoadOptions::default(), &Default::default()).unwrap();
    assert_eq!(PeftAdapter::load(&adapter_dir).unwrap().apply(&mut reloaded).unwrap().len(), 14);
    let dir = temp_dir("merged").join("model");
    let tok = tiny_tokenizer();
    assert_eq!(save_merged(&trainer.model.valid(), Some(&tok), &dir).unwrap(), 14);
    let merged = load_model::<Inner>(&dir, LoadOptions::default(), &Default::default()).unwrap();
    assert!(merged.linears().iter().all(|(_, l)| l.lora.is_none()));
    let want = logits(&trainer.model.valid());
    let got = logits(&merged);
    let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff < 1e-5, "merged vs unmerged logits: {diff}");
    assert!(dir.join("tokenizer.json").exists() && dir.join("config.json").exists());
}
