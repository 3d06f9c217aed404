#!/usr/bin/env bash
# Times our merge example against mergekit-yaml (PyPI mergekit, the venv of
# scripts/mergekit-reference.sh) on the same YAML and the same two SmolLM2 checkpoints, in one
# run, and compares their outputs tensor by tensor. Prints a Markdown table for benches/README.md.
#
#   scripts/fetch-models.sh
#   cargo build --release --example merge --example finetune
#   target/release/examples/finetune --data examples/data/answer_format.jsonl --epochs 4 --merge --out /tmp/smollm2-tuned
#   scripts/merge-bench.sh [TUNED_DIR]
#
# The base checkpoint is the GGUF written out as a Hugging Face directory by our own merge
# (passthrough of every layer), so both tools read the same f32 safetensors.
set -euo pipefail
cd "$(dirname "$0")/.."
tuned="${1:-/tmp/smollm2-tuned}"
cache="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}"
venv="$cache/mergekit-venv"
work="${OUT_DIR:-/tmp/merge-bench}"
merge=target/release/examples/merge
[ -x "$merge" ] || { echo "build it first: cargo build --release --example merge" >&2; exit 1; }
[ -d "$tuned" ] || { echo "$tuned is missing: run the finetune command in this script's header" >&2; exit 1; }
if [ ! -x "$venv/bin/mergekit-yaml" ]; then
  python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "mergekit==0.1.5" && touch "$venv/.llm-rs-mergekit-0.1.5"
fi
mkdir -p "$work"
base="$work/base"
if [ ! -f "$base/model.safetensors" ]; then
  cat > "$work/to_hf.yml" <<YML
merge_method: passthrough
slices:
  - sources:
      - model: $cache/SmolLM2-135M-Instruct.Q4_1.gguf
        layer_range: [0, 30]
dtype: float32
YML
  "$merge" --config "$work/to_hf.yml" --out "$base" >/dev/null
fi
declare -A yaml
yaml[linear]="merge_method: linear
models:
  - {model: $base, parameters: {weight: 0.6}}
  - {model: $tuned, parameters: {weight: 0.4}}
dtype: float32"
yaml[slerp]="merge_method: slerp
base_model: $base
models: [{model: $base}, {model: $tuned}]
parameters: {t: [0.2, 0.8]}
dtype: float32"
yaml[ties]="merge_method: ties
base_model: $base
models:
  - {model: $tuned, parameters: {weight: 1.0, density: 0.5}}
dtype: float32"
now() { date +%s.%N; }
echo "| method | ours, s | mergekit 0.1.5, s | speed-up | max abs diff |"
echo "| --- | --- | --- | --- | --- |"
for m in linear slerp ties; do
  printf '%s\n' "${yaml[$m]}" > "$work/$m.yml"
  t0=$(now); "$merge" --config "$work/$m.yml" --out "$work/ours_$m" --no-copy-tokenizer >/dev/null; t1=$(now)
  HF_HUB_OFFLINE=1 "$venv/bin/mergekit-yaml" "$work/$m.yml" "$work/mk_$m" --no-copy-tokenizer --quiet --no-write-model-card --lazy-unpickle --allow-crimes >/dev/null 2>&1; t2=$(now)
  diff=$("$venv/bin/python" - "$work/ours_$m" "$work/mk_$m" <<'PY'
import sys, glob
from safetensors.torch import load_file
def load(d):
    out = {}
    for f in glob.glob(d + "/*.safetensors"):
        out.update(load_file(f))
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
common = [k for k in a if k in b]
print(f"{max(float((a[k].float() - b[k].float()).abs().max()) for k in common):.2e} ({len(common)}/{len(a)} tensors)")
PY
)
  awk -v m="$m" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v d="$diff" 'BEGIN { a = t1 - t0; b = t2 - t1; printf "| %s | %.2f | %.2f | %.2fx | %s |\n", m, a, b, b / a, d }'
done
