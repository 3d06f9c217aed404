#!/usr/bin/env bash
# Runs hqq itself (PyPI hqq, pinned) and rewrites fixtures/hqq_ref, what llm-quant's HQQ tests
# compare against (scripts/hqq_reference.py says which cases).
#
# Python side, all in the model cache ($LLM_CACHE_DIR, default ~/.cache/llm-rs):
# - quant-ref-venv: the virtualenv shared with the other quantizer references (torch, hqq, ...).
#   Made if missing; hqq is added with --no-deps plus what hqq.core imports (termcolor, tqdm) and
#   accelerate (transformers' device_map), so the transformers 5.x that awq-reference.sh pins there
#   is left alone.
# - hqq-tf4-site: transformers 4.57.3 (+ the hub/tokenizers versions it accepts) installed with
#   --target and put first on PYTHONPATH for this script only. transformers 5.x can no longer
#   quantize with HqqConfig on load (HqqHfQuantizer has no quantize ops: NotImplementedError), so
#   the transformers HQQ checkpoint in fixtures/hqq_ref/tiny is made with 4.x.
# The install pulls torch (about 3 GB with its CUDA wheels); it is made once.
set -euo pipefail

torch_version=2.15.0
hqq_version=0.2.8.post1
tf4_version=4.57.3
accelerate_version=1.16.0
cache="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}"
venv="$cache/quant-ref-venv"
site="$cache/hqq-tf4-site"
pip_q=(--quiet --disable-pip-version-check)

mkdir -p "$cache"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, safetensors, numpy; assert torch.__version__.split('+')[0] == '$torch_version'" 2>/dev/null; then
  "$venv/bin/pip" install "${pip_q[@]}" "torch==$torch_version" numpy safetensors
fi
if ! "$venv/bin/python" -c "import hqq, termcolor, tqdm, accelerate; assert hqq.__version__ == '$hqq_version'" 2>/dev/null; then
  # DISABLE_CUDA=1: hqq's setup.py (an sdist) would otherwise try to build its CUDA extension
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

PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" "$venv/bin/python" "$(dirname "$0")/hqq_reference.py" "$@"
