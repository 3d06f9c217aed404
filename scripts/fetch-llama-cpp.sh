#!/usr/bin/env bash
# Builds llama.cpp's Python binding (PyPI llama-cpp-python, pinned; it compiles llama.cpp for
# this CPU, about 10 minutes on 2 cores) and gguf-py into a virtualenv in the model cache
# ($LLM_CACHE_DIR, default ~/.cache/llm-rs/llama-cpp-venv), once. The decode bench runs
# llama.cpp from there on the same GGUF in the same run; scripts/llama_cpp_quantize.py makes
# the Q8_0 / Q4_K_M variants with llama.cpp's own quantizer.
# Idempotent: a venv whose install finished (its marker file names this version) is kept.
set -euo pipefail

version=0.3.36
build=3  # bumped when the build flags change
gguf_version=0.19.0
cache="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}"
venv="$cache/llama-cpp-venv"
marker="$venv/.llm-rs-llama-cpp-python-$version-build$build"

if [ -f "$marker" ] && [ -x "$venv/bin/python" ]; then
  echo "fetch-llama-cpp: llama-cpp-python $version is present in $venv"
  exit 0
fi
mkdir -p "$cache"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "numpy<3" "gguf==$gguf_version" psutil
# The instruction sets our kernels select at run time, named rather than GGML_NATIVE (a native
# build on Intel Xeons adds AMX, whose kernels crash in llama_decode on this sandbox), each only
# where this CPU has it: AVX-VNNI on an AMD EPYC with AVX-512 VNNI alone is SIGILL at the first
# decode.
has() { grep -qw "$1" /proc/cpuinfo && echo ON || echo OFF; }
flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=$(has avx2) -DGGML_FMA=$(has fma) -DGGML_F16C=$(has f16c)"
flags="$flags -DGGML_AVX_VNNI=$(has avx_vnni) -DGGML_AVX512=$(has avx512f) -DGGML_AVX512_VNNI=$(has avx512_vnni)"
flags="$flags -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF"
CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "llama-cpp-python==$version"
"$venv/bin/python" -c "import llama_cpp, gguf; print('llama.cpp', llama_cpp.__version__)"
# Written last: a cut install has no marker and is redone next time.
touch "$marker"
echo "fetch-llama-cpp: installed llama-cpp-python $version into $venv"
