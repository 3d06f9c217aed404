#!/usr/bin/env bash
# Coverage-guided fuzzing of one loader with libFuzzer (cargo fuzz, on the nightly toolchain).
#
#   scripts/fuzz.sh TARGET MINUTES     e.g. scripts/fuzz.sh gguf 10
#   scripts/fuzz.sh build              builds every target
#   scripts/fuzz.sh all SECONDS        every target for SECONDS, one per core, then a table of
#                                      executions, slowest input and peak RSS per target
#                                      (logs in fuzz/work/logs/)
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
run() { # TARGET SECONDS
    mkdir -p "fuzz/work/$1"
    cargo +nightly fuzz run "${build[@]}" "$1" "fuzz/work/$1" "fuzz/seeds/$1" -- \
        -max_total_time="$2" -timeout=1 -max_len=1048576 -rss_limit_mb=2048 -print_final_stats=1
}
if [ "${1:-}" = all ]; then
    seconds=${2:?usage: scripts/fuzz.sh all SECONDS}
    cargo +nightly fuzz build "${build[@]}"
    mkdir -p fuzz/work/logs
    targets=$(sed -n 's/^    ("\([a-z_]*\)", targets::.*/\1/p' fuzz/src/lib.rs)
    export -f run; export build_flags="${build[*]}"
    printf '%s\n' $targets | xargs -P "$(nproc)" -I{} bash -c \
        'build=($build_flags); run {} '"$seconds"' > fuzz/work/logs/{}.log 2>&1 || echo "{}: FAILED (fuzz/work/logs/{}.log)"'
    echo "| target | executions | slowest input, s | peak RSS, MB |"
    echo "|---|---|---|---|"
    total=0
    for t in $targets; do
        log=fuzz/work/logs/$t.log
        n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "| $t | $n | $(sed -n 's/^stat::slowest_unit_time_sec: *//p' "$log") | $(sed -n 's/^stat::peak_rss_mb: *//p' "$log") |"
        total=$((total + ${n:-0}))
    done
    echo "| all | $total | | |"
    exit 0
fi
target=${1:?usage: scripts/fuzz.sh TARGET MINUTES}
minutes=${2:?usage: scripts/fuzz.sh TARGET MINUTES}
run "$target" $((minutes * 60))
