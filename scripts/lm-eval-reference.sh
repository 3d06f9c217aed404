#!/usr/bin/env bash
# Runs EleutherAI lm-evaluation-harness (PyPI lm-eval, pinned) on the task YAML files in
# examples/data/eval/tasks with SmolLM2-135M-Instruct (the Q4_1 GGUF, dequantized to float32 by
# transformers: HF backend, CPU, batch size 1), then reduces its logged samples and results
# into fixtures/lm_eval, what our eval runner is compared against (per-request contexts,
# log-likelihoods, generations, filtered answers, per-doc metrics, aggregates):
# llm-core/tests/core/lm_eval_parity.rs. scripts/lm_eval_reference.py lists the runs.
#
#   scripts/lm-eval-reference.sh                      # all runs, rewrites fixtures/lm_eval
#   scripts/lm-eval-reference.sh --keep DIR           # also keep lm-eval's raw samples under DIR
#   scripts/lm-eval-reference.sh --runs zero_shot     # some runs only
#
# The virtualenv ($LLM_CACHE_DIR/eval-ref-venv, default ~/.cache/llm-rs) is made and filled only
# when the pinned versions are missing (the first install pulls torch, about 3 GB). The model:
# scripts/fetch-models.sh. Nothing else is downloaded: datasets are local JSON files, and
# HF_HUB_OFFLINE / HF_DATASETS_OFFLINE are set. Takes a few minutes on 2 CPU cores.
set -euo pipefail

lm_eval_version=0.4.13
transformers_version=5.25.0
torch_version=2.15.0
gguf_version=0.19.0
accelerate_version=1.16.0
cache="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}"
venv="${LM_EVAL_VENV:-$cache/eval-ref-venv}"
model="${SMOLLM2_GGUF:-$cache/SmolLM2-135M-Instruct.Q4_1.gguf}"
pip_q=(--quiet --disable-pip-version-check)

if [ ! -f "$model" ]; then
  echo "lm-eval-reference: $model is missing; run scripts/fetch-models.sh" >&2
  exit 1
fi

mkdir -p "$cache"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" - <<PY 2>/dev/null
from importlib.metadata import version as v
assert v("lm_eval") == "$lm_eval_version", v("lm_eval")
assert v("transformers") == "$transformers_version", v("transformers")
assert v("torch").split("+")[0] == "$torch_version", v("torch")
assert v("gguf") == "$gguf_version", v("gguf")
assert v("accelerate") == "$accelerate_version", v("accelerate")
PY
then
  "$venv/bin/pip" install "${pip_q[@]}" "torch==$torch_version" "transformers==$transformers_version" \
    "lm-eval==$lm_eval_version" "gguf==$gguf_version" "accelerate==$accelerate_version"
fi

cd "$(dirname "$0")/.."   # the YAML files' data_files are relative to the repo root
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec "$venv/bin/python" scripts/lm_eval_reference.py --model "$model" --venv "$venv" "$@"
