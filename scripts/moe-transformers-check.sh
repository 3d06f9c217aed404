#!/usr/bin/env bash
# Loads the Mixtral our `moe` example writes from the two tiny Llamas in transformers (the
# mergekit venv of scripts/mergekit-reference.sh) and compares its logits with
# fixtures/merge_ref's (transformers on mergekit-moe's output of the same YAML, which
# llm-train's franken_moe test also holds llm-core's logits of our output to).
#   cargo build --release --example moe && scripts/moe-transformers-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}/mergekit-venv"
work="${OUT_DIR:-/tmp/moe-check}"
rm -rf "$work" && mkdir -p "$work"
"$venv/bin/python" - "$work" <<'PY'
import json, sys
from pathlib import Path
sys.path.insert(0, "scripts")
import mergekit_reference as ref
work = Path(sys.argv[1])
ref.moe_inputs(work)
golden = json.loads((ref.OUT / "golden.json").read_text())
for mode in ("cheap_embed", "hidden"):
    (work / f"{mode}.yml").write_text(golden["moe"][mode]["yaml"].replace("<tmp>", str(work)))
PY
for mode in cheap_embed hidden; do
  target/release/examples/moe --config "$work/$mode.yml" --out "$work/ours_$mode" >/dev/null
done
HF_HUB_OFFLINE=1 "$venv/bin/python" - "$work" <<'PY'
import json, sys, torch
from pathlib import Path
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
work = Path(sys.argv[1])
golden = json.loads(Path("fixtures/merge_ref/golden.json").read_text())
ref = load_file("fixtures/merge_ref/mergekit.safetensors")
for mode in ("cheap_embed", "hidden"):
    model = AutoModelForCausalLM.from_pretrained(str(work / f"ours_{mode}"), dtype=torch.float32).eval()
    ids = torch.tensor([golden["moe"][mode]["ids"]])
    with torch.no_grad():
        logits = model(ids).logits[0]
    d = float((logits - ref[f"moe_{mode}.logits"]).abs().max())
    print(f"{mode}: transformers on our Mixtral vs on mergekit-moe's: max |logit diff| {d:.2e}")
PY
