"""Runs mergekit itself on the repo's tiny Llamas for the merges the shared g_merge fixture lacks
and writes what llm-train's merge tests compare against: fixtures/merge_ref/golden.json (the
YAML of each case, with <fixtures> for the fixture folder) and mergekit.safetensors (chosen
tensors of each output, `CASE.TENSOR`).

Run through scripts/mergekit-reference.sh, which makes the virtualenv (PyPI mergekit, pinned).

The vocabulary cases build two model folders the Rust test builds identically
(`union_inputs` below and `merge::union_inputs` in llm-train/tests/train/merge.rs): model A is
`llama` with the bpe512 tokenizer; model B is `llama_seed1` with two added tokens and two more
embedding and head rows of exact values ((r·64 + j) mod 17 − 8) / 64.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "fixtures"
OUT = FIX / "merge_ref"
KEEP = [
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.1.mlp.down_proj.weight",
    "model.layers.1.input_layernorm.weight",
    "model.norm.weight",
]
ADDED = ["<|tool|>", "<|think|>"]


def extra_rows(rows, d, start):
    r = torch.arange(start, start + rows).reshape(-1, 1)
    j = torch.arange(d).reshape(1, -1)
    return (((r * 64 + j) % 17) - 8).float() / 64


def union_inputs(root: Path):
    """Writes union_a and union_b under root (see the module docstring)."""
    tok_dir = FIX / "b_tokenizer" / "bytelevel_bpe512"
    a, b = root / "union_a", root / "union_b"
    for dst, src in ((a, "llama"), (b, "llama_seed1")):
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIX / "a_tiny_llama" / src / "config.json", dst / "config.json")
        shutil.copy(FIX / "a_tiny_llama" / src / "model.safetensors", dst / "model.safetensors")
        shutil.copy(tok_dir / "tokenizer.json", dst / "tokenizer.json")
        shutil.copy(tok_dir / "tokenizer_config.json", dst / "tokenizer_config.json")
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(b / "tokenizer.json"))
    tok.add_tokens(ADDED)
    tok.save(str(b / "tokenizer.json"))
    w = load_file(str(b / "model.safetensors"))
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        t = w[name]
        w[name] = torch.cat([t, extra_rows(len(ADDED), t.shape[1], t.shape[0])]).contiguous()
    save_file(w, str(b / "model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((b / "config.json").read_text())
    cfg["vocab_size"] = 512 + len(ADDED)
    (b / "config.json").write_text(json.dumps(cfg, indent=2))
    return a, b


def moe_inputs(root: Path):
    """moe_a / moe_b: `llama` and `llama_seed1` with the bpe512 tokenizer (mergekit-moe needs one)."""
    tok_dir = FIX / "b_tokenizer" / "bytelevel_bpe512"
    for dst, src in (("moe_a", "llama"), ("moe_b", "llama_seed1")):
        d = root / dst
        d.mkdir(parents=True, exist_ok=True)
        for f in ("config.json", "model.safetensors"):
            shutil.copy(FIX / "a_tiny_llama" / src / f, d / f)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(tok_dir / f, d / f)


MOE_PROMPTS = ("the cat sat on the mat", "one two three four five", "the dog ran")


def moe_yaml(mode: str) -> str:
    a, b, c = MOE_PROMPTS
    return f"""base_model: <tmp>/moe_a
gate_mode: {mode}
dtype: float32
experts_per_token: 1
experts:
  - source_model: <tmp>/moe_a
    positive_prompts: ["{a}"]
  - source_model: <tmp>/moe_b
    positive_prompts: ["{b}"]
    negative_prompts: ["{c}"]
"""


def moe_cases(tmp: Path, venv_bin: Path, tensors: dict, golden: dict):
    """mergekit-moe with cheap_embed and hidden gates: router weights, and for cheap_embed
    transformers' logits of its output (whose tensors ours equal up to f32 rounding)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    moe_inputs(tmp)
    for mode in ("cheap_embed", "hidden"):
        yaml = moe_yaml(mode)
        cfg = tmp / f"moe_{mode}.yml"
        cfg.write_text(yaml.replace("<tmp>", str(tmp)))
        out = tmp / f"out_moe_{mode}"
        cmd = [str(venv_bin / "mergekit-moe"), str(cfg), str(out), "--random-seed", "0", "--quiet", "--device", "cpu"]
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if r.returncode != 0:
            sys.exit(f"moe {mode}: mergekit-moe failed:\n{r.stderr[-3000:]}")
        w = load_file(str(out / "model.safetensors"))
        for layer in range(2):
            tensors[f"moe_{mode}.layer{layer}.gate"] = w[f"model.layers.{layer}.mlp.gate.weight"].float().contiguous()
        model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
        tok = AutoTokenizer.from_pretrained(str(tmp / "moe_a"))
        ids = tok((tok.bos_token or "") + MOE_PROMPTS[0], add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            tensors[f"moe_{mode}.logits"] = model(ids).logits[0].float().contiguous()
        golden["moe"][mode] = {"yaml": yaml, "ids": ids[0].tolist(), "tensors": sorted(w.keys())[:8],
                               "config": {k: json.loads((out / "config.json").read_text()).get(k)
                                          for k in ("model_type", "num_local_experts", "num_experts_per_tok")}}
        print(f"moe {mode}: {len(w)} tensors")


def cases(tmp: Path):
    A = "<fixtures>/a_tiny_llama/llama"
    B = "<fixtures>/a_tiny_llama/llama_seed1"
    C = "<fixtures>/a_tiny_llama/llama_seed2_base"
    UA, UB = "<tmp>/union_a", "<tmp>/union_b"
    return {
        "linear": f"""merge_method: linear
models:
  - model: {A}
    parameters:
      weight: [{{filter: mlp, value: 0.2}}, {{value: 0.7}}]
  - model: {B}
    parameters: {{weight: 0.3}}
dtype: float32
""",
        "linear_unnormalized": f"""merge_method: linear
models:
  - model: {A}
    parameters: {{weight: 0.5}}
  - model: {B}
    parameters: {{weight: 0.25}}
parameters: {{normalize: false}}
dtype: float32
""",
        "task_arithmetic": f"""merge_method: task_arithmetic
base_model: {C}
models:
  - model: {A}
    parameters: {{weight: 1.0}}
  - model: {B}
    parameters: {{weight: 0.5}}
parameters: {{lambda: 0.8}}
dtype: float32
""",
        "ties_gradient": f"""merge_method: ties
base_model: {C}
models:
  - model: {A}
    parameters: {{weight: 1.0, density: [0.3, 0.9]}}
  - model: {B}
    parameters: {{weight: 0.5, density: 0.6}}
parameters: {{normalize: false, lambda: 1.2}}
dtype: float32
""",
        "breadcrumbs": f"""merge_method: breadcrumbs
base_model: {C}
models:
  - model: {A}
    parameters: {{weight: 1.0, density: 0.6, gamma: 0.05}}
  - model: {B}
    parameters: {{weight: 0.5, density: 0.8}}
dtype: float32
""",
        "breadcrumbs_ties": f"""merge_method: breadcrumbs_ties
base_model: {C}
models:
  - model: {A}
    parameters: {{weight: 1.0, density: 0.6, gamma: 0.05}}
  - model: {B}
    parameters: {{weight: 0.5, density: 0.8, gamma: 0.02}}
parameters: {{normalize: true}}
dtype: float32
""",
        "slerp_gradient": f"""merge_method: slerp
base_model: {A}
slices:
  - sources:
      - model: {A}
        layer_range: [0, 2]
      - model: {B}
        layer_range: [0, 2]
parameters:
  t:
    - filter: self_attn
      value: [0.2, 0.9]
    - filter: mlp
      value: [0.7, 0.1]
    - value: 0.4
dtype: float32
""",
        "passthrough": f"""merge_method: passthrough
slices:
  - sources:
      - model: {A}
        layer_range: [0, 2]
  - sources:
      - model: {B}
        layer_range: [1, 2]
    parameters:
      scale: [{{filter: o_proj, value: 0.5}}, {{value: 1.0}}]
dtype: float32
""",
        "della_linear_single": f"""merge_method: della_linear
base_model: {C}
models:
  - model: {A}
    parameters: {{weight: 1.0, density: 0.5, epsilon: 0.2}}
dtype: float32
""",
        "union_linear": f"""merge_method: linear
base_model: {UA}
models:
  - model: {UA}
    parameters: {{weight: 0.6}}
  - model: {UB}
    parameters: {{weight: 0.4}}
tokenizer_source: union
dtype: float32
""",
        "base_vocab_linear": f"""merge_method: linear
base_model: {UA}
models:
  - model: {UA}
    parameters: {{weight: 0.6}}
  - model: {UB}
    parameters: {{weight: 0.4}}
tokenizer_source: base
dtype: float32
""",
    }


def main():
    venv_bin = Path(sys.executable).parent
    OUT.mkdir(parents=True, exist_ok=True)
    tensors, golden = {}, {"mergekit": None, "cases": {}, "moe": {}}
    import importlib.metadata as md
    golden["mergekit"] = md.version("mergekit")
    golden["torch"] = torch.__version__
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        union_inputs(tmp)
        for name, yaml in cases(tmp).items():
            cfg = tmp / f"{name}.yml"
            cfg.write_text(yaml.replace("<fixtures>", str(FIX)).replace("<tmp>", str(tmp)))
            out = tmp / f"out_{name}"
            cmd = [str(venv_bin / "mergekit-yaml"), str(cfg), str(out), "--random-seed", "0", "--quiet",
                   "--no-write-model-card", "--lazy-unpickle"]
            r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            if r.returncode != 0:
                sys.exit(f"{name}: mergekit failed:\n{r.stderr[-3000:]}")
            w = load_file(str(out / "model.safetensors"))
            keep = list(KEEP)
            if name.startswith(("union", "base_vocab")):
                # The last 16 rows hold the tokens only model B has (and their neighbours).
                for k in ("model.embed_tokens.weight", "lm_head.weight"):
                    tensors[f"{name}.{k}.tail16"] = w[k][-16:].float().contiguous()
            if name == "passthrough":
                keep += ["model.layers.2.self_attn.o_proj.weight", "model.layers.2.mlp.up_proj.weight"]
            for k in keep:
                tensors[f"{name}.{k}"] = w[k].float().contiguous()
            cfg_out = json.loads((out / "config.json").read_text())
            info = {"yaml": yaml, "num_hidden_layers": cfg_out["num_hidden_layers"], "vocab_size": cfg_out["vocab_size"],
                    "tensors": sorted(w.keys())}
            tok = out / "tokenizer.json"
            if tok.exists():
                vocab = json.loads(tok.read_text())
                info["added_tokens"] = {a["content"]: a["id"] for a in vocab.get("added_tokens", [])}
            golden["cases"][name] = info
            print(f"{name}: {len(w)} tensors, {cfg_out['num_hidden_layers']} layers")
        moe_cases(tmp, venv_bin, tensors, golden)
    save_file(tensors, str(OUT / "mergekit.safetensors"), metadata={"format": "pt"})
    (OUT / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
