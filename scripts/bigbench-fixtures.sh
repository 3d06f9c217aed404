#!/usr/bin/env bash
# Rewrites fixtures/bigbench/<task>/docs.json, the Hugging Face `bigbench` rows that BIG-bench's
# own formatting code makes from fixtures/bigbench/<task>/task.json (scripts/bigbench_fixtures.py
# says which steps and why). What it needs goes to the model cache ($LLM_CACHE_DIR, default
# ~/.cache/llm-rs):
# - the `bigbench` 0.0.1 sdist from PyPI, downloaded and unpacked, never installed (its
#   dependencies are tensorflow and seqio; only json_task.py's formatting function is used);
# - a virtualenv with numpy (the choice permutation is np.random.RandomState's).
# Arguments go to the Python script: --from DIR re-copies the task files from a BIG-bench
# checkout's bigbench/benchmark_tasks before rewriting the rows.
set -euo pipefail
bigbench_version=0.0.1
numpy_version=2.4.6
cache="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}"
venv="$cache/bigbench-venv"
src="$cache/bigbench-$bigbench_version"
pip_q=(--quiet --disable-pip-version-check)

mkdir -p "$cache"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import numpy; assert numpy.__version__ == '$numpy_version'" 2>/dev/null; then
  "$venv/bin/pip" install "${pip_q[@]}" "numpy==$numpy_version"
fi
if [ ! -f "$src/bigbench/api/json_task.py" ]; then
  download="$(mktemp -d)"
  "$venv/bin/pip" download "${pip_q[@]}" --no-deps --no-binary :all: -d "$download" "bigbench==$bigbench_version"
  tar -xzf "$download/bigbench-$bigbench_version.tar.gz" -C "$cache"
  rm -rf "$download"
fi
"$venv/bin/python" "$(dirname "$0")/bigbench_fixtures.py" "$src/bigbench/api/json_task.py" "$@"
