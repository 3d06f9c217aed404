"""llama.cpp (through llama-cpp-python) on one GGUF: prefill and greedy decode tokens/s and the
process's peak RSS, printed as one JSON line. The decode bench (benches/benches/decode.rs)
runs it on the same file, prompt ids, token counts and thread count as ours, in the same run.

    ~/.cache/llm-rs/llama-cpp-venv/bin/python scripts/llama_cpp_bench.py MODEL.gguf \
        --prompt-ids 1,2,3 --prefill 128,512 --decode 32 --threads 2

Made by scripts/fetch-llama-cpp.sh's venv (llama-cpp-python 0.3.36, built for this CPU).
"""

import argparse
import json
import resource
import time

import llama_cpp
import numpy as np


def timed_eval(llm, ids):
    # n_tokens back to 0: eval drops the cached positions from there on.
    llm.reset()
    start = time.perf_counter()
    llm.eval(ids)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--prompt-ids", required=True, help="comma-separated ids; prefixes of it are the prompts")
    p.add_argument("--prefill", default="128", help="comma-separated prompt lengths")
    p.add_argument("--decode", type=int, default=32, help="greedy tokens timed after a 128-token prompt")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="best of this many runs per figure")
    args = p.parse_args()

    ids = [int(t) for t in args.prompt_ids.split(",")]
    lengths = [int(n) for n in args.prefill.split(",")]
    n_ctx = max(lengths + [128 + args.decode]) + 8
    started = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=args.model,
        n_ctx=n_ctx,
        n_batch=max(lengths),
        n_ubatch=max(lengths),
        n_threads=args.threads,
        n_threads_batch=args.threads,
        logits_all=False,
        verbose=False,
    )
    load_s = time.perf_counter() - started

    prefill = {}
    for n in lengths:
        best = min(timed_eval(llm, ids[:n]) for _ in range(args.repeats))
        prefill[str(n)] = n / best

    best_decode = 0.0
    for _ in range(args.repeats):
        timed_eval(llm, ids[:128])
        start = time.perf_counter()
        for _ in range(args.decode):
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            llm.eval([token])
        best_decode = max(best_decode, args.decode / (time.perf_counter() - start))

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "llama_cpp": llama_cpp.__version__,
        "load_s": load_s,
        "prefill_tok_s": prefill,
        "decode_tok_s": best_decode,
        "peak_rss_mb": rss_mb,
        "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
