#!/usr/bin/env bash
# Peak resident memory of a few SFT steps on SmolLM2-135M for full fine-tuning, LoRA and QLoRA
# (NF4, double-quantized), without and with per-layer gradient checkpointing (+gc), each in its own process, same data and batch: the trainer's peak
# (Linux VmHWM, reset when training starts, so loading and quantizing do not count).
#
#   scripts/fetch-models.sh && scripts/train-memory.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-3}"
cargo build --release --example finetune
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for run in full lora qlora full+gc lora+gc qlora+gc; do
  method=${run%+gc}
  extra=()
  [ "$method" = qlora ] && extra+=(--double-quant)
  [ "$run" != "$method" ] && extra+=(--gradient-checkpointing)
  log=$(target/release/examples/finetune --data examples/data/answer_format.jsonl --method "$method" \
        --max-steps "$steps" --batch-size 4 --r 8 --alpha 16 --targets all-linear \
        --out "$out/$run" "${extra[@]}" 2>&1)
  peak=$(grep -o 'peak resident memory during training: [0-9]* MiB' <<<"$log" | grep -o '[0-9]*')
  rate=$(grep -o 'at [0-9]* tokens/s' <<<"$log" | grep -o '[0-9]*')
  echo "$run: peak RSS ${peak} MiB, ${rate} tokens/s over ${steps} steps"
done
