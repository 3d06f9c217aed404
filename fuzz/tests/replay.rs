//! The seed corpus (`fuzz/seeds/<target>/`) and every input the fuzzer ever failed on
//! (`fuzz/regressions/<target>/`) replayed through their targets, as CI runs them without a
//! fuzzer. Each input must return (no panic; an allocation over 1 GiB aborts the binary)
//! within the time bound.

use std::path::Path;
use std::time::{Duration, Instant};

/// The fuzzer's bound is 1 s on an optimised build; this unoptimised test build on a loaded CI
/// machine gets ten times that.
const BOUND: Duration = Duration::from_secs(10);

fn replay(target: &str) {
    let run = llm_fuzz::TARGETS.iter().find(|(name, _)| *name == target).expect("target listed").1;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs = vec![];
    for folder in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else { continue };
        inputs.extend(entries.map(|e| e.expect("corpus entry").path()));
    }
    inputs.sort();
    assert!(!inputs.is_empty(), "no seeds for `{target}`: run `cargo run -p llm-fuzz --features seeds --bin make-seeds`");
    let mut slowest = (Duration::ZERO, None);
    for input in &inputs {
        let data = std::fs::read(input).expect("corpus file");
        let started = Instant::now();
        run(&data);
        let took = started.elapsed();
        assert!(took < BOUND, "{} took {took:?}", input.display());
        if took > slowest.0 {
            slowest = (took, Some(input.clone()));
        }
    }
    eprintln!("{target}: {} inputs, slowest {:?} ({:?})", inputs.len(), slowest.0, slowest.1);
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { replay(stringify!($name)); })*

        #[test]
        fn every_target_is_replayed() {
            let tested = [$(stringify!($name)),*];
            for (name, _) in llm_fuzz::TARGETS {
                assert!(tested.contains(name), "target `{name}` has no replay test");
            }
        }
    };
}

replay_tests!(
    checkpoint, adapter, gguf, gguf_blocks, configs, tokenizer_json, tokenizer_config, chat_template,
    sft_jsonl, pref_jsonl, html, pdf, json_docs, flat_store,
);

/// The generated seeds are valid files, so fuzzing starts deep inside each loader rather than
/// at its first check.
#[test]
fn micro_seeds_load() {
    use burn::backend::Flex;
    use llm_core::weights::{load_model, LoadOptions};
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for name in ["dense", "gptq_rtn4", "int8_rows", "nf4", "llm_int8", "k_gptq_ckpt"] {
        let data = std::fs::read(seeds.join("checkpoint").join(name)).unwrap();
        let (config, weights) = llm_fuzz::split_two(&data).unwrap();
        let dir = llm_fuzz::scratch("micro_seeds_load");
        llm_fuzz::put(&dir, "config.json", config);
        llm_fuzz::put(&dir, "model.safetensors", weights);
        load_model::<Flex>(&dir, LoadOptions::default(), &Default::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let gguf = seeds.join("gguf/micro.gguf");
    let model = load_model::<Flex>(&gguf, LoadOptions::default(), &Default::default()).unwrap();
    assert_eq!(model.config.vocab_size, 64);
    let file = llm_core::weights::GgufFile::open(&gguf).unwrap();
    let tok = llm_core::Tokenizer::from_gguf(&file).unwrap();
    assert_eq!(tok.decode(&tok.encode("hello world", false).unwrap().ids, false).unwrap(), "hello world");
    assert!(tok.apply_chat_template(&llm_fuzz::fixtures::conversation(), true).unwrap().contains("<|im_start|>user\nhello world"));
    let store = llm_fuzz::scratch("micro_seeds_store");
    std::fs::copy(seeds.join("flat_store/store.bin"), store.join("store.bin")).unwrap();
    assert_eq!(llm_rag::store::VectorStore::count(&llm_rag::store::FlatStore::open(&store).unwrap()).unwrap(), 3);
}
