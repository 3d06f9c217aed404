#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_fuzz::targets::pref_jsonl(data));
