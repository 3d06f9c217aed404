//! Per-layer gradient checkpointing: the layers recomputed in the backward pass give the
//! gradients of one whole graph (1e-6; measured bit-identical), for LoRA with dropout, full fine-tuning (the
//! embedding included) and DPO against its own disabled adapters.

use crate::common::*;
use crate::preference::{pairs, policy_trainer};
use llm_train::dpo::{Dpo, DpoLoss, ReferenceSource};
use llm_train::lora::{attach_lora, LoraSpec, TargetModules};
use llm_train::params::{set_trainable, Gradients};
use llm_train::sft::SftBatch;
use llm_train::trainer::{TrainConfig, Trainer};

fn assert_same(what: &str, (loss, grads): (f64, Gradients<burn::backend::Flex>), (want_loss, want): (f64, Gradients<burn::backend::Flex>)) {
    assert!((loss - want_loss).abs() <= 1e-6 * want_loss.abs().max(1.0), "{what}: loss {loss} vs {want_loss}");
    assert_eq!(grads.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{what}: the same parameters get gradients");
    // The recorded forward pass runs off autodiff with the arithmetic autodiff runs (Burn's
    // decomposed attention, the same dropout masks): measured bit-identical; bound 1e-6.
    let (mut worst, mut worst_max) = (0f64, 0f64);
    for (name, g) in &grads {
        let w = want[name].clone();
        let norm = (w.clone().square().sum().into_scalar() as f64).sqrt().max(1e-9);
        let diff = g.clone() - w.clone();
        let scale = (w.abs().max().into_scalar() as f64).max(1e-9);
        let gap = diff.clone().abs().max().into_scalar() as f64 / scale;
        assert!(gap <= 1e-6, "{what}: {name} differs by {gap:e} of its largest gradient");
        worst_max = worst_max.max(gap);
        worst = worst.max((diff.square().sum().into_scalar() as f64).sqrt() / norm);
    }
    eprintln!("{what}: {} gradients, largest relative L2 gap {worst:e}, largest element gap {worst_max:e} of max |g|", grads.len());
}

fn sft_both(model: llm_core::CausalLm<TrainBackend>) -> [(f64, Gradients<burn::backend::Flex>); 2] {
    let batch = SftBatch::padded(&tokenized().iter().collect::<Vec<_>>(), 0);
    [false, true].map(|gradient_checkpointing| {
        let config = TrainConfig { batch_size: 3, gradient_checkpointing, ..Default::default() };
        let t = Trainer::new(model.clone(), config, 0).unwrap();
        t.loss_and_grads(std::slice::from_ref(&batch)).unwrap()
    })
}

#[test]
fn lora_with_dropout_gets_the_gradients_of_the_whole_graph() {
    let spec = LoraSpec { r: 4, alpha: 8.0, dropout: 0.1, targets: TargetModules::AllLinear, ..Default::default() };
    let (model, _) = attach_lora(tiny_model(), &spec, 3).unwrap();
    let [plain, checkpointed] = sft_both(model);
    assert_same("LoRA SFT", checkpointed, plain);
}

#[test]
fn full_fine_tuning_includes_the_embedding() {
    let model = set_trainable(tiny_model(), |_| true);
    let [plain, checkpointed] = sft_both(model);
    assert!(plain.1.keys().any(|n| n.contains("embed_tokens")), "the embedding trains");
    assert_same("full SFT", checkpointed, plain);
}

#[test]
fn dpo_against_disabled_adapters() {
    let pairs = pairs();
    let dpo = Dpo { beta: 0.1, loss: DpoLoss::Sigmoid { label_smoothing: 0.0 }, reference: ReferenceSource::DisabledAdapters, pad_id: 0 };
    let run = |checkpointing: bool| {
        let mut t = policy_trainer();
        t.config.gradient_checkpointing = checkpointing;
        let out = t.loss_and_grads_with(&dpo, &[pairs.iter().collect()]).unwrap();
        (out.loss, out.grads)
    };
    let plain = run(false);
    assert_same("DPO", run(true), plain);
}
