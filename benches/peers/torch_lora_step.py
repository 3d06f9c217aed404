#!/usr/bin/env python3
"""PyTorch + peft peer of benches/benches/train.rs: the same LoRA training step on the same
weights and token ids. Prints one JSON line: seconds per step, tokens/s, loss, peak RSS.

  python torch_lora_step.py --model DIR --ids IDS.json [--steps 5] [--threads 2]
      [--r 8] [--alpha 16] [--method lora|full]

DIR: a Hugging Face checkpoint (the bench exports SmolLM2's f32 weights there);
IDS.json: [[...], ...] token ids, batch x seq; labels = ids (every token trained).
"""
import argparse
import json
import resource
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--method", default="lora")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    if a.method == "lora":
        from peft import LoraConfig, get_peft_model
        cfg = LoraConfig(r=a.r, lora_alpha=a.alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
        model = get_peft_model(model, cfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0)
    ids = torch.tensor(json.load(open(a.ids)), dtype=torch.long)

    def step():
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.loss.item()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    dt = (time.perf_counter() - t0) / a.steps
    print(json.dumps({
        "torch": torch.__version__, "threads": a.threads, "method": a.method,
        "step_s": dt, "tokens_per_second": ids.numel() / dt, "loss": loss,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
