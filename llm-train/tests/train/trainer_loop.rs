//! The training loop on the tiny Llama: exact resume after a crash, NaN stop with the last good
//! checkpoint, metrics, and eval loss going down.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::common::*;
use llm_train::TrainError;
use llm_train::lora::{attach_lora, LoraSpec, TargetModules};
use llm_train::optim::{AdamWConfig, Schedule};
use llm_train::params::write_params;
use llm_train::sft::TokenizedExample;
use llm_train::trainer::{TrainConfig, TrainEvent, Trainer};

fn data() -> Vec<TokenizedExample> {
    // j_train's three examples, twice over with shifted copies: 6 examples.
    let mut v = tokenized();
    let more: Vec<_> = v.iter().map(|e| TokenizedExample { input_ids: e.input_ids[1..].to_vec(), labels: e.labels[1..].to_vec() }).collect();
    v.extend(more);
    v
}

fn trainer(dir: &std::path::Path) -> Trainer<TrainBackend> {
    let spec = LoraSpec { r: 4, alpha: 8.0, dropout: 0.1, targets: TargetModules::AllLinear, ..Default::default() };
    let (model, _) = attach_lora(tiny_model(), &spec, 11).unwrap();
    let config = TrainConfig {
        optimizer: AdamWConfig { lr: 5e-3, ..Default::default() },
        schedule: Schedule::Cosine,
        warmup_steps: 2,
        max_steps: Some(8),
        batch_size: 2,
        grad_accum: 2,
        save_every: Some(3),
        eval_every: Some(4),
        output_dir: Some(dir.to_path_buf()),
        seed: 5,
        ..Default::default()
    };
    Trainer::new(model, config, 0).unwrap()
}

fn losses(events: &[TrainEvent]) -> Vec<(u64, f64)> {
    events.iter().filter_map(|e| if let TrainEvent::Step(m) = e { Some((m.step, m.loss)) } else { None }).collect()
}

#[test]
fn killed_and_resumed_run_continues_the_same_loss_curve() {
    let data = data();
    let eval = &data[..3];
    // Uninterrupted.
    let dir_a = temp_dir("resume-a");
    let mut events_a = vec![];
    let report = trainer(&dir_a).fit(&data, Some(eval), |e| events_a.push(e.clone())).unwrap();
    assert_eq!(report.steps.len(), 8);
    assert_eq!(report.checkpoints.len(), 2);
    assert!(report.evals.len() == 2 && report.evals[1].1 < report.evals[0].1, "eval loss falls: {:?}", report.evals);

    // Killed during step 5 (after the step-3 checkpoint), then resumed from it.
    let dir_b = temp_dir("resume-b");
    let mut events_b = vec![];
    let crashed = catch_unwind(AssertUnwindSafe(|| {
        trainer(&dir_b).fit(&data, Some(eval), |e| {
            events_b.push(e.clone());
            if matches!(e, TrainEvent::Step(m) if m.step == 5) {
                panic!("killed");
            }
        })
    }));
    assert!(crashed.is_err());
    let mut resumed = trainer(&dir_b);
    resumed.resume(&dir_b.join("checkpoint-3")).unwrap();
    assert_eq!(resumed.step(), 3);
    let mut events_c = vec![];
    resumed.fit(&data, Some(eval), |e| events_c.push(e.clone())).unwrap();

    let a = losses(&events_a);
    let c = losses(&events_c);
    assert_eq!(c.first().map(|x| x.0), Some(4));
    assert_eq!(&a[3..], &c[..], "resumed losses equal the uninterrupted run's, bit for bit");
    assert_eq!(&losses(&events_b)[..3], &a[..3]);

    // metrics.jsonl has one line per step, evaluation and checkpoint.
    let lines = std::fs::read_to_string(dir_a.join("metrics.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.iter().filter(|r| r.get("loss").is_some()).count(), 8);
    assert_eq!(records.iter().filter(|r| r.get("eval_loss").is_some()).count(), 2);
    assert!(records[0]["learning_rate"].as_f64().unwrap() == 0.0, "warmup starts at 0");
}

#[test]
fn nan_loss_stops_with_the_step_and_the_last_good_checkpoint() {
    let data = data();
    let dir = temp_dir("nan");
    let mut t = trainer(&dir);
    t.config.max_steps = Some(3);
    t.fit(&data, None, |_| {}).unwrap();
    assert!(dir.join("checkpoint-3/trainable.safetensors").exists());
    // Poison one adapter factor, as a diverged run would.
    let nan = [("model.layers.1.self_attn.v_proj.lora_B.weight".to_string(), (vec![32, 4], vec![f32::NAN; 128]))].into();
    t.model = write_params(t.model.clone(), &nan);
    t.config.max_steps = Some(6);
    let err = t.fit(&data, None, |_| {}).unwrap_err();
    match &err {
        TrainError::NonFinite { step, what, last_checkpoint, .. } => {
            assert_eq!(*step, 4);
            assert_eq!(what, "loss");
            assert_eq!(last_checkpoint.as_deref(), Some(dir.join("checkpoint-3").as_path()));
        }
        other => panic!("expected NonFinite, got {other}"),
    }
    assert!(err.to_string().contains("step 4"), "{err}");
    assert_eq!(t.step(), 3, "the failed step changed nothing");
}

#[test]
fn resume_refuses_a_checkpoint_of_another_adapter() {
    let data = data();
    let dir = temp_dir("mismatch");
    let mut t = trainer(&dir);
    t.config.max_steps = Some(3);
    t.fit(&data, None, |_| {}).unwrap();
    let spec = LoraSpec { r: 4, alpha: 8.0, targets: TargetModules::parse("q_proj"), ..Default::default() };
    let (model, _) = attach_lora(tiny_model(), &spec, 0).unwrap();
    let mut other = Trainer::new(model, TrainConfig::default(), 0).unwrap();
    let err = other.resume(&dir.join("checkpoint-3")).unwrap_err().to_string();
    assert!(err.contains("checkpoint-3") && err.contains("not trainable in the model"), "{err}");
}
