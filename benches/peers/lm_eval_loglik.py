"""lm-eval's HF backend scoring loglikelihood requests: the peer of `cargo bench --bench eval`.

Reads {"gguf": path, "requests": [[context, continuation], ...], "batch_sizes": [1, 8]} from the
file named by argv[1]; loads SmolLM2 once (the GGUF dequantized to float32 by transformers, CPU)
and times `HFLM.loglikelihood` on the requests at each batch size (the best of `--repeats`
runs after one warm-up). Prints {"seconds": {"1": s, "8": s}, "logprobs": [...]} as JSON.
"""

import json
import os
import sys
import time
from pathlib import Path

import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM


def main():
    spec = json.loads(Path(sys.argv[1]).read_text())
    repeats = int(spec.get("repeats", 2))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    gguf = Path(spec["gguf"]).resolve()
    lm = HFLM(pretrained=str(gguf.parent), gguf_file=gguf.name, dtype="float32", device="cpu", batch_size=1)
    reqs = [Instance(request_type="loglikelihood", doc={}, arguments=(c, x), idx=i) for i, (c, x) in enumerate(spec["requests"])]
    seconds = {}
    logprobs = None
    for bs in spec["batch_sizes"]:
        lm.batch_size_per_gpu = int(bs)
        lm.loglikelihood(reqs[:8], disable_tqdm=True)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            out = lm.loglikelihood(reqs, disable_tqdm=True)
            best = min(best, time.perf_counter() - start)
        seconds[str(bs)] = best
        logprobs = [float(ll) for ll, _ in out]
    print(json.dumps({"seconds": seconds, "logprobs": logprobs}))


if __name__ == "__main__":
    main()
