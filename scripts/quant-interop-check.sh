#!/usr/bin/env bash
# Loads AWQ / HQQ checkpoints written by llm-quant with AutoAWQ and transformers+hqq themselves,
# runs their forward and compares it with the fp32 model on their own dequantized weights and with
# our runtime's top-5 logits (target/release/examples/logits, or $LOGITS_BIN; skipped if absent).
# scripts/quant_interop_check.py says what is checked and the tolerances.
#
#   scripts/quant-interop-check.sh --awq DIR --hqq DIR --ids 1,328,384,353,219
#
# Python side: scripts/quant-ref-venv.sh (as for the reference scripts). AWQ runs on the venv's
# transformers 5.x, HQQ with hqq-tf4-site (transformers 4.57.3) first on PYTHONPATH: the Python
# script starts one interpreter per tool with the right path.
set -euo pipefail

source "$(dirname "$0")/quant-ref-venv.sh"

want_awq=0 want_hqq=0
for a in "$@"; do
  case "$a" in --awq|--awq=*) want_awq=1 ;; --hqq|--hqq=*) want_hqq=1 ;; esac
done

if [ "$want_awq" = 1 ]; then awq_deps; fi
if [ "$want_hqq" = 1 ]; then hqq_deps; fi

# one thread each: the checkpoints are tiny, and the machine is shared with cargo
OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" HQQ_TF4_SITE="$site" \
  "$venv/bin/python" "$(dirname "$0")/quant_interop_check.py" "$@"
