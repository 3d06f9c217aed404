#!/usr/bin/env bash
# GGUF quantization speed beside llama.cpp's own quantizer, same input, same run: SmolLM2 is
# first written as an F32 GGUF (from the fetched Q4_1 file), then quantized to each type by
# `quantize --method gguf` (ours, rows on every core) and by `llama_model_quantize` (llama.cpp
# 0.3.36 through llama-cpp-python, nthread = cores), each timed from reading the F32 file to
# the written file. Prints seconds, the ratio, both sizes and how many tensors are identical
# (type and bytes) in the two files. Needs scripts/fetch-llama-cpp.sh and scripts/fetch-models.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-llama-cpp.sh >/dev/null
py="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}/llama-cpp-venv/bin/python"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo build --release -p llm-examples --example quantize
q=target/release/examples/quantize
"$q" --method gguf --type F32 --out "$tmp/f32.gguf" --eval-chars 200 >/dev/null
printf '%-8s %10s %10s %8s %12s %12s %s\n' type ours_s llama_s speedup ours_bytes llama_bytes identical_tensors
for t in ${TYPES:-Q8_0 Q4_0 Q4_K_M Q6_K}; do
  # The example also measures perplexity; the report's quantize_seconds is the write alone.
  "$q" --model "$tmp/f32.gguf" --method gguf --type "$t" --out "$tmp/ours.gguf" --eval-chars 200 --report "$tmp/r.json" >/dev/null
  ours=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['quantize_seconds'])" "$tmp/r.json")
  llama=$("$py" - "$tmp/f32.gguf" "$tmp/llama.gguf" "$t" <<'PY'
import ctypes, os, sys, time
import llama_cpp
src, dst, kind = sys.argv[1:]
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
p.nthread = os.cpu_count() or 1
t = time.time()
assert llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p)) == 0
print(f"{time.time() - t:.3f}")
PY
)
  same=$("$py" - "$tmp/ours.gguf" "$tmp/llama.gguf" <<'PY'
import sys
import gguf
a, b = ({t.name: t for t in gguf.GGUFReader(p).tensors} for p in sys.argv[1:])
same = sum(a[n].tensor_type == b[n].tensor_type and a[n].data.tobytes() == b[n].data.tobytes() for n in a if n in b)
print(f"{same}/{len(b)}")
PY
)
  printf '%-8s %10.2f %10.2f %7.2fx %12d %12d %s\n' "$t" "$ours" "$llama" "$(echo "$llama / $ours" | bc -l)" "$(stat -c %s "$tmp/ours.gguf")" "$(stat -c %s "$tmp/llama.gguf")" "$same"
done
