//! `CausalLm::forward_packed` (continuous batching's step): sequences at different points of
//! their generation, packed into one pass, get the logits each gets alone.

use burn::tensor::backend::Backend;
use llm_core::model::PackedSequence;
use llm_core::nn::KvCache;
use llm_core::weights::{load_model, LoadOptions};
use llm_core::{CausalLm, ModelInput};
use llm_testkit::*;

/// Last-token logits of `new` after `past` through a cache, one sequence alone.
fn alone<B: Backend>(model: &CausalLm<B>, past: &[u32], new: &[u32]) -> Vec<f32> {
    let device = model.device();
    let mut cache = model.new_cache(1, 64);
    if !past.is_empty() {
        model.forward_with(ModelInput::new(ids_tensor(&[past.to_vec()], &device)), Some(&mut cache)).unwrap();
    }
    let mut input = ModelInput::new(ids_tensor(&[new.to_vec()], &device));
    input.last_logits_only = true;
    to_vec(model.forward_with(input, Some(&mut cache)).unwrap().logits)
}

/// The same sequences packed: each cache is filled with its past alone first.
fn packed<B: Backend>(model: &CausalLm<B>, cases: &[(Vec<u32>, Vec<u32>)]) -> Vec<f32> {
    let mut caches: Vec<KvCache<B>> = cases
        .iter()
        .map(|(past, _)| {
            // A small cache that must grow inside the packed pass.
            let mut cache = model.new_cache(1, 4).with_limit(64);
            if !past.is_empty() {
                let ids = ids_tensor(std::slice::from_ref(past), &model.device());
                model.forward_with(ModelInput::new(ids), Some(&mut cache)).unwrap();
            }
            cache
        })
        .collect();
    let mut seqs: Vec<PackedSequence<B>> =
        cases.iter().zip(caches.iter_mut()).map(|((_, new), cache)| PackedSequence { tokens: new, cache }).collect();
    let logits = model.forward_packed(&mut seqs).unwrap();
    for ((past, new), cache) in cases.iter().zip(&caches) {
        assert_eq!(cache.len(), past.len() + new.len(), "cache advanced by the new tokens");
    }
    to_vec(logits)
}

fn cases() -> Vec<(Vec<u32>, Vec<u32>)> {
    vec![
        (vec![], vec![1, 15, 27, 99, 3]),      // a fresh prompt
        (vec![1, 8, 9], vec![44]),             // a decode step
        (vec![1, 5], vec![6, 7, 8, 9, 10, 11]), // a later prefill chunk
        (vec![1, 2, 3, 4, 5, 6, 7], vec![70]), // another decode step, longer past
    ]
}

llm_testkit::backend_test! {
    /// Dense f32 tiny Llama: prefill, later chunks and decode steps in one pass equal each
    /// alone within the f32 logits tolerance (only summation order differs).
    fn packed_sequences_equal_each_alone<B>(device, kind) {
        let model: CausalLm<B> = load_model(fixture("a_tiny_llama/llama"), LoadOptions::default(), device).unwrap();
        let cases = cases();
        let got = packed(&model, &cases);
        let vocab = model.config.vocab_size;
        assert_eq!(got.len(), cases.len() * vocab);
        for (i, (past, new)) in cases.iter().enumerate() {
            let want = alone(&model, past, new);
            assert_close(&format!("sequence {i}"), &got[i * vocab..(i + 1) * vocab], &want, logits_tol(kind));
        }
    }
}

/// Mixtral (sparse MoE) with a 3-key sliding window on every layer: each sequence's mask
/// hides keys further back than the window in the packed pass as alone.
#[test]
fn packed_mixtral_with_sliding_window_equal_each_alone() {
    let mut model: CausalLm<TestBackend> =
        load_model(fixture("a_tiny_llama/mixtral"), LoadOptions::default(), &Default::default()).unwrap();
    for layer in &mut model.layers {
        layer.self_attn.sliding_window = Some(3);
    }
    let cases = cases();
    let got = packed(&model, &cases);
    let vocab = model.config.vocab_size;
    for (i, (past, new)) in cases.iter().enumerate() {
        assert_close(&format!("sequence {i}"), &got[i * vocab..(i + 1) * vocab], &alone(&model, past, new), 1e-4);
    }
}

/// SmolLM2 Q4_1 with GGML blocks kept as stored: six decode rows batched together (through
/// the tile kernels where the CPU has them) get exactly the one-row pass's logits, bit for
/// bit: each row's activations are quantized on their own, the batched kernels sum each row
/// in the one-row kernel's order, and attention runs on the host buffers alone or packed.
#[test]
fn packed_smollm2_gguf_decode_rows_equal_each_alone() {
    let model: CausalLm<TestBackend> = load_model(smollm2_gguf(), LoadOptions::default(), &Default::default()).unwrap();
    let cases: Vec<(Vec<u32>, Vec<u32>)> =
        (0..6).map(|i| ((0..5 + 3 * i).map(|t| 100 + 37 * t as u32 % 900).collect(), vec![200 + i as u32])).collect();
    let got = packed(&model, &cases);
    let vocab = model.config.vocab_size;
    for (i, (past, new)) in cases.iter().enumerate() {
        let want = alone(&model, past, new);
        assert!(got[i * vocab..(i + 1) * vocab] == want[..], "sequence {i}: packed logits differ from alone");
    }
}

