//! DPO and ORPO against trl on the tiny Llama (fixture d_pref): batch layout, per-sequence
//! log-probs, losses, LoRA gradient norms and one gradient tensor; and bad preference data.

use std::path::Path;

use burn::module::AutodiffModule;
use crate::common::*;
use llm_core::adapter::PeftAdapter;
use llm_train::TrainError;
use llm_train::data::Turns;
use llm_train::dpo::{precompute_reference, Dpo, DpoLoss, ReferenceSource};
use llm_train::orpo::Orpo;
use llm_train::params::{global_norm, is_lora, set_trainable};
use llm_train::pref::{parse_preferences, sequence_logps, PrefBatch, PrefTokenizer, PreferenceExample, TokenizedPair};
use llm_train::trainer::{TrainConfig, Trainer};

fn golden() -> serde_json::Value {
    read_json(&fixture("d_pref/golden.json"))
}

pub(crate) fn pairs() -> Vec<TokenizedPair> {
    let data: Vec<PreferenceExample> = golden()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| PreferenceExample {
            prompt: Turns::Text(d["prompt"].as_str().unwrap().into()),
            chosen: Turns::Text(d["chosen"].as_str().unwrap().into()),
            rejected: Turns::Text(d["rejected"].as_str().unwrap().into()),
        })
        .collect();
    let tok = tiny_tokenizer();
    let pt = PrefTokenizer { tokenizer: &tok, max_length: Some(64), max_prompt_length: None, max_completion_length: None };
    let (pairs, report) = pt.tokenize_all(&data).unwrap();
    assert_eq!(report, Default::default());
    pairs
}

pub(crate) fn policy_trainer() -> Trainer<TrainBackend> {
    let mut model = tiny_model();
    PeftAdapter::load(fixture("c_lora/adapter")).unwrap().apply(&mut model).unwrap();
    Trainer::new(set_trainable(model, is_lora), TrainConfig { batch_size: 2, ..Default::default() }, 0).unwrap()
}

fn ints(v: &[f64]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

fn grad_b(trainer: &Trainer<TrainBackend>, grads: &llm_train::params::Gradients<burn::backend::Flex>, file: &str) {
    let (_, want) = read_tensor(&fixture(file), "grad.layer0.q_proj.lora_B");
    let got = grads["model.layers.0.self_attn.q_proj.lora_B.weight"].clone().into_data().to_vec::<f32>().unwrap();
    assert_close(&format!("{file} lora_B grad"), &got, &want, 1e-6);
    let _ = trainer;
}

#[test]
fn batch_layout_matches_trl() {
    let pairs = pairs();
    let batch = PrefBatch::new(&pairs.iter().collect::<Vec<_>>(), 0);
    let file = fixture("d_pref/dpo.safetensors");
    let (shape, ids) = read_tensor(&file, "input_ids");
    assert_eq!(shape, vec![4, 30]);
    assert_eq!(batch.input_ids.concat().iter().map(|&x| x as i64).collect::<Vec<_>>(), ints(&ids));
    let (_, am) = read_tensor(&file, "attention_mask");
    assert_eq!(batch.attention_mask.concat().iter().map(|&x| x as i64).collect::<Vec<_>>(), ints(&am));
    let (_, cm) = read_tensor(&file, "completion_mask");
    assert_eq!(batch.completion_mask.concat().iter().map(|&x| x as i64).collect::<Vec<_>>(), ints(&cm));
}

#[test]
fn dpo_matches_trl() {
    let g = golden();
    let mut pairs = pairs();
    let trainer = policy_trainer();
    let dpo = Dpo { beta: 0.1, loss: DpoLoss::Sigmoid { label_smoothing: 0.0 }, reference: ReferenceSource::DisabledAdapters, pad_id: 0 };
    let out = trainer.loss_and_grads_with(&dpo, &[pairs.iter().collect()]).unwrap();
    assert_rel("DPO loss", out.loss, g["dpo"]["trl_loss"].as_f64().unwrap(), 1e-5);
    assert_rel("DPO LoRA grad norm", global_norm(&out.grads), g["dpo"]["lora_grad_global_l2_norm"].as_f64().unwrap(), 1e-4);
    grad_b(&trainer, &out.grads, "d_pref/dpo.safetensors");
    // Sequence log-probs: policy and reference (the base model), chosen then rejected.
    let policy = trainer.model.valid();
    let batch = PrefBatch::new(&pairs.iter().collect::<Vec<_>>(), 0);
    let logps = sequence_logps(&policy, &batch).unwrap().sum.into_data().to_vec::<f32>().unwrap();
    let (_, want) = read_tensor(&fixture("d_pref/dpo.safetensors"), "policy_logps");
    assert_close("policy logps", &logps, &want, 2e-4);
    let base = tiny_model().valid();
    precompute_reference(&base, &mut pairs, 2, 0).unwrap();
    let (_, want) = read_tensor(&fixture("d_pref/dpo.safetensors"), "ref_logps");
    let refs: Vec<f32> = pairs.iter().map(|p| p.reference.unwrap().0 as f32).chain(pairs.iter().map(|p| p.reference.unwrap().1 as f32)).collect();
    assert_close("reference logps", &refs, &want, 2e-4);
    // Precomputed reference: the same loss and metrics.
    let pre = Dpo { reference: ReferenceSource::Precomputed, ..dpo };
    let again = trainer.loss_and_grads_with(&pre, &[pairs.iter().collect()]).unwrap();
    assert_rel("DPO loss, precomputed reference", again.loss, out.loss, 1e-6);
    let m = &out.metrics;
    let (pc, pr) = ((logps[0] + logps[1]) as f64 / 2.0, (logps[2] + logps[3]) as f64 / 2.0);
    assert!((m["logps/chosen"] - pc).abs() < 1e-4 && (m["logps/rejected"] - pr).abs() < 1e-4, "{m:?}");
    assert!((m["rewards/margins"] - (m["rewards/chosen"] - m["rewards/rejected"])).abs() < 1e-9);
    // Accumulating the two pairs as two micro-batches gives the same step. The rows are padded
    // to other lengths, so the matmuls block differently: f32 rounding (1.2e-6 measured with
    // the AVX-512 kernels), hence 3e-6.
    let split = trainer.loss_and_grads_with(&dpo, &[vec![&pairs[0]], vec![&pairs[1]]]).unwrap();
    assert_rel("DPO loss over two micro-batches", split.loss, out.loss, 3e-6);
    assert_rel("DPO grad norm over two micro-batches", global_norm(&split.grads), global_norm(&out.grads), 1e-5);
}

#[test]
fn dpo_loss_variants_follow_their_formulas() {
    use burn::tensor::{Tensor, TensorData};
    let z = [0.7f64, -1.3];
    let dev = Default::default();
    let t = || Tensor::<burn::backend::Flex, 1>::from_data(TensorData::new(z.iter().map(|&x| x as f32).collect::<Vec<_>>(), [2]), &dev);
    type Formula = fn(f64, f64) -> f64;
    // logσ(x) = −ln(1 + e^{−x})
    let beta = 0.2;
    let cases: [(DpoLoss, Formula); 4] = [
        (DpoLoss::Sigmoid { label_smoothing: 0.1 }, |z, b| 0.9 * (1.0 + (-(b * z)).exp()).ln() + 0.1 * (1.0 + (b * z).exp()).ln()),
        (DpoLoss::Robust { label_smoothing: 0.1 }, |z, b| (0.9 * (1.0 + (-(b * z)).exp()).ln() - 0.1 * (1.0 + (b * z).exp()).ln()) / 0.8),
        (DpoLoss::Hinge, |z, b| (1.0 - b * z).max(0.0)),
        (DpoLoss::Ipo, |z, b| (z - 1.0 / (2.0 * b)).powi(2)),
    ];
    for (loss, want) in cases {
        let dpo = Dpo { beta, loss, reference: ReferenceSource::Precomputed, pad_id: 0 };
        let got = dpo.pair_losses(t()).into_data().to_vec::<f32>().unwrap();
        for (g, &zz) in got.iter().zip(&z) {
            let w = want(zz, beta);
            assert!((*g as f64 - w).abs() < 1e-5 * w.abs().max(1.0), "{loss:?} z={zz}: {g} vs {w}");
        }
    }
}

#[test]
fn orpo_matches_trl() {
    let g = golden();
    let pairs = pairs();
    let trainer = policy_trainer();
    let orpo = Orpo { lambda: 0.1, pad_id: 0 };
    let out = trainer.loss_and_grads_with(&orpo, &[pairs.iter().collect()]).unwrap();
    assert_rel("ORPO loss", out.loss, g["orpo"]["trl_loss"].as_f64().unwrap(), 1e-5);
    assert_rel("ORPO LoRA grad norm", global_norm(&out.grads), g["orpo"]["lora_grad_global_l2_norm"].as_f64().unwrap(), 1e-4);
    grad_b(&trainer, &out.grads, "d_pref/orpo.safetensors");
    let m = &out.metrics;
    let gm = &g["orpo"]["metrics"];
    for k in ["nll_loss", "log_odds_ratio", "log_odds_chosen", "rewards/chosen", "rewards/rejected", "logps/chosen"] {
        let (got, want) = (m[k], gm[k].as_f64().unwrap());
        assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "{k}: {got} vs {want}");
    }
    assert_eq!(m["rewards/accuracies"], 0.5);
    // logits/* is the mean over completion tokens (trl's DPO definition); trl's ORPO averages
    // every position of the padded rows instead, so those two are not compared.
    assert!(m["logits/chosen"].is_finite());
}

#[test]
fn orpo_evaluation_needs_no_reference_and_matches_trl() {
    let g = golden();
    let pairs = pairs();
    assert!(pairs.iter().all(|p| p.reference.is_none()), "ORPO pairs carry no reference log-probs");
    let trainer = policy_trainer();
    let orpo = Orpo { lambda: 0.1, pad_id: 0 };
    let refs: Vec<_> = pairs.iter().collect();
    let (loss, logps, metrics) = llm_train::orpo::evaluate_pairs(&orpo, &trainer.model, &refs).unwrap();
    assert_rel("ORPO eval loss", loss, g["orpo"]["trl_loss"].as_f64().unwrap(), 1e-5);
    assert_eq!(logps.len(), 2 * pairs.len());
    let want = g["orpo"]["metrics"]["logps/chosen"].as_f64().unwrap();
    assert!((metrics["logps/chosen"] - want).abs() <= 1e-5 * want.abs().max(1.0), "{} vs {want}", metrics["logps/chosen"]);
}

#[test]
fn bad_pairs_are_reported_and_truncation_counted() {
    let err = parse_preferences("{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n{\"prompt\": \"a\", \"chosen\": \" same\", \"rejected\": \" same\"}\n", Path::new("prefs.jsonl")).unwrap_err();
    assert!(matches!(err, TrainError::Data { line: 2, .. }), "{err}");
    assert!(err.to_string().contains("prefs.jsonl:2") && err.to_string().contains("chosen` equals `rejected"), "{err}");
    let err = parse_preferences("{\"prompt\": \"a\", \"chosen\": \"b\"}\n", Path::new("p.jsonl")).unwrap_err().to_string();
    assert!(err.contains("p.jsonl:1") && err.contains("rejected"), "{err}");

    let long = parse_preferences(
        "{\"prompt\": \"The capital of France is a question many people ask\", \"chosen\": \" Paris.\", \"rejected\": \" Berlin.\"}\n{\"prompt\": \"Hi\", \"chosen\": \" a\", \"rejected\": \" b\"}\n",
        Path::new("p.jsonl"),
    )
    .unwrap();
    let tok = tiny_tokenizer();
    let pt = PrefTokenizer { tokenizer: &tok, max_length: Some(20), max_prompt_length: Some(12), max_completion_length: None };
    let (pairs, report) = pt.tokenize_all(&long).unwrap();
    assert_eq!(report.prompts, 1, "{report:?}");
    assert_eq!(pairs[0].prompt.len(), 12);
    assert!(pairs.iter().all(|p| p.prompt.len() + p.chosen.len().max(p.rejected.len()) <= 20));
    // The prompt keeps its end (the part next to the completion).
    let full = tok.encode("The capital of France is a question many people ask", false).unwrap().ids;
    assert_eq!(pairs[0].prompt, full[full.len() - 12..]);
}
