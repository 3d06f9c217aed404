#!/usr/bin/env python3
"""trl peer of the DPO bench in benches/benches/train.rs: one DPO step (sigmoid, beta 0.1) with a
LoRA policy (r 8, alpha 16, all-linear) whose reference is the same model with the adapter
disabled (trl's default for a PEFT policy without ref_model), on the first N pairs of a
preference JSONL. Prints one JSON line: seconds per step, tokens per step, tokens/s.

  python trl_dpo_step.py --model DIR --data prefs.jsonl [--pairs 4] [--steps 3] [--threads 2]
"""
import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("WANDB_DISABLED", "true")
import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = [json.loads(l) for l in open(a.data) if l.strip()][: a.pairs]
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"))
    with tempfile.TemporaryDirectory() as tmp:
        args = DPOConfig(output_dir=tmp, beta=0.1, loss_type=["sigmoid"], per_device_train_batch_size=a.pairs, max_length=512,
                         use_cpu=True, bf16=False, fp16=False, report_to=[], precompute_ref_log_probs=False,
                         dataloader_num_workers=0, disable_tqdm=True)
        trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
        params = [p for p in trainer.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
        trainer.model.train()

        def step():
            loss = trainer.compute_loss(trainer.model, {k: v for k, v in batch.items()})
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.item()

        step()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            loss = step()
        dt = (time.perf_counter() - t0) / a.steps
    tokens = int(batch["attention_mask"].sum())
    print(json.dumps({"torch": torch.__version__, "step_s": dt, "tokens": tokens, "tokens_per_second": tokens / dt, "loss": loss}))


if __name__ == "__main__":
    main()
