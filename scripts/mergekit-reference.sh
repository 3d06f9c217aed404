#!/usr/bin/env bash
# Runs mergekit (PyPI, pinned, in a virtualenv in the model cache: $LLM_CACHE_DIR, default
# ~/.cache/llm-rs/mergekit-venv) on the repo's tiny Llamas and rewrites fixtures/merge_ref, what
# llm-train's merge tests compare against (scripts/mergekit_reference.py says which merges).
# The install pulls torch (about 3 GB with its CUDA wheels); it is made once.
set -euo pipefail

version=0.1.5
cache="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}"
venv="$cache/mergekit-venv"
marker="$venv/.llm-rs-mergekit-$version"

if [ ! -f "$marker" ]; then
  mkdir -p "$cache"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "mergekit==$version"
  touch "$marker"
fi
"$venv/bin/python" "$(dirname "$0")/mergekit_reference.py"
