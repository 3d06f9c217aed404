"""Sliding-window perplexity of a GGUF through llama.cpp (llama-cpp-python) on given token ids,
windows as llm-core's `eval::perplexity` takes them (transformers' recipe): windows of
`--context` tokens starting every `--stride`, each scoring the labels the previous window did
not. Prints one JSON line. The ids come from `cargo run --release --example perplexity --
--ids-out IDS.json ...`, so both tools score the same tokens.

    ~/.cache/llm-rs/llama-cpp-venv/bin/python scripts/llama_cpp_perplexity.py MODEL.gguf IDS.json \
        --context 256 --stride 128 --threads 2
"""

import argparse
import json
import math

import llama_cpp
import numpy as np


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("ids")
    p.add_argument("--context", type=int, default=512)
    p.add_argument("--stride", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    ids = json.load(open(args.ids))
    llm = llama_cpp.Llama(
        model_path=args.model,
        n_ctx=args.context,
        n_batch=args.context,
        n_ubatch=args.context,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        logits_all=True,
        verbose=False,
    )
    nll, windows, prev_end, begin = [], 0, 0, 0
    while begin < len(ids):
        end = min(begin + args.context, len(ids))
        trg_len = end - prev_end
        window = ids[begin:end]
        llm.reset()
        llm.eval(window)
        lp = log_softmax(np.array(llm.scores[: len(window)]))
        first = max(len(window) - trg_len, 1)
        nll.extend(-lp[t - 1, window[t]] for t in range(first, len(window)))
        windows += 1
        prev_end = end
        if end == len(ids):
            break
        begin += args.stride
    print(json.dumps({"llama_cpp": llama_cpp.__version__, "perplexity": math.exp(sum(nll) / len(nll)), "scored": len(nll), "windows": windows}))


if __name__ == "__main__":
    main()
