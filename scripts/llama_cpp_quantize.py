"""Quantize a GGUF with llama.cpp's own quantizer (`llama_model_quantize`, as `llama-quantize`
does), through llama-cpp-python from scripts/fetch-llama-cpp.sh's venv:

    ~/.cache/llm-rs/llama-cpp-venv/bin/python scripts/llama_cpp_quantize.py IN.gguf OUT.gguf Q8_0|Q4_K_M|...

An already quantized input is requantized (`allow_requantize`), as the bench variants of the
Q4_1 SmolLM2 are: what they measure is speed, not quality. Tensors whose rows are not a
multiple of 256 (all of SmolLM2's, 576 wide) fall back to llama.cpp's legacy types under K-quant
mixes; the 1B-shaped file (scripts/random_llama_gguf.py) has true 256-wide K-quant blocks.
Written to a temporary name, then renamed.
"""

import ctypes
import os
import sys

import llama_cpp

FTYPES = {
    "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "Q4_1": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1,
    "Q5_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_0,
    "Q5_1": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_1,
    "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "Q2_K": llama_cpp.LLAMA_FTYPE_MOSTLY_Q2_K,
    "Q3_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q3_K_M,
    "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "Q5_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M,
    "Q6_K": llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K,
}


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in FTYPES:
        sys.exit(f"usage: {sys.argv[0]} IN.gguf OUT.gguf {{{'|'.join(FTYPES)}}}")
    src, dst, kind = sys.argv[1:]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[kind]
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    tmp = dst + ".part"
    rc = llama_cpp.llama_model_quantize(src.encode(), tmp.encode(), ctypes.byref(params))
    if rc != 0:
        sys.exit(f"llama_model_quantize failed ({rc})")
    os.replace(tmp, dst)
    print(f"{dst}: {kind} by llama.cpp {llama_cpp.__version__}")


if __name__ == "__main__":
    main()
