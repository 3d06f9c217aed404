//! Speculative decoding: greedy output equal to plain greedy for every drafter, and sampled
//! output distributed as the target's (chi-square tests at the 0.999 level, fixed seeds, so
//! the verdict is the same on every run).

use llm_core::generate::processors::{log_softmax, LogitsProcessor, TopK};
use llm_core::generate::speculative::{accept_or_residual, prompt_lookup};
use llm_core::generate::{Drafter, GenerationConfig, Generator, Sampler, SpeculativeConfig};
use llm_core::weights::{load_model, LoadOptions};
use llm_core::CausalLm;
use llm_testkit::*;
use std::collections::HashMap;

fn tiny(variant: &str) -> CausalLm<TestBackend> {
    load_model(fixture(&format!("a_tiny_llama/{variant}")), LoadOptions::default(), &Default::default()).unwrap()
}

fn prompts() -> Vec<Vec<u32>> {
    let golden = read_json(&fixture("a_tiny_llama/llama/golden.json"));
    let mut out: Vec<Vec<u32>> = golden["prompts"].as_array().unwrap().iter().map(|p| json_ids(&p["input_ids"])).collect();
    // Repeats give prompt lookup something to find.
    out.push([10, 20, 30, 40, 50, 10, 20, 30, 40, 50, 10, 20].to_vec());
    out
}

#[test]
fn speculative_greedy_equals_plain_greedy_for_every_drafter() {
    let target = tiny("llama");
    let other = tiny("llama_rope_llama3");
    let config = GenerationConfig { eos_token_id: vec![2], ..GenerationConfig::greedy(24) };
    let gen = Generator::new(&target, config).unwrap();
    for prompt in prompts() {
        let plain = gen.generate(std::slice::from_ref(&prompt)).unwrap();
        for (name, drafter) in [
            ("self", Drafter::Model(&target)),
            ("other model", Drafter::Model(&other)),
            ("prompt lookup", Drafter::PromptLookup { max_ngram: 3 }),
        ] {
            let (out, stats) = gen.generate_speculative(&prompt, drafter, SpeculativeConfig::default()).unwrap();
            assert_eq!(out.sequences, plain.sequences, "{name} on {prompt:?}");
            assert_eq!(out.stop_reasons, plain.stop_reasons, "{name}");
            assert_eq!(stats.new_tokens, plain.sequences[0].len());
            if name == "self" {
                // A model drafting for itself agrees except where one-row and many-row
                // forwards round a near tie differently.
                assert!(stats.acceptance_rate() > 0.9, "self-draft acceptance {stats:?}");
                assert!(stats.tokens_per_forward() > 2.0, "{stats:?}");
            }
        }
    }
}

#[test]
fn prompt_lookup_proposes_what_followed_the_earliest_match() {
    assert_eq!(prompt_lookup(&[1, 2, 3, 9, 1, 2, 3, 7, 1, 2, 3], 3, 2), vec![9, 1]);
    assert_eq!(prompt_lookup(&[5, 6, 7, 5], 2, 4), vec![6, 7, 5]);
    assert_eq!(prompt_lookup(&[1, 2, 3], 2, 4), Vec::<u32>::new());
}

/// Upper 0.999 quantile of chi-square with `df` degrees of freedom (Wilson-Hilferty; within
/// 1% of the table for df >= 3).
fn chi2_crit(df: usize) -> f64 {
    let (df, z) = (df as f64, 3.0902);
    let a = 2.0 / (9.0 * df);
    df * (1.0 - a + z * a.sqrt()).powi(3)
}

/// Pearson's statistic of `counts` against probabilities `want`, cells with an expected count
/// under 5 pooled into one; returns (statistic, degrees of freedom).
fn chi2<K: std::hash::Hash + Eq>(counts: &HashMap<K, usize>, want: &HashMap<K, f64>, n: usize) -> (f64, usize) {
    let (mut stat, mut cells, mut pool_obs, mut pool_exp) = (0.0, 0, 0.0, 0.0);
    for (k, &p) in want {
        let (obs, exp) = (*counts.get(k).unwrap_or(&0) as f64, p * n as f64);
        if exp < 5.0 {
            pool_obs += obs;
            pool_exp += exp;
        } else {
            stat += (obs - exp).powi(2) / exp;
            cells += 1;
        }
    }
    let unexpected: usize = counts.iter().filter(|(k, _)| !want.contains_key(k)).map(|(_, &c)| c).sum();
    assert_eq!(unexpected, 0, "tokens outside the target's support were drawn");
    if pool_exp > 0.0 {
        stat += (pool_obs - pool_exp).powi(2) / pool_exp;
        cells += 1;
    }
    (stat, cells - 1)
}

/// Last-position logits of `ids` processed by top-k 8, as probabilities.
fn dist(model: &CausalLm<TestBackend>, ids: &[u32], k: usize) -> Vec<f32> {
    let logits = to_vec(model.forward(ids_tensor::<TestBackend>(&[ids.to_vec()], &Default::default())));
    let vocab = model.config.vocab_size;
    let mut scores = logits[logits.len() - vocab..].to_vec();
    TopK(k).process(ids, ids.len(), &mut scores);
    log_softmax(&scores).into_iter().map(f32::exp).collect()
}

#[test]
fn the_acceptance_rule_samples_the_target_distribution() {
    // p and q from two different models: overlapping but different top-8 supports.
    let prompt = [1u32, 328, 384, 12];
    let p = dist(&tiny("llama"), &prompt, 8);
    let q = dist(&tiny("llama_rope_llama3"), &prompt, 8);
    let q_scores: Vec<f32> = q.iter().map(|&x| x.ln()).collect();
    let n = 20_000;
    for (label, point_mass) in [("draft model", false), ("prompt lookup", true)] {
        let mut sampler = Sampler::new(11);
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for _ in 0..n {
            let d = sampler.sample(&q_scores);
            let q = (!point_mass).then_some(q.as_slice());
            let (accept, residual) = accept_or_residual(&p, q, d, sampler.uniform());
            let token = if accept { d } else { sampler.sample(&residual) };
            *counts.entry(token).or_default() += 1;
        }
        let want: HashMap<u32, f64> = p.iter().enumerate().filter(|(_, &x)| x > 0.0).map(|(i, &x)| (i as u32, x as f64)).collect();
        let (stat, df) = chi2(&counts, &want, n);
        assert!(stat < chi2_crit(df), "{label}: chi-square {stat:.1} with {df} df over {n} draws");
    }
}

#[test]
fn speculative_sampling_end_to_end_matches_the_targets_joint_distribution() {
    let (target, draft) = (tiny("llama"), tiny("llama_rope_llama3"));
    let prompt = vec![1u32, 328, 384];
    let k = 3;
    // Exact joint probability of the first three new tokens under top-k 3 sampling.
    let mut want: HashMap<Vec<u32>, f64> = HashMap::new();
    let p1 = dist(&target, &prompt, k);
    for (a, &pa) in p1.iter().enumerate().filter(|(_, &x)| x > 0.0) {
        let ctx_a = [prompt.clone(), vec![a as u32]].concat();
        let p2 = dist(&target, &ctx_a, k);
        for (b, &pb) in p2.iter().enumerate().filter(|(_, &x)| x > 0.0) {
            let ctx_b = [ctx_a.clone(), vec![b as u32]].concat();
            for (c, &pc) in dist(&target, &ctx_b, k).iter().enumerate().filter(|(_, &x)| x > 0.0) {
                want.insert(vec![a as u32, b as u32, c as u32], (pa * pb * pc) as f64);
            }
        }
    }
    let runs = 3000;
    let mut counts: HashMap<Vec<u32>, usize> = HashMap::new();
    let spec = SpeculativeConfig { draft_tokens: 2, max_draft_tokens: 2, adaptive: false };
    for seed in 0..runs {
        let config = GenerationConfig { do_sample: true, top_k: k, seed: seed as u64, ..GenerationConfig::greedy(3) };
        let gen = Generator::new(&target, config).unwrap();
        let (out, _) = gen.generate_speculative(&prompt, Drafter::Model(&draft), spec).unwrap();
        *counts.entry(out.sequences[0].clone()).or_default() += 1;
    }
    let (stat, df) = chi2(&counts, &want, runs);
    assert!(stat < chi2_crit(df), "chi-square {stat:.1} with {df} df over {runs} runs");
}

/// SmolLM2: the f32 target (the Q4_1 file dequantized at load) with its own Q4_1 blocks as the
/// draft, and prompt lookup on the blocks model, give plain greedy's tokens.
#[test]
fn smollm2_speculative_greedy_equals_plain_greedy() {
    let path = smollm2_gguf();
    let device = Default::default();
    let blocks: CausalLm<TestBackend> = load_model(&path, LoadOptions::default(), &device).unwrap();
    let dense: CausalLm<TestBackend> = load_model(&path, LoadOptions { ggml_blocks: false, ..LoadOptions::default() }, &device).unwrap();
    let tok = llm_core::Tokenizer::from_gguf(&llm_core::weights::GgufFile::open(&path).unwrap()).unwrap();
    let text = "The cat sat on the mat. The dog sat on the log. The cat sat on the";
    let prompt = tok.encode(text, false).unwrap().ids;
    let config = GenerationConfig::greedy(20);
    for (name, target, drafter) in [
        ("f32 target, Q4_1 draft", &dense, Drafter::Model(&blocks)),
        ("Q4_1, prompt lookup", &blocks, Drafter::PromptLookup { max_ngram: 3 }),
    ] {
        let gen = Generator::new(target, config.clone()).unwrap();
        let plain = gen.generate(std::slice::from_ref(&prompt)).unwrap();
        let (out, stats) = gen.generate_speculative(&prompt, drafter, SpeculativeConfig::default()).unwrap();
        assert_eq!(out.sequences, plain.sequences, "{name}");
        assert!(stats.accepted > 0, "{name}: {stats:?}");
    }
}
