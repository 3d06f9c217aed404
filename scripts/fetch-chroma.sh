#!/usr/bin/env bash
# Installs the Chroma vector database server (PyPI chromadb, pinned) into a virtualenv in the
# model cache ($LLM_CACHE_DIR, default ~/.cache/llm-rs/chroma-venv), once. llm-rag's
# tests/rag/chroma_store.rs starts `chroma run` from there on a free loopback port.
# Idempotent: a venv whose install finished (its marker file names this version) is kept.
set -euo pipefail

version=1.5.9
cache="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}"
venv="$cache/chroma-venv"
marker="$venv/.llm-rs-chromadb-$version"

if [ -f "$marker" ] && [ -x "$venv/bin/chroma" ]; then
  echo "fetch-chroma: chromadb $version is present in $venv"
  exit 0
fi
mkdir -p "$cache"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "chromadb==$version"
"$venv/bin/chroma" --help >/dev/null
# Written last: a cut install has no marker and is redone next time.
touch "$marker"
echo "fetch-chroma: installed chromadb $version into $venv"
