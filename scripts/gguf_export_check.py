#!/usr/bin/env python3
"""llama.cpp's view of GGUF files llm-quant wrote: for each `LABEL=FILE.gguf`, the file's
SHA-256, llama.cpp's logits on fixed token ids, its tokenization of a fixed text, and what
gguf-py reads back (every metadata key and tensor). Written to
fixtures/m_gguf_write/llama_cpp_export.{safetensors,json}; llm-quant's tests re-write the same
files, check the hash, and compare their own logits on them with these.

    ~/.cache/llm-rs/llama-cpp-venv/bin/python scripts/gguf_export_check.py tiny_F32=/tmp/a.gguf lora=/tmp/a.gguf+/tmp/l.gguf ...

Run by scripts/gguf-export-reference.sh, which writes the files first.
"""

import hashlib
import json
import os
import struct
import sys

import gguf
import llama_cpp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "m_gguf_write")
IDS = [1, 17, 200, 45, 311, 8, 99, 260]
ROWS = [1, 4, 7]
TEXT = "The capital of France is Paris. It has 2,148,271 people!"


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a).tobytes()
        dtype = {"float32": "F32", "float16": "F16", "int64": "I64"}[str(a.dtype)]
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def check(label, path):
    # BASE.gguf+LORA.gguf: the base with a LoRA adapter; the adapter is the file checked.
    base, _, lora = path.partition("+")
    path = lora or base
    reader = gguf.GGUFReader(path)
    keys = sorted(reader.fields.keys())
    types = {}
    for t in reader.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    llm = llama_cpp.Llama(model_path=base, lora_path=lora or None, n_ctx=64, n_threads=2, logits_all=True, verbose=False)
    llm.eval(IDS)
    logits = np.array(llm.scores[: len(IDS)], dtype=np.float32)
    tokens = llm.tokenize(TEXT.encode(), add_bos=False, special=True)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    print(f"{label}: {os.path.getsize(path)} bytes, {len(reader.tensors)} tensors {types}, {len(keys)} keys, tokens {tokens[:8]}...")
    return logits, {"sha256": digest, "keys": keys, "tensor_types": types, "tokens": tokens}


def main():
    tensors, meta = {"ids": np.array(IDS, np.int64)}, {"ids": IDS, "text": TEXT, "llama_cpp": llama_cpp.__version__, "files": {}}
    for arg in sys.argv[1:]:
        label, path = arg.split("=", 1)
        logits, info = check(label, path)
        if logits.shape[1] > 4096:
            # A real vocabulary: three positions in f16 keep the fixture small (f16 rounds by
            # 1e-3 of a logit, far below what the tests allow).
            info["rows"] = ROWS
            logits = logits[ROWS].astype(np.float16)
        tensors[f"{label}.logits"] = logits
        meta["files"][label] = info
    write_safetensors(os.path.join(OUT, "llama_cpp_export.safetensors"), tensors)
    with open(os.path.join(OUT, "llama_cpp_export.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
