#!/usr/bin/env bash
# Runs AutoAWQ itself (PyPI autoawq, pinned) on CPU and rewrites fixtures/awq_ref, what llm-quant's
# AWQ tests compare against (scripts/awq_reference.py says which cases; scripts/AWQ_SPEC.md the
# algorithm). The Python side is scripts/quant-ref-venv.sh's (AutoAWQ 0.2.9 runs on
# transformers 5.x for Llama; the script stubs `datasets`).
set -euo pipefail
source "$(dirname "$0")/quant-ref-venv.sh"
awq_deps
"$venv/bin/python" "$(dirname "$0")/awq_reference.py" "$@"
