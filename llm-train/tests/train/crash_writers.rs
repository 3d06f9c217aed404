//! llm-train's writers under SIGKILL: a child saves version after version of a PEFT adapter,
//! a merged checkpoint and a trainer checkpoint, and is killed at varied points; each
//! directory is always absent or one complete version, byte for byte.

use crate::common::*;
use llm_train::lora::{attach_lora, LoraSpec, TargetModules};
use llm_train::peft::{save_adapter, save_merged};
use llm_train::trainer::{TrainConfig, Trainer};

fn spec() -> LoraSpec {
    LoraSpec { r: 4, alpha: 8.0, targets: TargetModules::AllLinear, ..Default::default() }
}

/// The tiny model with a LoRA whose weights depend on `version`.
fn adapted(version: u64) -> llm_core::CausalLm<TrainBackend> {
    let (mut model, _) = attach_lora(tiny_model(), &spec(), version).unwrap();
    // attach_lora zeroes B (peft's init): give it the version's values so merges differ too.
    let names: Vec<String> = model.linears().into_iter().map(|(n, _)| n).collect();
    for name in names {
        if let Some(lora) = model.linear_mut(&name).and_then(|l| l.lora.as_mut()) {
            let b = lora.lora_b.val();
            // A fresh leaf (not an op on the old one), as a loaded adapter's tensor is.
            lora.lora_b = burn::module::Param::from_tensor(burn::tensor::Tensor::full(b.dims(), version as f32 * 1e-3, &b.device()));
        }
    }
    model
}

#[test]
fn adapter_writer_child() {
    crash_child_writes("LLM_TRAIN_CRASH_ADAPTER", |path, v| {
        save_adapter(&adapted(v), &spec(), "tiny", path).unwrap();
    });
}

#[test]
fn merged_writer_child() {
    crash_child_writes("LLM_TRAIN_CRASH_MERGED", |path, v| {
        save_merged(&adapted(v), None, path).unwrap();
    });
}

#[test]
fn trainer_checkpoint_child() {
    crash_child_writes("LLM_TRAIN_CRASH_TRAINER", |path, v| {
        let mut trainer = Trainer::new(adapted(v), TrainConfig::default(), 0).unwrap();
        trainer.optimizer.step = v;
        trainer.save_checkpoint(path).unwrap();
    });
}

#[test]
fn a_killed_adapter_save_leaves_a_complete_adapter() {
    assert!(assert_writes_survive_kills("crash_writers::adapter_writer_child", "LLM_TRAIN_CRASH_ADAPTER", "adapter", 5) > 0);
}

#[test]
fn a_killed_merged_save_leaves_a_complete_checkpoint() {
    assert!(assert_writes_survive_kills("crash_writers::merged_writer_child", "LLM_TRAIN_CRASH_MERGED", "merged", 5) > 0);
}

#[test]
fn a_killed_trainer_checkpoint_leaves_a_complete_checkpoint() {
    assert!(assert_writes_survive_kills("crash_writers::trainer_checkpoint_child", "LLM_TRAIN_CRASH_TRAINER", "trainer", 5) > 0);
}
