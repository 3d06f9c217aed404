"""Runs lm-eval (Python API, HF backend, float32, CPU, batch size 1) on the task YAML files in
examples/data/eval/tasks with SmolLM2-135M-Instruct, and reduces its logged samples into
fixtures/lm_eval/<run>.json, what llm-core's eval runner is compared against
(llm-core/tests/core/lm_eval_parity.rs). Called by scripts/lm-eval-reference.sh.

Each run is one `simple_evaluate` call on one loaded model:
  zero_shot         capitals_mc, arith_mc, science_mc, rolling_text      (0-shot)
  fewshot           science_mc (2 shots, random sampler, seed 1234), capitals_gen (its 3 first_n shots)
  chat_multiturn    capitals_mc (2 shots drawn from the test split itself), chat template,
                    fewshot_as_multiturn

Per task the fixture keeps lm-eval's aggregate results ("acc,none": ...) and per document and
filter: the doc id, the target, every request's arguments (context and continuation, or
context and the generation kwargs), the raw responses ([log-prob, is_greedy], or the text),
the filtered response and the per-document metrics.
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import lm_eval
import torch
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

REPO = Path(__file__).resolve().parent.parent
TASKS = REPO / "examples/data/eval/tasks"
OUT = REPO / "fixtures/lm_eval"

RUNS = [
    {"name": "zero_shot", "tasks": ["capitals_mc", "arith_mc", "science_mc", "rolling_text"], "num_fewshot": 0},
    {"name": "fewshot_science", "tasks": ["science_mc"], "num_fewshot": 2},
    {"name": "fewshot_capitals_gen", "tasks": ["capitals_gen"], "num_fewshot": None},
    {
        "name": "chat_multiturn",
        "tasks": ["capitals_mc"],
        "num_fewshot": 2,
        "apply_chat_template": True,
        "fewshot_as_multiturn": True,
    },
]


def plain(v):
    """JSON-safe copy of a logged value (tuples become lists, numpy scalars Python numbers)."""
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if hasattr(v, "item"):
        return v.item()
    return v


def sample_record(s):
    """One logged sample (a document under one filter), reduced."""
    args = [list(a.values()) if isinstance(a, dict) else list(a) for a in s["arguments"].values()] if isinstance(s["arguments"], dict) else s["arguments"]
    record = {
        "doc_id": s["doc_id"],
        "filter": s["filter"],
        "target": plain(s["target"]),
        "arguments": plain(args),
        "resps": plain([r[0] for r in s["resps"]]),
        "filtered_resps": plain(s["filtered_resps"]),
        "metrics": {m: plain(s[m]) for m in s["metrics"]},
    }
    return record


def run(lm, spec, task_manager, keep):
    kwargs = {k: spec[k] for k in ("apply_chat_template", "fewshot_as_multiturn") if k in spec}
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=spec["tasks"],
        num_fewshot=spec["num_fewshot"],
        task_manager=task_manager,
        log_samples=True,
        random_seed=0,
        numpy_random_seed=1234,
        torch_random_seed=1234,
        fewshot_random_seed=1234,
        bootstrap_iters=0,
        **kwargs,
    )
    if keep:
        (keep / f"{spec['name']}.json").write_text(json.dumps(plain(out["samples"]), indent=1, default=str))
    tasks = {}
    for task in spec["tasks"]:
        results = {k: plain(v) for k, v in out["results"][task].items() if k != "alias" and "stderr" not in k}
        samples = sorted(out["samples"][task], key=lambda s: (s["doc_id"], s["filter"]))
        tasks[task] = {
            "results": results,
            "n_shot": plain(out["n-shot"][task]),
            "samples": [sample_record(s) for s in samples],
        }
    return {
        "run": {k: v for k, v in spec.items() if k != "tasks"},
        "versions": {"lm_eval": lm_eval.__version__, "torch": torch.__version__.split("+")[0]},
        "tasks": tasks,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="the SmolLM2 GGUF")
    ap.add_argument("--venv", help="only printed")
    ap.add_argument("--keep", type=Path, help="also write lm-eval's raw samples here")
    ap.add_argument("--runs", help="comma-separated run names (default: all)")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    gguf = Path(a.model).resolve()
    lm = HFLM(
        pretrained=str(gguf.parent),
        gguf_file=gguf.name,
        dtype="float32",
        device="cpu",
        batch_size=1,
    )
    task_manager = TaskManager(include_path=str(TASKS))
    if a.keep:
        a.keep.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    wanted = set(a.runs.split(",")) if a.runs else None
    for spec in RUNS:
        if wanted and spec["name"] not in wanted:
            continue
        fixture = run(lm, spec, task_manager, a.keep)
        fixture["model"] = gguf.name
        path = OUT / f"{spec['name']}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
        tmp.replace(path)
        summary = {t: v["results"] for t, v in fixture["tasks"].items()}
        print(f"{path.relative_to(REPO)}: {json.dumps(summary)}", file=sys.stderr)


if __name__ == "__main__":
    main()
