#!/usr/bin/env bash
# CUDA check in two halves, for a GPU machine that has no network and no Rust toolchain.
#
#   scripts/gpu-check.sh build        # here: build the CUDA binaries into gpu-bundle.tar.xz
#   scripts/gpu-check.sh run [OUTDIR] # on the GPU machine, in a copy of this repository that
#                                     # holds gpu-bundle.tar.xz: parity tests, then throughput
#
# `build` compiles, with `--features cuda` (cudarc loads libcuda and NVRTC at run time, so no
# CUDA toolkit is needed here), the test binaries of llm-core (`core`: the parity tests and the
# throughput measurement, the `throughput` example's code) and llm-train (`train`), strips them
# and packs them with the path they were built at (the tests find `fixtures/` through it).
#
# `run` unpacks them, finds NVRTC (CUDA toolkit or the nvidia-cuda-nvrtc wheel), prints the
# card, runs every parity test's `::cuda` instance, then prefill/decode throughput of
# SmolLM2-135M and Llama-3.2-1B (random weights, real shapes) in f32, bf16 and f16 with the
# decode roofline. Results go to OUTDIR (default gpu-results/): gpu.txt, tests.log, throughput.{log,jsonl}.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUNDLE=gpu-bundle.tar.xz
TARGET_DIR=${GPU_TARGET_DIR:-$ROOT/target/cuda}
# Test binaries (crate:binary) whose `::cuda` instances run on the GPU: every backend-parametrised
# test there uses the small fixtures (the SmolLM2 GGUF and MiniLM tests need files over the
# device's transfer limit and are plain Flex tests, or in llm-rag; they run on Flex and WGPU).
TESTS=(llm-core:core llm-train:train)

build() {
    local stage=$ROOT/target/gpu-bundle
    rm -rf "$stage" && mkdir -p "$stage/bin"
    local args=()
    for t in "${TESTS[@]}"; do args+=(-p "${t%%:*}" --test "${t#*:}"); done
    echo "building ${#TESTS[@]} test binaries with --features cuda ..."
    CARGO_TARGET_DIR=$TARGET_DIR cargo test --release --features cuda --no-run "${args[@]}" \
        --message-format=json-render-diagnostics >"$stage/tests.json"
    for t in "${TESTS[@]}"; do
        local exe
        exe=$(python3 -c '
import json, sys
name = sys.argv[1]
for line in open(sys.argv[2]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == name and m.get("executable"):
        print(m["executable"])' "${t#*:}" "$stage/tests.json" | tail -1)
        [ -n "$exe" ] || { echo "no executable for ${t}" >&2; exit 1; }
        strip -o "$stage/bin/${t#*:}" "$exe"
    done
    echo "$ROOT" >"$stage/BUILD_ROOT"
    git rev-parse HEAD >"$stage/COMMIT" 2>/dev/null || true
    # xz: in every base image (dpkg needs it), and ~4x smaller than the binaries.
    tar -C "$stage" -c BUILD_ROOT COMMIT bin | xz -6 -T0 >"$ROOT/$BUNDLE.tmp" && mv "$ROOT/$BUNDLE.tmp" "$ROOT/$BUNDLE"
    ls -l "$ROOT/$BUNDLE"
}

find_nvrtc() {
    local d
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 \
        $(python3 -c 'import nvidia, os; [print(os.path.join(p, q, "lib")) for p in nvidia.__path__ for q in os.listdir(p)]' 2>/dev/null); do
        if ls "$d"/libnvrtc.so* >/dev/null 2>&1; then echo "$d"; fi
    done
}

run() {
    local out=${1:-gpu-results}
    mkdir -p "$out" && out=$(cd "$out" && pwd)
    local stage
    stage=$(mktemp -d)
    xz -d -c "$BUNDLE" | tar -C "$stage" -x
    # The tests find fixtures through the path they were built at: point it here.
    local built
    built=$(cat "$stage/BUILD_ROOT")
    if [ "$built" != "$ROOT" ] && [ ! -e "$built" ]; then mkdir -p "$(dirname "$built")" && ln -s "$ROOT" "$built"; fi
    local libs
    libs=$(find_nvrtc | paste -sd:)
    export LD_LIBRARY_PATH=${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    echo "bundle built from $(cat "$stage/COMMIT"); NVRTC from: ${libs:-not found}"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv 2>&1 | tee "$out/gpu.txt" || echo "nvidia-smi failed: is this an NVIDIA machine?"
    local failed=0 log
    : >"$out/tests.log"
    for t in "${TESTS[@]}"; do
        local name=${t#*:}
        log=$(mktemp)
        echo "== $name (cuda)" | tee -a "$out/tests.log"
        if ! (cd "$ROOT/${t%%:*}" && "$stage/bin/$name" ::cuda --skip throughput:: --test-threads 8 --nocapture) >"$log" 2>&1; then
            failed=1
            echo "FAILED: $name (full log in $out/tests.log)"
        fi
        cat "$log" >>"$out/tests.log"
        grep -E '^test |test result|panicked|max \|diff|relative diff' "$log" | tail -n 40
    done
    echo "== throughput"
    (cd "$ROOT/llm-core" && LLM_THROUGHPUT=1 LLM_THROUGHPUT_JSON="$out/throughput.jsonl" \
        "$stage/bin/core" throughput::throughput_roofline::cuda --exact --nocapture) 2>&1 | tee "$out/throughput.log" || failed=1
    return $failed
}

case "${1:-}" in
    build) build ;;
    run) shift; run "$@" ;;
    *) echo "usage: $0 build | run [OUTDIR]" >&2; exit 2 ;;
esac
