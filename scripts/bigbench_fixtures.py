#!/usr/bin/env python3
"""The rows of the Hugging Face `bigbench` datasets (`hails/bigbench`, `tasksource/bigbench`)
for the BIG-bench tasks in fixtures/bigbench/<task>/task.json, made by BIG-bench's own code and
written to fixtures/bigbench/<task>/docs.json: what llm-core's `eval::bigbench` reader must
reproduce (llm-core/tests/core/bigbench_tasks.rs).

    scripts/bigbench-fixtures.sh [--from BENCHMARK_TASKS_DIR]

Run through scripts/bigbench-fixtures.sh, which fetches the `bigbench` 0.0.1 sdist from PyPI and
a numpy. The prompt comes from that sdist's `json_task.default_format_fn`, taken out of
json_task.py as it stands (importing the module needs tensorflow and seqio, which the function
does not use). The steps around it are BIG-bench's, restated here:
- `JsonTask.load_and_process_json`: the file read with `object_pairs_hook=OrderedDict`, examples
  that `json.dumps` writes identically dropped after their first, every example formatted with
  the task's prefixes and `random_seed=42`;
- the datasets builder (`bigbench.py`, `default` split, 0 shots): `task_prefix` prepended to the
  input, `idx` the row number, and every string `.strip()`ped.

--from DIR (a BIG-bench checkout's bigbench/benchmark_tasks) first re-copies each task.json,
keeping the examples TASKS lists. The bigbench 1.0.0 wheel that shipped the task files is no
longer on PyPI; the sdist has the code only.
"""

import argparse
import ast
import collections
import copy
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "bigbench")
# The examples kept of each task: few enough to read, chosen for what they exercise.
TASKS = {
    # Default prefixes; five choices appended in RandomState(42) order; a `target` field; emoji.
    "emoji_movie": list(range(40)),
    # Its own input and choice prefixes, choices not appended; several correct choices (the
    # target is the first of them).
    "novel_concepts": list(range(32)),
    # A task prefix and an output prefix ending in a space; 1182 and 1183 are the same example.
    "winowhy": list(range(38)) + [1182, 1183],
}


def default_format_fn(json_task_py):
    """`default_format_fn` out of BIG-bench's json_task.py, compiled on its own."""
    tree = ast.parse(open(json_task_py).read())
    [fn] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "default_format_fn"]
    namespace = {"np": np}
    exec("from typing import Any, Dict, List, Optional", namespace)
    exec(compile(ast.Module(body=[fn], type_ignores=[]), json_task_py, "exec"), namespace)
    return namespace["default_format_fn"]


def hf_rows(task_json, format_fn):
    """The `default` split's rows for one task file."""
    with open(task_json, "rb") as f:
        task = json.load(f, object_pairs_hook=collections.OrderedDict)
    seen, distinct = set(), []
    for example in task["examples"]:
        key = json.dumps(example)
        if key not in seen:
            seen.add(key)
            distinct.append(example)
    task_prefix = str(task.get("task_prefix", ""))
    rows = []
    for idx, example in enumerate(distinct):
        sample = format_fn(
            copy.deepcopy(example),
            input_prefix=task.get("example_input_prefix", "\nQ: "),
            output_prefix=task.get("example_output_prefix", "\nA: "),
            choice_prefix=task.get("choice_prefix", "\n  choice: "),
            random_seed=42,
            append_choices_to_input=task.get("append_choices_to_input", True),
        )
        rows.append(
            {
                "idx": idx,
                "inputs": (task_prefix + sample["input"]).strip(),
                "targets": [t.strip() for t in sample["target"]],
                "multiple_choice_targets": [c.strip() for c in sample["target_scores"]],
                "multiple_choice_scores": list(sample["target_scores"].values()),
            }
        )
    return rows


def copy_task(source_dir, name, keep):
    """`<source_dir>/<name>/task.json` with only the examples `keep` lists."""
    with open(os.path.join(source_dir, name, "task.json"), "rb") as f:
        task = json.load(f, object_pairs_hook=collections.OrderedDict)
    task["examples"] = [task["examples"][i] for i in keep]
    os.makedirs(os.path.join(OUT, name), exist_ok=True)
    with open(os.path.join(OUT, name, "task.json"), "w", encoding="utf-8") as f:
        json.dump(task, f, indent=2, ensure_ascii=False)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json_task_py", help="bigbench/api/json_task.py from the bigbench sdist")
    parser.add_argument("--from", dest="source", help="a BIG-bench checkout's bigbench/benchmark_tasks")
    args = parser.parse_args()
    format_fn = default_format_fn(args.json_task_py)
    for name, keep in TASKS.items():
        if args.source:
            copy_task(args.source, name, keep)
        rows = hf_rows(os.path.join(OUT, name, "task.json"), format_fn)
        with open(os.path.join(OUT, name, "docs.json"), "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(f"{name}: {len(rows)} rows", file=sys.stderr)


if __name__ == "__main__":
    main()
