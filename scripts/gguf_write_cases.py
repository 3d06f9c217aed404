#!/usr/bin/env python3
"""Reference blocks for llm-quant's GGUF quantizers: random f32 rows, quantized by gguf-py's
`quants.quantize` (the legacy types) and by llama.cpp's own quantizer (`llama_model_quantize`,
pure, every legacy and K-quant type), written to fixtures/m_gguf_write/blocks.safetensors:
`rows` (f32 [R, 512]) and, per type T, `T.gguf_py` / `T.llama_cpp` (u8, the raw blocks), plus
`importance` (f32 [512], an importance matrix row for the tensor) and `T.llama_cpp_imatrix`,
the blocks llama.cpp writes when given it (`--imatrix`: the weighted quantizers).

    ~/.cache/llm-rs/llama-cpp-venv/bin/python scripts/gguf_write_cases.py

Needs scripts/fetch-llama-cpp.sh's venv (llama-cpp-python 0.3.36, gguf 0.19.0). The rows sit in
`blk.0.ffn_gate.weight` of a tiny random Llama (512 wide, so no K-quant falls back), quantized
once per file type with `pure` (every tensor in the file type's default type), and read back
from the quantized file with gguf-py.
"""

import ctypes
import json
import os
import struct
import tempfile

import gguf
import llama_cpp
import numpy as np
from gguf import GGMLQuantizationType as T

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "m_gguf_write")
D, FF = 512, 32


def rows():
    rng = np.random.default_rng(7)
    r = [
        rng.standard_normal((8, D)) * 0.05,  # weight-like
        rng.uniform(-1, 1, (4, D)),
        rng.standard_normal((4, D)) * np.where(rng.uniform(size=(4, D)) < 0.01, 40.0, 1.0),  # outliers
        np.abs(rng.standard_normal((2, D))) + 0.5,  # all positive (min > 0)
        -np.abs(rng.standard_normal((2, D))),  # all negative
        rng.standard_normal((2, D)) * 1e-6,  # tiny
        np.zeros((1, D)),
        np.full((1, D), 0.25),
        rng.integers(-8, 8, (4, D)) * 0.125,  # exact ties at half steps
        rng.standard_normal((4, D)) * 3.0,
    ]
    return np.concatenate(r).astype(np.float32)[:FF]


def write_model(path, gate):
    rng = np.random.default_rng(0)
    heads, kv, vocab = 4, 2, 256
    hd = D // heads
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("gguf-write-cases")
    w.add_context_length(64)
    w.add_embedding_length(D)
    w.add_block_count(1)
    w.add_feed_forward_length(FF)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(hd)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("none")

    def t(name, shape):
        w.add_tensor(name, (rng.standard_normal(shape) * 0.05).astype(np.float32))

    t("token_embd.weight", (vocab, D))
    t("output.weight", (vocab, D))
    w.add_tensor("output_norm.weight", np.ones(D, np.float32))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(D, np.float32))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(D, np.float32))
    t("blk.0.attn_q.weight", (D, D))
    t("blk.0.attn_k.weight", (kv * hd, D))
    t("blk.0.attn_v.weight", (kv * hd, D))
    t("blk.0.attn_output.weight", (D, D))
    w.add_tensor("blk.0.ffn_gate.weight", gate)
    t("blk.0.ffn_up.weight", (FF, D))
    t("blk.0.ffn_down.weight", (D, FF * 16))  # 512 wide rows for the K-quants
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# file type whose default (pure) tensor type is T
FTYPES = {
    T.Q4_0: llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    T.Q4_1: llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1,
    T.Q5_0: llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_0,
    T.Q5_1: llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_1,
    T.Q8_0: llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    T.Q2_K: llama_cpp.LLAMA_FTYPE_MOSTLY_Q2_K,
    T.Q3_K: llama_cpp.LLAMA_FTYPE_MOSTLY_Q3_K_S,
    T.Q4_K: llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_S,
    T.Q5_K: llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_S,
    T.Q6_K: llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K,
    T.BF16: llama_cpp.LLAMA_FTYPE_MOSTLY_BF16,
    T.F16: llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
}


def llama_cpp_blocks(src, tmp, qtype, importance=None):
    dst = os.path.join(tmp, f"{qtype.name}.gguf")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[qtype]
    params.pure = True
    params.nthread = 1
    if importance is not None:
        # One entry for the tensor, then the terminator llama.cpp stops at (name NULL).
        data = (ctypes.c_float * len(importance))(*importance.tolist())
        entries = (llama_cpp.llama_model_imatrix_data * 2)()
        entries[0].name = b"blk.0.ffn_gate.weight"
        entries[0].data = ctypes.cast(data, ctypes.POINTER(ctypes.c_float))
        entries[0].size = len(importance)
        entries[1].name = None
        params.imatrix = ctypes.cast(entries, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
        keep = (data, entries)  # alive through the call
    if llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)) != 0:
        raise SystemExit(f"llama_model_quantize failed for {qtype.name}")
    (t,) = [t for t in gguf.GGUFReader(dst).tensors if t.name == "blk.0.ffn_gate.weight"]
    assert t.tensor_type == qtype, (t.tensor_type, qtype)
    return np.frombuffer(t.data.tobytes(), np.uint8)


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a).tobytes()
        dtype = {"float32": "F32", "uint8": "U8"}[str(a.dtype)]
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    os.makedirs(OUT, exist_ok=True)
    x = rows()
    out = {"rows": x}
    for q in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16):
        out[f"{q.name}.gguf_py"] = gguf.quants.quantize(x, q).reshape(-1).view(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "f32.gguf")
        write_model(src, x)
        for q in FTYPES:
            out[f"{q.name}.llama_cpp"] = llama_cpp_blocks(src, tmp, q)
        # Mean squared activations: positive, spread over three decades, as real ones are.
        importance = (np.random.default_rng(11).lognormal(0.0, 1.5, D) * 1e-2).astype(np.float32)
        out["importance"] = importance
        for q in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K):
            blocks = llama_cpp_blocks(src, tmp, q, importance)
            out[f"{q.name}.llama_cpp_imatrix"] = blocks
            print(f"{q.name}: imatrix changes {np.mean(blocks != out[f'{q.name}.llama_cpp']):.0%} of bytes")
    for q in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16):
        same = np.array_equal(out[f"{q.name}.gguf_py"], out[f"{q.name}.llama_cpp"])
        print(f"{q.name}: gguf-py {'==' if same else '!='} llama.cpp")
    path = os.path.join(OUT, "blocks.safetensors")
    write_safetensors(path, out)
    print(f"{path}: {len(out)} tensors, rows {x.shape}, llama.cpp {llama_cpp.__version__}, gguf-py {gguf.__version__ if hasattr(gguf, '__version__') else '0.19.0'}")


if __name__ == "__main__":
    main()
