#!/usr/bin/env bash
# Writes GGUF files with llm-quant (the `quantize` example, --method gguf) and records what
# llama.cpp makes of them (scripts/gguf_export_check.py): fixtures/m_gguf_write/llama_cpp_export.*.
#   - the tiny Llama of fixtures/a_tiny_llama/llama with the byte-level BPE tokenizer of
#     fixtures/b_tokenizer/bytelevel_bpe512 (vocab 512), as F32, F16, BF16, Q8_0, Q4_0, Q4_1,
#     Q5_0, Q5_1 and Q4_K_M (64-wide rows: the K-quants fall back as llama-quantize's do);
#   - the PEFT LoRA of fixtures/c_lora/adapter as a llama.cpp LoRA GGUF, run on the tiny F32 file;
#   - SmolLM2-135M-Instruct requantized from the fetched Q4_1 GGUF to Q8_0 and Q4_K_M (its
#     1536-wide ffn_down rows hold real Q4_K / Q6_K blocks).
# Needs scripts/fetch-llama-cpp.sh and scripts/fetch-models.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-llama-cpp.sh >/dev/null
py="${LLM_CACHE_DIR:-$HOME/.cache/llm-rs}/llama-cpp-venv/bin/python"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tiny="$tmp/tiny"
mkdir -p "$tiny"
cp fixtures/a_tiny_llama/llama/config.json fixtures/a_tiny_llama/llama/model.safetensors "$tiny/"
cp fixtures/b_tokenizer/bytelevel_bpe512/{tokenizer.json,tokenizer_config.json,chat_template.jinja} "$tiny/"
cargo build --release -p llm-examples --example quantize
q=target/release/examples/quantize
args=()
for t in F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K_M; do
  "$q" --model "$tiny" --method gguf --type "$t" --out "$tmp/tiny_$t.gguf" --eval-chars 400
  args+=("tiny_$t=$tmp/tiny_$t.gguf")
done
"$q" --model "$tiny" --method gguf-lora --adapter fixtures/c_lora/adapter --out "$tmp/tiny_lora.gguf" --eval-chars 400
args+=("tiny_lora=$tmp/tiny_F32.gguf+$tmp/tiny_lora.gguf")
for t in Q8_0 Q4_K_M; do
  "$q" --method gguf --type "$t" --out "$tmp/smollm2_$t.gguf" --eval-chars 1000
  args+=("smollm2_$t=$tmp/smollm2_$t.gguf")
done
"$py" scripts/gguf_export_check.py "${args[@]}"
