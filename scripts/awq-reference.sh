#!/usr/bin/env bash
# Runs AutoAWQ itself (PyPI autoawq, pinned) on CPU and rewrites fixtures/awq_ref, what llm-quant's
# AWQ tests compare against (scripts/awq_reference.py says which cases; scripts/AWQ_SPEC.md the
# algorithm).
#
# Python side, in the model cache ($LLM_CACHE_DIR, default ~/.cache/llm-rs): quant-ref-venv, the
# virtualenv shared with the other quantizer references (torch, hqq, ...). Made if missing;
# autoawq is added with --no-deps (its declared deps want CUDA kernels and `datasets`, neither
# needed for token-id calibration on CPU; the script stubs `datasets`), with transformers and
# accelerate at the versions the fixture was made with (AutoAWQ 0.2.9 runs on transformers 5.x
# for Llama). The install pulls torch (about 3 GB with its CUDA wheels); it is made once.
set -euo pipefail

torch_version=2.15.0
autoawq_version=0.2.9
transformers_version=5.25.0
accelerate_version=1.16.0
cache="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}"
venv="$cache/quant-ref-venv"
pip_q=(--quiet --disable-pip-version-check)

mkdir -p "$cache"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, safetensors, numpy; assert torch.__version__.split('+')[0] == '$torch_version'" 2>/dev/null; then
  "$venv/bin/pip" install "${pip_q[@]}" "torch==$torch_version" numpy safetensors
fi
if ! "$venv/bin/python" - <<PY 2>/dev/null
from importlib.metadata import version as v
assert v("transformers") == "$transformers_version", v("transformers")
assert v("accelerate") == "$accelerate_version", v("accelerate")
assert v("autoawq") == "$autoawq_version", v("autoawq")
PY
then
  "$venv/bin/pip" install "${pip_q[@]}" "transformers==$transformers_version" "accelerate==$accelerate_version"
  "$venv/bin/pip" install "${pip_q[@]}" --no-deps "autoawq==$autoawq_version"
fi

"$venv/bin/python" "$(dirname "$0")/awq_reference.py" "$@"
