#!/usr/bin/env python3
"""sentence-transformers peer of benches/benches/embed.rs: encodes the same sentences with the
same model directory on the CPU. Prints one JSON line: sentences/s, max |diff| vs ours.

  python st_embed.py --model DIR --texts TEXTS.json [--ours OURS.json] [--threads 2] [--repeat 3]
"""
import argparse
import json
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--ours")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    texts = json.load(open(a.texts))
    model = SentenceTransformer(a.model, device="cpu")
    model.encode(texts[:8], batch_size=32)
    best = float("inf")
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        emb = model.encode(texts, batch_size=32, convert_to_numpy=True)
        best = min(best, time.perf_counter() - t0)
    out = {"sentence_transformers": __import__("sentence_transformers").__version__, "torch": torch.__version__,
           "seconds": best, "sentences_per_second": len(texts) / best}
    if a.ours:
        ours = np.array(json.load(open(a.ours)), dtype=np.float32)
        out["max_abs_diff_vs_ours"] = float(np.abs(ours - emb).max())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
