# Sourced by awq-reference.sh, hqq-reference.sh and quant-interop-check.sh: the Python side of
# the quantizer references, all in the model cache ($LLM_CACHE_DIR, default ~/.cache/llm-rs).
# - quant-ref-venv: one virtualenv (torch, numpy, safetensors), plus
#   - awq_deps: transformers 5.x and accelerate at the fixtures' versions, autoawq with --no-deps
#     (its declared deps want CUDA kernels and `datasets`, neither needed on CPU);
#   - hqq_deps: hqq with --no-deps (DISABLE_CUDA=1: its sdist would build a CUDA extension) and
#     what hqq.core imports, plus hqq-tf4-site: transformers 4.57.3 (+ the hub/tokenizers it
#     accepts) installed with --target, put first on PYTHONPATH by the HQQ scripts only:
#     transformers 5.x can neither make nor load HQQ checkpoints.
# Nothing is installed when the pinned versions are already there. The first install pulls
# torch (about 3 GB with its CUDA wheels).
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

base_deps() {
  mkdir -p "$cache"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c "import torch, safetensors, numpy; assert torch.__version__.split('+')[0] == '$torch_version'" 2>/dev/null; then
    "$venv/bin/pip" install "${pip_q[@]}" "torch==$torch_version" numpy safetensors
  fi
}

awq_deps() {
  base_deps
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
}

hqq_deps() {
  base_deps
  if ! "$venv/bin/python" -c "import hqq, termcolor, tqdm, accelerate; assert hqq.__version__ == '$hqq_version'" 2>/dev/null; then
    DISABLE_CUDA=1 "$venv/bin/pip" install "${pip_q[@]}" --no-deps "hqq==$hqq_version"
    "$venv/bin/pip" install "${pip_q[@]}" termcolor tqdm einops "accelerate==$accelerate_version"
  fi
  local marker="$site/.llm-rs-hqq-tf4-$tf4_version-2"
  if [ ! -f "$marker" ]; then
    rm -rf "$site"
    "$venv/bin/pip" install "${pip_q[@]}" --no-deps --target "$site" \
      "transformers==$tf4_version" "huggingface_hub==0.36.0" "tokenizers==0.22.1" \
      requests certifi idna urllib3 charset-normalizer regex pyyaml filelock fsspec packaging
    touch "$marker"
  fi
}
