#!/usr/bin/env bash
# Coverage-guided fuzzing of one loader with libFuzzer (cargo fuzz, on the nightly toolchain).
#
#   scripts/fuzz.sh TARGET MINUTES     e.g. scripts/fuzz.sh gguf 10
#   scripts/fuzz.sh build              builds every target
#
# Targets: fuzz/src/lib.rs's TARGETS (checkpoint, adapter, gguf, gguf_blocks, configs,
# tokenizer_json, tokenizer_config, chat_template, sft_jsonl, pref_jsonl, html, pdf, json_docs,
# flat_store). The run starts from the committed seeds (fuzz/seeds/TARGET), keeps what it
# discovers in fuzz/work/TARGET (ignored by git) and writes failing inputs to
# fuzz/artifacts/TARGET. Limits, as the issue sets them: an input may take 1 s (-timeout) and
# be 1 MiB (-max_len); an allocation over 1 GiB aborts (fuzz/src/lib.rs's allocator); RSS over
# 2 GiB fails. A failure, once fixed, goes into fuzz/regressions/TARGET, which
# `cargo test -p llm-fuzz` (and so CI) replays with the seeds.
#
# No sanitizer (-s none): the code under test is safe Rust, and the instrumented build is
# twice as fast without ASan; debug assertions (overflow checks) are on (-a).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
build=(--fuzz-dir fuzz --target-dir fuzz/target -O -a -s none --features libfuzzer)
if [ "${1:-}" = build ]; then
    exec cargo +nightly fuzz build "${build[@]}"
fi
target=${1:?usage: scripts/fuzz.sh TARGET MINUTES}
minutes=${2:?usage: scripts/fuzz.sh TARGET MINUTES}
mkdir -p "fuzz/work/$target"
cargo +nightly fuzz run "${build[@]}" "$target" "fuzz/work/$target" "fuzz/seeds/$target" -- \
    -max_total_time=$((minutes * 60)) -timeout=1 -max_len=1048576 -rss_limit_mb=2048 \
    -print_final_stats=1
