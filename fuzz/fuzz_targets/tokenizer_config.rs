#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_fuzz::targets::tokenizer_config(data));
