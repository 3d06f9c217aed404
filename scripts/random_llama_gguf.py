"""Write an f16 GGUF with random weights and the real shapes of Llama-3.2-1B (hidden 2048,
intermediate 8192, 16 layers, 32 heads / 8 KV heads of 64, tied embeddings), so that llama.cpp's
quantizer (scripts/llama_cpp_quantize.py) makes true 256-wide K-quant blocks from it: SmolLM2's
576-wide rows fall back to legacy types under K-quant mixes. Recommended flow, from
scripts/fetch-llama-cpp.sh's venv:

    py=~/.cache/llm-rs/llama-cpp-venv/bin/python
    $py scripts/random_llama_gguf.py [OUT.gguf]
    $py scripts/llama_cpp_quantize.py ~/.cache/llm-rs/Llama-3.2-1B-shaped-random.f16.gguf \
        ~/.cache/llm-rs/Llama-3.2-1B-shaped-random.Q4_K_M.gguf Q4_K_M    # and Q8_0 likewise

OUT defaults to Llama-3.2-1B-shaped-random.f16.gguf in the model cache ($LLM_CACHE_DIR, default
~/.cache/llm-rs); the f16 file (about 2.2 GB) is kept, to requantize from.

The vocabulary is SmolLM2's (49152 rows, not Llama-3.2's 128256): every `tokenizer.ggml.*` key
and `tokenizer.chat_template` are copied from ~/.cache/llm-rs/SmolLM2-135M-Instruct.Q4_1.gguf
(scripts/fetch-models.sh), so the file loads in llama.cpp and in our loader and tokenizes text
without a 128k tokenizer. The embedding (and the tied output head) is thus 49152 x 2048, not
128256 x 2048; the 16 blocks are Llama-3.2-1B's exactly. Llama 3's RoPE scaling (the
`rope_freqs.weight` tensor llama.cpp's converter writes) is left out, as llm-core refuses it;
rope.freq_base is 500000 and the context length written is 2048 (Llama-3.2's is 131072).

Weights are N(0, 0.02) in f16 from a seeded numpy generator (the file is the same on every run),
norms all ones in f32. 2-D tensors are numpy [d_out, d_in] as convert_hf_to_gguf.py stores them
(gguf-py writes the dimensions reversed: ne = [d_in, d_out], what llama.cpp's loader expects);
the Q/K row permutation of that converter is moot for random weights. Tensors are generated and
written one at a time (low memory), to a temporary name, then renamed.
"""

import os
import sys

import gguf
import numpy as np

CACHE = os.environ.get("LLM_CACHE_DIR") or os.path.expanduser("~/.cache/llm-rs")
DEFAULT_OUT = os.path.join(CACHE, "Llama-3.2-1B-shaped-random.f16.gguf")
VOCAB_FROM = os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf")

D, FF, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 2048, 8192, 16, 32, 8, 64
ROPE_THETA, RMS_EPS, CONTEXT = 500000.0, 1e-5, 2048
STD, SEED = 0.02, 1234


def tokenizer_fields(path):
    """(key, value, type, sub_type) of every tokenizer key of the GGUF at `path`."""
    reader = gguf.GGUFReader(path)
    out = []
    for key, field in reader.fields.items():
        if not (key.startswith("tokenizer.ggml.") or key == "tokenizer.chat_template"):
            continue
        vtype = gguf.GGUFValueType(field.types[0])
        sub = gguf.GGUFValueType(field.types[1]) if vtype == gguf.GGUFValueType.ARRAY else None
        out.append((key, field.contents(), vtype, sub))
    return out


def tensors(vocab):
    """(name, numpy shape [d_out, d_in] / [d], dtype) in convert_hf_to_gguf.py's order."""
    f16, f32 = np.float16, np.float32
    yield "token_embd.weight", (vocab, D), f16
    for i in range(LAYERS):
        b = f"blk.{i}."
        yield b + "attn_norm.weight", (D,), f32
        yield b + "attn_q.weight", (HEADS * HEAD_DIM, D), f16
        yield b + "attn_k.weight", (KV_HEADS * HEAD_DIM, D), f16
        yield b + "attn_v.weight", (KV_HEADS * HEAD_DIM, D), f16
        yield b + "attn_output.weight", (D, HEADS * HEAD_DIM), f16
        yield b + "ffn_norm.weight", (D,), f32
        yield b + "ffn_gate.weight", (FF, D), f16
        yield b + "ffn_up.weight", (FF, D), f16
        yield b + "ffn_down.weight", (D, FF), f16
    yield "output_norm.weight", (D,), f32  # no output.weight: tied to token_embd


def main():
    if len(sys.argv) > 2 or (len(sys.argv) == 2 and sys.argv[1].startswith("-")):
        sys.exit(f"usage: {sys.argv[0]} [OUT.gguf]   (default {DEFAULT_OUT})")
    dst = sys.argv[1] if len(sys.argv) == 2 else DEFAULT_OUT
    if not os.path.exists(VOCAB_FROM):
        sys.exit(f"{VOCAB_FROM} is missing (the vocabulary comes from it): run scripts/fetch-models.sh")
    tok = tokenizer_fields(VOCAB_FROM)
    vocab = len(next(v for k, v, _, _ in tok if k == "tokenizer.ggml.tokens"))

    tmp = dst + ".part"
    w = gguf.GGUFWriter(tmp, "llama")
    w.add_name("Llama-3.2-1B-shaped random")
    w.add_description("random N(0, 0.02) weights, Llama-3.2-1B shapes, SmolLM2 vocabulary")
    w.add_size_label("1B")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(D)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(ROPE_THETA)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_vocab_size(vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for key, val, vtype, sub in tok:
        w.add_key_value(key, val, vtype, sub_type=sub)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    plan = list(tensors(vocab))
    for name, shape, dtype in plan:
        w.add_tensor_info(name, shape, np.dtype(dtype), int(np.prod(shape)) * np.dtype(dtype).itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(SEED)
    n = 0
    for name, shape, dtype in plan:
        if dtype == np.float32:  # RMSNorm weights
            t = np.ones(shape, np.float32)
        else:
            t = rng.standard_normal(shape, dtype=np.float32)
            t *= STD
            t = t.astype(np.float16)
        w.write_tensor_data(t)
        n += t.size
    w.close()
    os.replace(tmp, dst)
    print(f"{dst}: {n / 1e9:.3f}B parameters, {len(plan)} tensors, vocab {vocab} (SmolLM2's)")


if __name__ == "__main__":
    main()
