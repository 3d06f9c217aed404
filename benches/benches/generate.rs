//! Sampler and constraint-mask cost per token on SmolLM2's 49152-entry vocabulary, streaming
//! decode speed, constrained decode against free decode, and speculative decoding (a Q4_1
//! draft for the f32 target, prompt lookup) against plain decoding, in one run.
//!
//! ```text
//! scripts/fetch-models.sh && cargo bench -p llm-benches --bench generate
//! ```

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use llm_benches::{criterion_mean_s, smollm2_gguf};
use llm_core::chat::Message;
use llm_core::generate::{processors_for, Constraint, ConstraintEngine, Drafter, GenerationConfig, Generator, Sampler, SpeculativeConfig};
use llm_core::weights::{GgufFile, LoadOptions};
use llm_core::{ModelBundle, Tokenizer};

type B = burn::backend::Flex;

const VOCAB: usize = 49152;
const STREAM_TOKENS: usize = 32;

/// A fixed, realistic-looking logits row: a few peaks over a smooth tail.
fn logits() -> Vec<f32> {
    (0..VOCAB).map(|i| ((i * 2654435761usize) % 1000) as f32 / 100.0 - 5.0 + if i % 997 == 0 { 8.0 } else { 0.0 }).collect()
}

fn sampler(c: &mut Criterion) {
    let row = logits();
    let history: Vec<u32> = (0..300).map(|i| (i * 37 % VOCAB) as u32).collect();
    let mut group = c.benchmark_group("sampler_49152");
    group.throughput(Throughput::Elements(1));
    for (name, config) in [
        ("chain_t0.7_k50_p0.9_rep1.1", GenerationConfig { do_sample: true, temperature: 0.7, top_k: 50, top_p: 0.9, repetition_penalty: 1.1, ..Default::default() }),
        ("top_p0.9_only", GenerationConfig { do_sample: true, top_k: 0, top_p: 0.9, ..Default::default() }),
        ("min_p0.05_only", GenerationConfig { do_sample: true, top_k: 0, min_p: Some(0.05), ..Default::default() }),
    ] {
        let chain = processors_for(&config);
        let mut sampler = Sampler::new(0);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut scores = row.clone();
                for p in &chain {
                    p.process(&history, 200, &mut scores);
                }
                sampler.sample(&scores)
            })
        });
    }
    group.finish();
}

fn stream(c: &mut Criterion) {
    let path = smollm2_gguf();
    let bundle = ModelBundle::<B>::load(&path, LoadOptions::default(), &Default::default()).expect("SmolLM2 loads");
    let tok = Tokenizer::from_gguf(&GgufFile::open(&path).expect("gguf")).expect("tokenizer");
    let prompt = tok.encode("The capital of France is", false).expect("encode").ids;
    let config = GenerationConfig { max_new_tokens: STREAM_TOKENS, eos_token_id: vec![], ..GenerationConfig::default() };
    let generator = Generator::new(&bundle.model, config).expect("config").with_tokenizer(&tok);
    let mut group = c.benchmark_group("smollm2_stream");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).throughput(Throughput::Elements(1));
    group.bench_function("greedy_text_deltas", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters.div_ceil(STREAM_TOKENS as u64) {
                let mut deltas = generator.stream(&prompt).expect("stream");
                deltas.next(); // prefill, not timed
                let start = Instant::now();
                for d in deltas {
                    std::hint::black_box(d.expect("delta"));
                }
                total += start.elapsed();
            }
            // iter_custom wants the time of `iters` tokens; scale the whole-stream time.
            total.mul_f64(iters as f64 / (iters.div_ceil(STREAM_TOKENS as u64) * (STREAM_TOKENS as u64 - 1)) as f64)
        })
    });
    group.finish();
}

/// A schema of the kind a RAG judge or an extraction task asks for.
fn judge_schema() -> serde_json::Value {
    serde_json::json!({"type": "object", "additionalProperties": false, "required": ["verdict", "score", "reason"],
        "properties": {"verdict": {"enum": ["supported", "unsupported"]}, "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "reason": {"type": "string", "maxLength": 200}}})
}

/// Mask time per token along a valid output: mask, then consume the output's next token.
fn constraint_mask(tok: &Tokenizer) -> f64 {
    let engine = ConstraintEngine::new(tok, VOCAB, &[2]).expect("engine");
    let compiled = engine.compile(&Constraint::JsonSchema(judge_schema())).expect("schema compiles");
    let text = r#"{"verdict": "supported", "score": 4, "reason": "The passage states that about 500 residents left Hill Top for Mittagong as the fire approached."}"#;
    let ids = tok.encode(text, false).expect("encode").ids;
    let mut scores = logits();
    let (mut total, mut n) = (Duration::ZERO, 0);
    for _ in 0..5 {
        let mut m = compiled.matcher();
        for &id in &ids {
            let start = Instant::now();
            m.mask(&mut scores).expect("mask");
            total += start.elapsed();
            n += 1;
            m.consume(id).expect("the text follows the schema");
        }
    }
    total.as_secs_f64() / n as f64
}

/// One generation's new tokens per second of decode (prefill excluded), its length, and the
/// share of its time spent in the constraint.
fn decode_rate(generator: &Generator<'_, B>, prompt: &[u32]) -> (f64, usize, f64) {
    let out = generator.generate(&[prompt.to_vec()]).expect("generate");
    let total = out.prefill + out.decode_steps.iter().sum::<Duration>();
    (out.decode_tokens_per_s(), out.sequences[0].len(), out.constraint_time.as_secs_f64() / total.as_secs_f64())
}

/// Constrained against free decoding on SmolLM2 Q4_1, greedy and sampled.
fn constrained_decode(bundle: &ModelBundle<B>) -> Vec<String> {
    let tok = &bundle.tokenizer;
    let question = "Passage: An estimated 500 residents have left their homes for nearby Mittagong.\nClaim: Residents left for Mittagong.\nJudge the claim as JSON with verdict, score and reason.";
    let prompt = tok.encode(&tok.apply_chat_template(&[Message::new("user", question)], true).expect("template"), false).expect("encode").ids;
    let engine = ConstraintEngine::new(tok, bundle.model.config.vocab_size, &bundle.generation.eos_token_id).expect("engine");
    let compiled = engine.compile(&Constraint::JsonSchema(judge_schema())).expect("compiles");
    let mut lines = vec![];
    for (label, sample) in [("greedy", false), ("sampled t=0.8", true)] {
        let config = GenerationConfig { max_new_tokens: 48, do_sample: sample, temperature: 0.8, top_k: 0, seed: 1, eos_token_id: vec![], ..GenerationConfig::default() };
        let free = Generator::new(&bundle.model, config.clone()).expect("config");
        let constrained = Generator::new(&bundle.model, GenerationConfig { eos_token_id: bundle.generation.eos_token_id.clone(), ..config })
            .expect("config")
            .with_constraint(compiled.clone());
        decode_rate(&free, &prompt); // warm-up
        let (f, _, _) = decode_rate(&free, &prompt);
        let (c, n, share) = decode_rate(&constrained, &prompt);
        lines.push(format!(
            "constrained {label}: {c:.1} tokens/s ({n} tokens, {:.1}% of the time in the constraint) vs free {f:.1} tokens/s: {:.3}x",
            100.0 * share,
            c / f
        ));
    }
    lines
}

/// Speculative decoding against plain greedy: an f32 target (SmolLM2 dequantized) with its
/// Q4_1 blocks as the draft, and prompt lookup on the Q4_1 model summarising a passage.
fn speculative(path: &std::path::Path, bundle: &ModelBundle<B>) -> Vec<String> {
    let tok = &bundle.tokenizer;
    let passage = std::fs::read_to_string(llm_benches::repo_file("fixtures/i_generate/smollm2_ppl_text.txt")).expect("passage");
    let passage: String = passage.split_whitespace().take(220).collect::<Vec<_>>().join(" ");
    let ask = format!("Summarise the passage in three sentences, using its own words.\n\n{passage}");
    let prompt = tok.encode(&tok.apply_chat_template(&[Message::new("user", ask)], true).expect("template"), false).expect("encode").ids;
    let f32_options = LoadOptions { ggml_blocks: false, ..LoadOptions::default() };
    let target = llm_core::weights::load_model::<B>(path, f32_options, &Default::default()).expect("f32 SmolLM2");
    let config = GenerationConfig { max_new_tokens: 96, eos_token_id: bundle.generation.eos_token_id.clone(), ..GenerationConfig::default() };
    let mut lines = vec![];
    let up_to = |max: usize| SpeculativeConfig { max_draft_tokens: max, ..SpeculativeConfig::default() };
    for (label, model, drafter, spec) in [
        ("f32 target, Q4_1 draft, k<=16", &target, Drafter::Model(&bundle.model), up_to(16)),
        ("f32 target, Q4_1 draft, k<=8", &target, Drafter::Model(&bundle.model), up_to(8)),
        ("Q4_1, prompt lookup (n<=3), k<=16", &bundle.model, Drafter::PromptLookup { max_ngram: 3 }, up_to(16)),
        ("Q4_1, prompt lookup (n<=3), k<=8", &bundle.model, Drafter::PromptLookup { max_ngram: 3 }, up_to(8)),
    ] {
        let generator = Generator::new(model, config.clone()).expect("config");
        decode_rate(&generator, &prompt); // warm-up
        let plain = generator.generate(std::slice::from_ref(&prompt)).expect("generate");
        let start = Instant::now();
        let (out, stats) = generator.generate_speculative(&prompt, drafter, spec).expect("speculate");
        let spec_rate = (out.sequences[0].len() - 1) as f64 / (start.elapsed() - out.prefill).as_secs_f64();
        let plain_rate = plain.decode_tokens_per_s();
        assert_eq!(out.sequences, plain.sequences, "{label}: speculative greedy must equal plain greedy");
        lines.push(format!(
            "speculative {label}: {spec_rate:.1} tokens/s vs plain {plain_rate:.1}: {:.2}x; acceptance {:.1}%, {:.2} tokens per target forward; drafting {:.0} ms, verifying {:.0} ms",
            spec_rate / plain_rate,
            100.0 * stats.acceptance_rate(),
            stats.tokens_per_forward(),
            stats.draft_time.as_secs_f64() * 1e3,
            stats.verify_time.as_secs_f64() * 1e3
        ));
    }
    lines
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    sampler(&mut c);
    stream(&mut c);
    c.final_summary();
    let path = smollm2_gguf();
    let bundle = ModelBundle::<B>::load(&path, LoadOptions::default(), &Default::default()).expect("SmolLM2 loads");
    let mask_s = constraint_mask(&bundle.tokenizer);
    let mut report = constrained_decode(&bundle);
    report.extend(speculative(&path, &bundle));
    if let Some(step) = criterion_mean_s("smollm2_stream", "greedy_text_deltas") {
        println!("\nstreaming greedy decode: {:.1} tokens/s ({:.1} ms/token)", 1.0 / step, step * 1e3);
        for name in ["chain_t0.7_k50_p0.9_rep1.1", "top_p0.9_only", "min_p0.05_only"] {
            if let Some(s) = criterion_mean_s("sampler_49152", name) {
                println!("sampler {name}: {:.3} ms/token = {:.1}% of a decode step", s * 1e3, 100.0 * s / step);
            }
        }
        println!("JSON-schema mask: {:.3} ms/token = {:.1}% of a decode step", mask_s * 1e3, 100.0 * mask_s / step);
    }
    for line in report {
        println!("{line}");
    }
}
