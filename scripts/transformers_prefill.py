"""transformers (PyTorch, fp32) prefill of a Hugging Face checkpoint: tokens/s of one forward
over the first N of the given ids (`use_cache=True`, as generation's first step), best of
`--repeats`, on `--threads` threads. Prints one JSON line. The decode bench
(benches/benches/decode.rs) runs it on the f32 SmolLM2 checkpoint with the ids and lengths it
gives llama.cpp, when LLM_TORCH_PYTHON names a Python with torch and transformers.

    $LLM_TORCH_PYTHON scripts/transformers_prefill.py CHECKPOINT_DIR --prompt-ids 1,2,3 --prefill 128,512
"""

import argparse
import json
import time

import torch
import transformers


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--prompt-ids", required=True)
    p.add_argument("--prefill", default="128")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ids = [int(t) for t in args.prompt_ids.split(",")]
    model = transformers.AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32)
    model.eval()
    out = {}
    with torch.inference_mode():
        for n in (int(x) for x in args.prefill.split(",")):
            x = torch.tensor([ids[:n]])
            model(x, use_cache=True)  # warm-up
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                model(x, use_cache=True)
                best = min(best, time.perf_counter() - start)
            out[str(n)] = n / best
    print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__, "prefill_tok_s": out, "threads": args.threads}))


if __name__ == "__main__":
    main()
