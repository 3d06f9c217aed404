#!/usr/bin/env bash
# Runs the quantization quality report on SmolLM2-135M-Instruct for every method and prints a
# markdown table (perplexity on the held-out text, size of the decoder's linear weights).
# Each run also leaves its JSON report in $out, and the chart of perplexity against bits per
# weight is drawn from them as $out/quality.svg (the quant_chart example). Takes ~35 minutes on
# 2 cores (GPTQ and AWQ dominate).
#
#   scripts/fetch-models.sh && scripts/quant-report.sh [OUT_DIR]
set -euo pipefail
out="${1:-target/quant-report}"
mkdir -p "$out"
cargo build --release --example quantize --example quant_chart
bin=target/release/examples/quantize
run() {
  local name=$1; shift
  echo "== $name: $*" >&2
  "$bin" "$@" --report "$out/$name.json" > "$out/$name.log" 2>&1 || { cat "$out/$name.log" >&2; exit 1; }
}
run absmax-row        --method absmax --granularity row
run absmax-tensor     --method absmax --granularity tensor
run zeropoint-row     --method zeropoint --granularity row
run int8-outlier      --method int8-outlier
run nf4               --method nf4
run nf4-dq            --method nf4 --double-quant
run fp4               --method fp4
run gptq4-g128        --method gptq --bits 4 --group-size 128 --partial-groups
run gptq3-g128        --method gptq --bits 3 --group-size 128 --partial-groups
run gptq4-g64         --method gptq --bits 4 --group-size 64
run rtn4-g128         --method rtn --bits 4 --group-size 128 --partial-groups
run awq4-g128         --method awq --bits 4 --group-size 128 --partial-groups
run hqq4-g64          --method hqq --bits 4 --group-size 64
run hqq3-g64          --method hqq --bits 3 --group-size 64
run hqq2-g32          --method hqq --bits 2 --group-size 32
run rtn3-g64          --method rtn --bits 3 --group-size 64 --asym
for t in Q8_0 Q6_K Q4_K_M Q4_0 Q3_K_M Q2_K; do
  run "gguf-$t" --method gguf --type "$t" --out "$out/$t.gguf"
  rm -f "$out/$t.gguf"
done
run gguf-Q3_K_M-imatrix --method gguf --type Q3_K_M --calibration "${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}/lee_background.cor" --imatrix-out "$out/imatrix.gguf" --out "$out/q3.gguf"
run gguf-Q2_K-imatrix --method gguf --type Q2_K --imatrix "$out/imatrix.gguf" --out "$out/q2.gguf"
rm -f "$out/q3.gguf" "$out/q2.gguf"
target/release/examples/quant_chart "$out" >&2
python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
print("| method | perplexity | delta | RTN same bits/groups | linear weights MB | x smaller | quantize s |")
print("|---|---|---|---|---|---|---|")
for p in sorted(out.glob("*.json"), key=lambda p: p.stat().st_mtime):
    r = json.loads(p.read_text())
    if r["method"] == "gguf":
        extra = f" (without imatrix {r['ppl_without_imatrix']:.3f})" if "ppl_without_imatrix" in r else ""
        print(f"| {p.stem} | {r['ppl_quantized']:.3f} | {r['ppl_delta']:+.3f} | {extra} | "
              f"{r['file_bytes'] / 1e6:.1f} (file) | {32 / r['linear_bits_per_weight']:.2f} | {r['quantize_seconds']:.1f} |")
        continue
    rtn = f"{r['ppl_rtn']:.3f} ({r['ppl_rtn'] - r['ppl_dense']:+.3f})" if "ppl_rtn" in r else ""
    print(f"| {p.stem} | {r['ppl_quantized']:.3f} | {r['ppl_delta']:+.3f} | {rtn} | "
          f"{r['linear_bytes_quantized'] / 1e6:.1f} | {r['linear_bytes_dense_f32'] / r['linear_bytes_quantized']:.2f} | "
          f"{r['quantize_seconds']:.1f} |")
dense = next(json.loads(p.read_text()) for p in out.glob("*.json") if "ppl_dense" in json.loads(p.read_text()))
print(f"\ndense f32: perplexity {dense['ppl_dense']:.4f}, linear weights {dense['linear_bytes_dense_f32'] / 1e6:.1f} MB, "
      f"{dense['eval_tokens']} held-out tokens")
PY
