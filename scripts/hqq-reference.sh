#!/usr/bin/env bash
# Runs hqq itself (PyPI hqq, pinned) and rewrites fixtures/hqq_ref, what llm-quant's HQQ tests
# compare against (scripts/hqq_reference.py says which cases). The Python side is
# scripts/quant-ref-venv.sh's; the transformers HQQ checkpoint in fixtures/hqq_ref/tiny is made
# with transformers 4.57.3 (hqq-tf4-site first on PYTHONPATH), as 5.x cannot quantize with
# HqqConfig on load (NotImplementedError).
set -euo pipefail
source "$(dirname "$0")/quant-ref-venv.sh"
hqq_deps
PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" "$venv/bin/python" "$(dirname "$0")/hqq_reference.py" "$@"
