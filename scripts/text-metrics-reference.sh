#!/usr/bin/env bash
# Runs sacrebleu, rouge-score (with nltk's Porter stemmer) and the SQuAD v1.1 scoring functions
# and rewrites fixtures/text_metrics/cases.json, what llm-core's eval::metrics tests compare
# against (scripts/text_metrics_reference.py says which values). The virtualenv is the evaluation
# reference one in the model cache ($LLM_CACHE_DIR, default ~/.cache/llm-rs): eval-ref-venv,
# which also holds lm-eval; the two pinned tools are installed only when missing.
set -euo pipefail
sacrebleu_version=2.6.0
rouge_score_version=0.1.2
cache="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}"
venv="$cache/eval-ref-venv"
mkdir -p "$cache"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" - <<PY 2>/dev/null
from importlib.metadata import version as v
assert v("sacrebleu") == "$sacrebleu_version", v("sacrebleu")
assert v("rouge-score") == "$rouge_score_version", v("rouge-score")
import nltk
PY
then
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "sacrebleu==$sacrebleu_version" "rouge-score==$rouge_score_version"
fi
"$venv/bin/python" "$(dirname "$0")/text_metrics_reference.py" "$@"
