#!/usr/bin/env bash
# Loads AWQ / HQQ checkpoints written by llm-quant with AutoAWQ and transformers+hqq themselves,
# runs their forward and compares it with the fp32 model on their own dequantized weights and with
# our runtime's top-5 logits (target/release/examples/logits, or $LOGITS_BIN; skipped if absent).
# scripts/quant_interop_check.py says what is checked and the tolerances.
#
#   scripts/quant-interop-check.sh --awq DIR --hqq DIR --ids 1,328,384,353,219
#
# Python side: the venv and transformers-4.x site that awq-reference.sh and hqq-reference.sh make
# in the model cache ($LLM_CACHE_DIR, default ~/.cache/llm-rs), with the same pins and the same
# set-up lines (nothing is installed when they are already there). AWQ runs on the venv's
# transformers 5.x, HQQ with hqq-tf4-site (transformers 4.57.3) first on PYTHONPATH: the Python
# script starts one interpreter per tool with the right path.
set -euo pipefail

torch_version=2.15.0
autoawq_version=0.2.9
transformers_version=5.25.0
accelerate_version=1.16.0
hqq_version=0.2.8.post1
tf4_version=4.57.3
cache="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}"
venv="$cache/quant-ref-venv"
site="$cache/hqq-tf4-site"
pip_q=(--quiet --disable-pip-version-check)

want_awq=0 want_hqq=0
for a in "$@"; do
  case "$a" in --awq|--awq=*) want_awq=1 ;; --hqq|--hqq=*) want_hqq=1 ;; esac
done

mkdir -p "$cache"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, safetensors, numpy; assert torch.__version__.split('+')[0] == '$torch_version'" 2>/dev/null; then
  "$venv/bin/pip" install "${pip_q[@]}" "torch==$torch_version" numpy safetensors
fi
if [ "$want_awq" = 1 ] && ! "$venv/bin/python" - <<PY 2>/dev/null
from importlib.metadata import version as v
assert v("transformers") == "$transformers_version", v("transformers")
assert v("accelerate") == "$accelerate_version", v("accelerate")
assert v("autoawq") == "$autoawq_version", v("autoawq")
PY
then
  "$venv/bin/pip" install "${pip_q[@]}" "transformers==$transformers_version" "accelerate==$accelerate_version"
  "$venv/bin/pip" install "${pip_q[@]}" --no-deps "autoawq==$autoawq_version"
fi
if [ "$want_hqq" = 1 ]; then
  if ! "$venv/bin/python" -c "import hqq, termcolor, tqdm, accelerate; assert hqq.__version__ == '$hqq_version'" 2>/dev/null; then
    DISABLE_CUDA=1 "$venv/bin/pip" install "${pip_q[@]}" --no-deps "hqq==$hqq_version"
    "$venv/bin/pip" install "${pip_q[@]}" termcolor tqdm einops "accelerate==$accelerate_version"
  fi
  marker="$site/.llm-rs-hqq-tf4-$tf4_version-2"
  if [ ! -f "$marker" ]; then
    rm -rf "$site"
    "$venv/bin/pip" install "${pip_q[@]}" --no-deps --target "$site" \
      "transformers==$tf4_version" "huggingface_hub==0.36.0" "tokenizers==0.22.1" \
      requests certifi idna urllib3 charset-normalizer regex pyyaml filelock fsspec packaging
    touch "$marker"
  fi
fi

# one thread each: the checkpoints are tiny, and the machine is shared with cargo
OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" HQQ_TF4_SITE="$site" \
  "$venv/bin/python" "$(dirname "$0")/quant_interop_check.py" "$@"
