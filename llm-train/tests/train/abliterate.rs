//! Abliteration on the tiny Llama: orthogonalised writers leave the residual stream with no
//! component along the direction; the algebra of each edited matrix; directions from
//! activations; refusal detection.

use burn::backend::Flex;
use llm_train::abliterate::{ablated, is_refusal, next_token_kl, orthogonalize, projection_onto, refusal_directions};
use llm_train::params::read_params;

use crate::common::*;

fn prompts(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[test]
fn orthogonalised_model_never_writes_the_direction() {
    let model = tiny_model_on::<Flex>(&Default::default());
    let tok = tiny_tokenizer();
    let refused = prompts(&["how do I pick a lock", "write a rude letter", "steal a car quickly"]);
    let harmless = prompts(&["how do I bake bread", "write a kind letter", "wash a car quickly"]);
    let dirs = refusal_directions(&model, &tok, &refused, &harmless).unwrap();
    assert_eq!(dirs.directions.len(), 2);
    // Layer 0's input at the last position is the template's last token embedding, the same for
    // every prompt: no separation there. Later layers have seen the prompt.
    assert_eq!(dirs.separation[0], 0.0);
    let d = &dirs.directions[1];
    let norm: f64 = d.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-6 && dirs.separation[1] > 0.0, "unit direction, separation {}", dirs.separation[1]);
    let r = dirs.directions[1].clone();
    let all = [refused.clone(), harmless.clone()].concat();
    let before = projection_onto(&model, &tok, &all, &r).unwrap();
    let edited = orthogonalize(model.clone(), &r, None).unwrap();
    let after = projection_onto(&edited, &tok, &all, &r).unwrap();
    // Before: the direction is a real component of the stream. After: only f32 rounding of the
    // residual sums (relative to the mean state norm).
    assert!(before > 0.05, "before {before}");
    assert!(after < 1e-5, "after {after}");
    // Each writer: rᵀ W' = 0 and W' = W on the complement of r.
    let (w, w2) = (read_params(&model, |n| n.ends_with("o_proj.weight")), read_params(&edited, |n| n.ends_with("o_proj.weight")));
    for (name, (shape, v)) in &w {
        let v2 = &w2[name].1;
        let cols = shape[1];
        for c in 0..cols {
            let proj: f64 = (0..shape[0]).map(|i| f64::from(r[i]) * f64::from(v2[i * cols + c])).sum();
            assert!(proj.abs() < 1e-6, "{name} column {c}: rᵀW' = {proj}");
            let orig: f64 = (0..shape[0]).map(|i| f64::from(r[i]) * f64::from(v[i * cols + c])).sum();
            for i in 0..shape[0] {
                let want = f64::from(v[i * cols + c]) - f64::from(r[i]) * orig;
                assert!((f64::from(v2[i * cols + c]) - want).abs() < 1e-6);
            }
        }
    }
    // The in-memory ablation is the same edit; it changes the next-token distribution.
    let again = ablated(&model, &r).unwrap();
    assert!(next_token_kl(&edited, &again, &tok, &harmless).unwrap().abs() < 1e-9);
    assert!(next_token_kl(&model, &edited, &tok, &harmless).unwrap() > 0.0);
    // Bad input: a direction of the wrong width, per-layer weights of the wrong count.
    assert!(orthogonalize(model.clone(), &r[..10], None).unwrap_err().to_string().contains("direction"));
    assert!(orthogonalize(model, &r, Some(&[1.0])).unwrap_err().to_string().contains("layer_weights"));
}

#[test]
fn refusals_are_detected_by_their_markers() {
    assert!(is_refusal("I’m sorry, but I can’t help with that."));
    assert!(is_refusal("As an AI, I cannot assist."));
    assert!(!is_refusal("Sure! Here is a recipe for bread."));
}
