//! QLoRA: an NF4 (double-quantized) frozen base with float LoRA; gradients flow through the
//! dequantized base; the merge goes into the NF4 or the original float weights, with the
//! difference reported.

use burn::module::AutodiffModule;
use burn::tensor::{Int, Tensor, TensorData};
use crate::common::*;
use llm_core::CausalLm;
use llm_core::nn::Linear;
use llm_train::lora::{attach_lora, LoraSpec, TargetModules};
use llm_train::params::{global_norm, param_infos};
use llm_train::qlora::{merge_qlora, quantize_base_nf4, MergeBase};
use llm_train::sft::SftBatch;
use llm_train::trainer::{TrainConfig, Trainer};

fn spec() -> LoraSpec {
    LoraSpec { r: 4, alpha: 8.0, targets: TargetModules::AllLinear, ..Default::default() }
}

fn logits<B: burn::tensor::backend::Backend>(model: &CausalLm<B>) -> Vec<f32> {
    let ids: Vec<i64> = vec![3, 87, 93, 273, 417, 203, 38, 73, 276];
    let t = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, 9]), &model.device());
    model.forward(t).into_data().to_vec::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn qlora_trains_through_the_nf4_base_and_merges_into_either_base() {
    let mut base = tiny_model();
    let reports = quantize_base_nf4(&mut base, true).unwrap();
    assert_eq!(reports.len(), 14, "every decoder linear, not lm_head");
    let nf4_bytes: usize = reports.iter().map(|r| r.bytes).sum();
    let f32_bytes: usize = base.linears().iter().filter(|(n, _)| n != "lm_head").map(|(_, l)| l.dims().0 * l.dims().1 * 4).sum();
    assert!(nf4_bytes * 5 < f32_bytes, "NF4 base {nf4_bytes} bytes vs f32 {f32_bytes}");
    // The same network with the dequantized weights held dense: the reference for gradients.
    let mut dense = base.clone();
    for (name, l) in base.linears() {
        let w = l.dense_weight();
        *dense.linear_mut(&name).unwrap() = Linear::new(w, None);
    }
    let (q, _) = attach_lora(base, &spec(), 9).unwrap();
    let (d, _) = attach_lora(dense, &spec(), 9).unwrap();
    assert!(param_infos(&q).iter().filter(|p| p.trainable).all(|p| p.name.contains(".lora_")));

    let config = TrainConfig { batch_size: 3, ..Default::default() };
    let examples = tokenized();
    let batch = SftBatch::padded(&examples.iter().collect::<Vec<_>>(), 0);
    let mut tq = Trainer::new(q, config.clone(), 0).unwrap();
    let td = Trainer::new(d, config, 0).unwrap();
    let (lq, gq) = tq.loss_and_grads(std::slice::from_ref(&batch)).unwrap();
    let (ld, gd) = td.loss_and_grads(std::slice::from_ref(&batch)).unwrap();
    assert_eq!(gq.len(), 28);
    assert_rel("QLoRA loss = dense-dequantized loss", lq, ld, 1e-6);
    assert_rel("QLoRA grad norm", global_norm(&gq), global_norm(&gd), 1e-5);
    // The NF4 layers run llm-core's frozen matmul (the weight dequantized again in the backward
    // pass, never saved); the dense copy runs Burn's matmul. Same products, same gradients.
    for (name, g) in &gq {
        let want = gd[name].clone();
        let scale = want.clone().abs().max().into_scalar() as f64;
        let gap = (g.clone() - want).abs().max().into_scalar() as f64;
        assert!(gap <= 1e-6 * scale.max(1e-3), "{name}: gradient differs by {gap} (max |g| {scale})");
    }
    assert!(global_norm(&gq) > 0.0);

    for _ in 0..3 {
        tq.train_step(std::slice::from_ref(&batch), 3).unwrap();
    }
    let (after, _) = tq.loss_and_grads(std::slice::from_ref(&batch)).unwrap();
    assert!(after < lq, "three steps lower the loss: {lq} -> {after}");

    let trained = tq.model.valid();
    let want = logits(&trained);
    let (into_nf4, none) = merge_qlora(&trained, MergeBase::Dequantized).unwrap();
    assert!(none.is_empty());
    assert!(into_nf4.linears().iter().all(|(_, l)| l.quantized_weight().is_none() && l.lora.is_none()));
    assert!(max_diff(&logits(&into_nf4), &want) < 1e-5);

    let original = tiny_model().valid();
    let (into_float, diffs) = merge_qlora(&trained, MergeBase::Original(&original)).unwrap();
    assert_eq!(diffs.len(), 14);
    for d in &diffs {
        assert!(d.max_abs > 0.0 && d.relative > 0.01 && d.relative < 0.2, "{d:?}");
        // The two merges differ by exactly the quantization error of the base.
        let a = into_float.linears().into_iter().find(|(n, _)| *n == d.name).unwrap().1.dense_weight();
        let b = into_nf4.linears().into_iter().find(|(n, _)| *n == d.name).unwrap().1.dense_weight();
        let gap = (a - b).abs().max().into_scalar();
        assert!((gap as f64 - d.max_abs).abs() < 1e-6, "{}: {gap} vs {}", d.name, d.max_abs);
    }
    assert!(max_diff(&logits(&into_float), &want) > 1e-4, "merging into the float base changes the outputs");
}
