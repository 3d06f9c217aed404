#!/usr/bin/env bash
# Installs OpenAI's official Python client (PyPI openai, pinned), jsonschema and selenium into a
# virtualenv in the model cache ($LLM_CACHE_DIR, default ~/.cache/llm-rs/openai-venv), once.
# scripts/openai_client_check.py and scripts/serve_load.py talk to our server through that
# client; scripts/chat_page_check.py drives the chat page in headless Chromium with selenium.
# Idempotent: a venv whose install finished (its marker file names these versions) is kept.
set -euo pipefail

openai_version=3.60.0
jsonschema_version=4.26.0
# 4.52 and later want a newer certifi than the registry has.
selenium_version=4.51.0
cache="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}"
venv="$cache/openai-venv"
marker="$venv/.llm-rs-openai-$openai_version-jsonschema-$jsonschema_version-selenium-$selenium_version"

if [ -f "$marker" ] && [ -x "$venv/bin/python" ]; then
  echo "fetch-openai-client: openai $openai_version is present in $venv"
  exit 0
fi
mkdir -p "$cache"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "openai==$openai_version" "jsonschema==$jsonschema_version" "selenium==$selenium_version"
"$venv/bin/python" -c "import openai, jsonschema, selenium; print('openai', openai.__version__)"
# Written last: a cut install has no marker and is redone next time.
touch "$marker"
echo "fetch-openai-client: installed openai $openai_version into $venv"
