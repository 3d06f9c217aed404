#!/usr/bin/env bash
# Serving bench: scripts/serve_load.py against our server (examples/serve) and then against
# llama.cpp's (llama-cpp-python's OpenAI server, from scripts/fetch-llama-cpp.sh's venv), on
# the same GGUF with the same client, seed and request mix, one server at a time so that
# neither takes the other's cores. Prints both reports and the ratios: aggregate tokens/s
# ours / llama.cpp, p50 TTFT llama.cpp / ours (above 1 is better for us, both ways).
# Only ours gets the disconnect check (llama-cpp-python has no /metrics).
#
#   cargo build --release -p llm-examples --example serve   # the caller builds it
#   bash scripts/serve-bench.sh
#
# Knobs (environment): GGUF, SERVE_BIN, CLIENTS (32), REQUESTS per client (4), MIN_TOKENS (64),
# MAX_TOKENS (256), SEED (0), SLOTS (32), THREADS for llama.cpp (2), LLAMA_PY (the python of
# another llama-cpp-python venv), OUT_DIR (reports and server logs; a new /tmp folder by default).
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}"
gguf="${GGUF:-$cache/SmolLM2-135M-Instruct.Q4_1.gguf}"
serve_bin="${SERVE_BIN:-target/release/examples/serve}"
llama_py="${LLAMA_PY:-$cache/llama-cpp-venv/bin/python}"
client_py="$cache/openai-venv/bin/python"
out="${OUT_DIR:-$(mktemp -d /tmp/serve-bench.XXXXXX)}"
mkdir -p "$out"
load_args=(--clients "${CLIENTS:-32}" --requests "${REQUESTS:-4}" --min-tokens "${MIN_TOKENS:-64}"
  --max-tokens "${MAX_TOKENS:-256}" --seed "${SEED:-0}" --baseline --timeout 900)

if [ ! -f "$gguf" ]; then
  echo "serve-bench: $gguf is missing: run scripts/fetch-models.sh" >&2
  exit 1
fi
if [ ! -x "$serve_bin" ]; then
  echo "serve-bench: $serve_bin is missing: build it first with" >&2
  echo "  cargo build --release -p llm-examples --example serve" >&2
  exit 1
fi
if [ ! -x "$llama_py" ]; then
  echo "serve-bench: no llama.cpp venv at $cache/llama-cpp-venv: run scripts/fetch-llama-cpp.sh" >&2
  exit 1
fi
bash scripts/fetch-openai-client.sh
# The server extras of the llama-cpp-python already built there (same version: no rebuild).
if ! "$llama_py" -c "import llama_cpp.server.app" 2>/dev/null; then
  version=$("$llama_py" -c "import importlib.metadata as m; print(m.version('llama_cpp_python'))")
  echo "serve-bench: installing llama-cpp-python[server]==$version's extras into $cache/llama-cpp-venv"
  "$llama_py" -m pip install --quiet --disable-pip-version-check "llama-cpp-python[server]==$version"
fi

pids=()
stop_all() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
trap stop_all EXIT

free_port() {
  "$client_py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready URL PID LOG: until URL answers 200, the process dies, or 180 s pass.
wait_ready() {
  local url=$1 pid=$2 log=$3
  for _ in $(seq 360); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "serve-bench: the server exited before it was ready; the end of $log:" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "serve-bench: $url did not answer within 180 s; the end of $log:" >&2
  tail -n 20 "$log" >&2
  return 1
}

first_model() {
  "$client_py" -c 'import json, sys, urllib.request
print(json.load(urllib.request.urlopen(sys.argv[1] + "/v1/models"))["data"][0]["id"])' "$1"
}

# run_load NAME BASE_URL EXTRA_ARGS...: the report lands in $out/NAME.json; returns its status.
run_load() {
  local name=$1 base=$2
  shift 2
  local model
  model=$(first_model "$base")
  echo "serve-bench: $name at $base, model $model"
  "$client_py" scripts/serve_load.py --base-url "$base" --model "$model" "${load_args[@]}" \
    --out "$out/$name.json" "$@" >/dev/null
}

rc_ours=0
port=$(free_port)
"$serve_bin" --model "$gguf" --port "$port" --slots "${SLOTS:-32}" >"$out/ours.log" 2>&1 &
pids+=($!)
wait_ready "http://127.0.0.1:$port/health" "${pids[0]}" "$out/ours.log"
run_load ours "http://127.0.0.1:$port" --disconnect 8 || rc_ours=$?
stop_all

rc_llama=0
port=$(free_port)
# interrupt_requests off: by default llama-cpp-python ends a stream whenever another request
# waits, which would cut most of the streamed answers short under load.
"$llama_py" -m llama_cpp.server --model "$gguf" --host 127.0.0.1 --port "$port" --n_ctx 4096 \
  --n_threads "${THREADS:-2}" --n_threads_batch "${THREADS:-2}" --interrupt_requests false \
  >"$out/llama-cpp.log" 2>&1 &
pids+=($!)
wait_ready "http://127.0.0.1:$port/v1/models" "${pids[0]}" "$out/llama-cpp.log"
# It sends no usage chunk when streaming, so its streamed tokens are counted from chunks.
run_load llama-cpp "http://127.0.0.1:$port" --count-chunks || rc_llama=$?
stop_all

"$client_py" - "$out/ours.json" "$out/llama-cpp.json" <<'EOF'
import json, sys
def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError) as e:
        return {"error": f"no report: {e}"}
ours, llama = (load(p) for p in sys.argv[1:3])
print(json.dumps({"ours": ours, "llama_cpp": llama}, indent=2))
def ratio(a, b):
    return round(a / b, 3) if a and b else None
print(json.dumps({
    "tokens_per_s": {"ours": ours.get("tokens_per_s"), "llama_cpp": llama.get("tokens_per_s"),
                     "ours_over_llama_cpp": ratio(ours.get("tokens_per_s"), llama.get("tokens_per_s"))},
    "ttft_p50_s": {"ours": ours.get("ttft_p50_s"), "llama_cpp": llama.get("ttft_p50_s"),
                   "llama_cpp_over_ours": ratio(llama.get("ttft_p50_s"), ours.get("ttft_p50_s"))},
    "ttft_stream_p50_s": {"ours": ours.get("ttft_stream_p50_s"), "llama_cpp": llama.get("ttft_stream_p50_s"),
                          "llama_cpp_over_ours": ratio(llama.get("ttft_stream_p50_s"), ours.get("ttft_stream_p50_s"))},
    "disconnect": ours.get("disconnect"),
}, indent=2))
EOF
echo "serve-bench: reports and server logs in $out"
if [ "$rc_ours" -ne 0 ] || [ "$rc_llama" -ne 0 ]; then
  echo "serve-bench: a load run failed (ours: $rc_ours, llama.cpp: $rc_llama): see the reports above" >&2
  exit 1
fi
