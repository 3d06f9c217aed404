#!/usr/bin/env python3
"""Random GGML blocks of every type llm-core runs, with gguf-py's own dequantization.

Writes fixtures/l_ggml/dequant.safetensors: for each type T, `T.blocks` (u8, the raw block
bytes) and `T.values` (f32, gguf.quants.dequantize of them). The scale fields (f16) are drawn
finite and of either sign so every arithmetic path is exercised; every other byte is uniform.

    python3 -m venv /tmp/ggufvenv && /tmp/ggufvenv/bin/pip install gguf==0.19.0 numpy safetensors
    /tmp/ggufvenv/bin/python scripts/ggml_dequant_cases.py
"""
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize
from safetensors.numpy import save_file

# type -> (block bytes, offsets of its f16 scale fields)
LAYOUT = {
    T.Q4_0: (18, [0]),
    T.Q4_1: (20, [0, 2]),
    T.Q5_0: (22, [0]),
    T.Q5_1: (24, [0, 2]),
    T.Q8_0: (34, [0]),
    T.Q2_K: (84, [80, 82]),
    T.Q3_K: (110, [108]),
    T.Q4_K: (144, [0, 2]),
    T.Q5_K: (176, [0, 2]),
    T.Q6_K: (210, [208]),
}
BLOCKS = 8

def main():
    rng = np.random.default_rng(7)
    out = {}
    for ty, (size, halves) in LAYOUT.items():
        blocks = rng.integers(0, 256, size=(BLOCKS, size), dtype=np.uint8)
        for at in halves:
            scale = (rng.standard_normal(BLOCKS) * 0.05).astype(np.float16)
            blocks[:, at:at + 2] = scale.view(np.uint8).reshape(BLOCKS, 2)
        values = dequantize(blocks.reshape(-1), ty).astype(np.float32)
        out[f"{ty.name}.blocks"] = blocks.reshape(-1)
        out[f"{ty.name}.values"] = values.reshape(-1)
    dest = Path(__file__).resolve().parent.parent / "fixtures/l_ggml/dequant.safetensors"
    save_file(out, str(dest))
    print(f"wrote {dest}", file=sys.stderr)

if __name__ == "__main__":
    main()
