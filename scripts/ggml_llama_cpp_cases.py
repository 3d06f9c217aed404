"""A tiny random Llama GGUF quantized by llama.cpp itself (Q4_K_M: Q4_K and Q6_K blocks of 256)
and llama.cpp's logits on it: fixtures/l_ggml/tiny-q4_k_m.gguf and llama_cpp_logits.safetensors.
llm-core's tests run the file from its blocks and dequantized, against those logits.

    ~/.cache/llm-rs/llama-cpp-venv/bin/python scripts/ggml_llama_cpp_cases.py

Needs scripts/fetch-llama-cpp.sh's venv (llama-cpp-python 0.3.36, gguf 0.19.0). Widths are
multiples of 256 so that llama.cpp keeps K-quant blocks (no fallback); no vocabulary
(`tokenizer.ggml.model = none`), as llama.cpp allows: the test feeds ids.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

import gguf
import llama_cpp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "l_ggml")
IDS = [3, 17, 200, 45, 511, 8, 99, 260]


def write_f32_gguf(path):
    rng = np.random.default_rng(0)
    d, ff, layers, vocab, heads, kv = 256, 512, 2, 512, 4, 2
    hd = d // heads
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("tiny-random-llama")
    w.add_context_length(256)
    w.add_embedding_length(d)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(hd)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("none")

    def t(name, shape, scale=0.05):
        w.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    t("token_embd.weight", (vocab, d), 1.0)
    t("output.weight", (vocab, d))
    w.add_tensor("output_norm.weight", np.ones(d, np.float32))
    for i in range(layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(d, np.float32))
        w.add_tensor(p + "ffn_norm.weight", np.ones(d, np.float32))
        t(p + "attn_q.weight", (d, d))
        t(p + "attn_k.weight", (kv * hd, d))
        t(p + "attn_v.weight", (kv * hd, d))
        t(p + "attn_output.weight", (d, d))
        t(p + "ffn_gate.weight", (ff, d))
        t(p + "ffn_up.weight", (ff, d))
        t(p + "ffn_down.weight", (d, ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": {"float32": "F32", "int64": "I64"}[str(a.dtype)], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "tiny-f32.gguf")
        write_f32_gguf(src)
        dst = os.path.join(OUT, "tiny-q4_k_m.gguf")
        subprocess.run([sys.executable, os.path.join(HERE, "llama_cpp_quantize.py"), src, dst, "Q4_K_M"], check=True)
    llm = llama_cpp.Llama(model_path=dst, n_ctx=64, n_threads=2, logits_all=True, verbose=False)
    llm.eval(IDS)
    logits = np.array(llm.scores[: len(IDS)], dtype=np.float32)
    write_safetensors(os.path.join(OUT, "llama_cpp_logits.safetensors"), {"ids": np.array(IDS, np.int64), "logits": logits})
    types = sorted({t.tensor_type.name for t in gguf.GGUFReader(dst).tensors})
    print(f"{dst}: {types}; logits {logits.shape} by llama.cpp {llama_cpp.__version__}")


if __name__ == "__main__":
    main()
