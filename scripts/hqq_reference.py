"""Runs hqq itself (PyPI hqq, pinned) and writes what llm-quant's HQQ tests compare against,
under fixtures/hqq_ref:

- cases.safetensors + golden.json: float32 weight matrices (fixed seeds) quantized by
  hqq.core.quantize.Quantizer.quantize with exactly the weight_quant_params HQQLinear gets from
  hqq's BaseQuantizeConfig (optimize=True, the default proximal optimizer, axis=1 unless the case
  says otherwise, round_zero only for 4 bits), device "cpu" (so the optimizer runs in float32).
  Tensors, `CASE.` prefixed: `W_q` (the unpacked integer codes, uint8, reshaped to W's [out, in]
  shape, i.e. in W's element order), `W_q_packed` (as hqq stores it), `scale` and `zero` (as hqq
  stores them: float32 [out*in/group, 1] for axis=1, [1, out*in/group] for axis=0; the scale is
  already inverted, i.e. W ~ (q - zero) * scale), `W_deq` (hqq's Quantizer.dequantize with
  compute_dtype float32). Inputs are `W.<name>`; each case in golden.json says which it used,
  plus the optimizer's error trace (one number per proximal step actually run).
- layer.safetensors: HQQLinear(...).state_dict() (hqq's safetensors encoding, the per-layer part of
  what transformers' save_pretrained writes) of a 4-bit g64 layer with bias, keys as a checkpoint
  has them under `model.layers.0.mlp.down_proj.`; layer_io.safetensors: that layer's W, bias, an
  input x, hqq's forward y and its dequantized weight.
- tiny/: the repo's tiny Llama quantized by transformers (4.x, whose HqqHfQuantizer still
  quantizes on load; 5.x's does not) with HqqConfig(nbits=4, group_size=64), saved with
  save_pretrained, plus logits.safetensors (logits of the quantized and the f32 model on the
  first golden prompt).

Run through scripts/hqq-reference.sh, which makes the virtualenv.
"""
import json
import struct
import sys
import tempfile
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file, load_file

import hqq
import hqq.core.optimize as hqq_opt
from hqq.core.quantize import Quantizer, HQQLinear, BaseQuantizeConfig, HQQBackend

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "fixtures"
OUT = FIX / "hqq_ref"
TINY_SRC = FIX / "a_tiny_llama" / "llama"

torch.set_num_threads(1)  # reductions (the zero's mean) in one fixed order

# -- record the proximal optimizer's steps (the default optimizer is the legacy one) ----------
TRACE = []
_step = hqq_opt.optimize_weights_proximal_legacy_step


def _traced_step(W_f, scale, zero, min_max, beta, lp_norm, axis):
    W_r, W_q, zero_new, scale = _step(W_f, scale, zero, min_max, beta, lp_norm, axis)
    TRACE.append(float(torch.abs(W_f - W_r).mean().float()))
    return W_r, W_q, zero_new, scale


hqq_opt.optimize_weights_proximal_legacy_step = _traced_step
assert Quantizer.optimize_weights is hqq_opt.optimize_weights_proximal_legacy


def inputs():
    g = torch.Generator().manual_seed(1234)
    normal = torch.randn(32, 256, generator=g) * 0.02
    g = torch.Generator().manual_seed(5678)
    outlier = torch.randn(48, 192, generator=g) * 0.05
    # a few large outliers (both signs), some in the same group
    for (r, c, v) in [(0, 5, 1.5), (0, 17, -2.0), (7, 100, 3.0), (23, 191, -0.9), (40, 64, 0.75),
                      (47, 0, -4.0)]:
        outlier[r, c] = v
    g = torch.Generator().manual_seed(91)
    flat = torch.randn(16, 64, generator=g) * 0.1
    flat[3, :] = 0.25          # a constant row: max - min = 0 <= 1e-4, scale falls back to 1
    flat[5, :32] = -0.125      # a constant first half (a constant group at g32)
    flat[9, 32:] = 0.0
    flat[11, :] = 0.01 + torch.arange(64) * 1e-6  # range 6.3e-5 <= 1e-4: also scale = 1
    return {"normal": normal, "outlier": outlier, "flat": flat}


# (case name, input, nbits, group_size, axis, round_zero override or None)
CASES = [
    ("n4_g64", "normal", 4, 64, 1, None),
    ("n4_g128", "normal", 4, 128, 1, None),
    ("n4_g64_noround", "normal", 4, 64, 1, False),
    ("n3_g64", "normal", 3, 64, 1, None),
    ("n2_g32", "normal", 2, 32, 1, None),
    ("n1_g32", "normal", 1, 32, 1, None),
    ("n8_g128", "normal", 8, 128, 1, None),
    ("n4_g64_axis0", "normal", 4, 64, 0, None),
    ("n3_g32_axis0", "outlier", 3, 32, 0, None),
    ("out_n4_g64", "outlier", 4, 64, 1, None),
    ("out_n3_g32", "outlier", 3, 32, 1, None),
    ("out_n2_g64", "outlier", 2, 64, 1, None),
    ("flat_n4_g32", "flat", 4, 32, 1, None),
    ("flat_n2_g32", "flat", 2, 32, 1, None),
]


def wqp(nbits, group_size, axis, round_zero):
    cfg = BaseQuantizeConfig(nbits=nbits, group_size=group_size, axis=axis)
    p = dict(cfg["weight_quant_params"])
    if round_zero is not None:
        p["round_zero"] = round_zero
    return p


def make_cases():
    tensors, golden = {}, []
    ins = inputs()
    for name, W in ins.items():
        tensors[f"W.{name}"] = W.contiguous()
    for (case, src, nbits, gs, axis, rz) in CASES:
        W = ins[src]
        params = wqp(nbits, gs, axis, rz)
        TRACE.clear()
        # exactly the call HQQLinear.quantize makes (device / compute_dtype from the layer)
        W_q, meta = Quantizer.quantize(W, device="cpu", compute_dtype=torch.float32, **params)
        trace = list(TRACE)
        meta["compute_dtype"] = torch.float32
        W_deq = Quantizer.dequantize(W_q, meta)
        codes = Quantizer.unpack[meta["packing"]](W_q, dtype=torch.uint8)
        if nbits == 3:  # 3-bit packing pads the rows to a multiple of 10
            rows = gs if axis == 0 else W.numel() // gs
            assert torch.all(codes[rows:] == 0)
            codes = codes[:rows]
        codes = codes.reshape(W.shape).contiguous()
        scale, zero = meta["scale"], meta["zero"]
        # the dequantize formula, recomputed from the codes
        z = zero.reshape(-1, 1) if axis == 1 else zero.reshape(1, -1)
        s = scale.reshape(-1, 1) if axis == 1 else scale.reshape(1, -1)
        cg = codes.reshape(-1, gs) if axis == 1 else codes.reshape(gs, -1)
        again = ((cg.float() - z) * s).reshape(W.shape)
        assert torch.equal(again, W_deq), case
        tensors[f"{case}.W_q"] = codes.clone()
        tensors[f"{case}.W_q_packed"] = W_q.clone().contiguous()
        tensors[f"{case}.scale"] = scale.contiguous()
        tensors[f"{case}.zero"] = zero.contiguous()
        tensors[f"{case}.W_deq"] = W_deq.contiguous()
        golden.append({
            "case": case,
            "input": f"W.{src}",
            "shape": list(W.shape),
            "weight_quant_params": params,
            "packing": meta["packing"],
            "W_q_packed": {"dtype": str(W_q.dtype).replace("torch.", ""), "shape": list(W_q.shape)},
            "scale": {"dtype": str(scale.dtype).replace("torch.", ""), "shape": list(scale.shape)},
            "zero": {"dtype": str(zero.dtype).replace("torch.", ""), "shape": list(zero.shape)},
            "mean_abs_err": float((W - W_deq).abs().mean()),
            "max_abs_err": float((W - W_deq).abs().max()),
            "optimizer_steps": len(trace),
            "optimizer_error_trace": trace,
            "zero_is_integer": bool(torch.all(zero == torch.round(zero))),
        })
        print(f"{case:16s} packed {tuple(W_q.shape)} {W_q.dtype} scale {tuple(scale.shape)} "
              f"steps {len(trace)} mean|W-Wdeq| {golden[-1]['mean_abs_err']:.3e}")
    return tensors, golden


def make_layer():
    g = torch.Generator().manual_seed(4321)
    lin = torch.nn.Linear(128, 64, bias=True)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(64, 128, generator=g) * 0.05)
        lin.bias.copy_(torch.randn(64, generator=g) * 0.1)
    W, b = lin.weight.detach().clone(), lin.bias.detach().clone()
    cfg = BaseQuantizeConfig(nbits=4, group_size=64)  # axis=1, round_zero=True
    layer = HQQLinear(lin, quant_config=cfg, compute_dtype=torch.float32, device="cpu")
    HQQLinear.set_backend(HQQBackend.PYTORCH)
    x = torch.randn(3, 128, generator=g)
    with torch.no_grad():
        y = layer(x)
        deq = layer.dequantize()
    prefix = "model.layers.0.mlp.down_proj."
    sd = layer.state_dict()
    state = {prefix + k: v.detach().contiguous() for k, v in sd.items()}
    save_file(state, str(OUT / "layer.safetensors"), metadata={"format": "pt"})
    save_file({"W": W, "bias": b, "x": x, "y": y.detach(), "W_deq": deq.detach()},
              str(OUT / "layer_io.safetensors"))
    # reload through hqq to prove the layout round-trips
    back = HQQLinear(None, quant_config=None, compute_dtype=torch.float32, device="cpu",
                     initialize=False)
    loaded = load_file(str(OUT / "layer.safetensors"))
    back.load_state_dict({k[len(prefix):]: v for k, v in loaded.items()})
    with torch.no_grad():
        assert torch.equal(back(x), y)
    keys = {}
    for k, v in sorted(state.items()):
        keys[k] = {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
        if v.dtype == torch.uint8 and v.dim() == 1 and k.split(".")[-1] in (
                "packing", "unpack_view_dtype", "compute_dtype"):
            keys[k]["decoded"] = "".join(chr(int(c)) for c in v)
        elif v.dim() == 0 or (k.endswith(".shape")):
            keys[k]["value"] = v.tolist()
    return {"prefix": prefix, "quant_config": cfg, "keys": keys,
            "mean_abs_err": float((W - deq).abs().mean())}


def make_tiny():
    """transformers (4.x) quantizes the tiny Llama on load and saves it. Returns a summary."""
    import transformers
    from transformers import AutoModelForCausalLM, HqqConfig
    tiny = OUT / "tiny"
    if tiny.exists():
        shutil.rmtree(tiny)
    golden = json.loads((TINY_SRC / "golden.json").read_text())
    ids = torch.tensor([golden["prompts"][0]["input_ids"]])
    with tempfile.TemporaryDirectory() as td:
        src = Path(td) / "llama"
        src.mkdir()
        cfg_name = "config_legacy_v4_style.json" if transformers.__version__.startswith("4.") \
            else "config.json"
        shutil.copy(TINY_SRC / cfg_name, src / "config.json")
        shutil.copy(TINY_SRC / "model.safetensors", src / "model.safetensors")
        ref = AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.float32)
        ref.eval()
        with torch.no_grad():
            ref_logits = ref(ids).logits
        qcfg = HqqConfig(nbits=4, group_size=64)
        model = AutoModelForCausalLM.from_pretrained(
            str(src), dtype=torch.float32, device_map="cpu", quantization_config=qcfg)
        model.eval()
        with torch.no_grad():
            q_logits = model(ids).logits
        model.save_pretrained(str(tiny))
    # logits of the reloaded checkpoint (prequantized path) must match
    model2 = AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32, device_map="cpu")
    with torch.no_grad():
        q2_logits = model2(ids).logits
    assert torch.equal(q_logits, q2_logits), float((q_logits - q2_logits).abs().max())
    # and a plain float forward with every HQQLinear replaced by its dequantized weight
    deq_w = {}
    for name, mod in model.named_modules():
        if isinstance(mod, HQQLinear):
            deq_w[name + ".weight"] = mod.dequantize().detach().clone()
    sd = {k: v.clone() for k, v in ref.state_dict().items()}
    sd.update(deq_w)
    ref.load_state_dict(sd)
    with torch.no_grad():
        deq_logits = ref(ids).logits
    save_file({"input_ids": ids, "logits_hqq": q_logits.contiguous(),
               "logits_f32": ref_logits.contiguous(), "logits_dequantized_f32": deq_logits.contiguous()},
              str(OUT / "tiny_logits.safetensors"))
    for p in tiny.iterdir():
        if p.name not in ("config.json", "model.safetensors", "generation_config.json"):
            p.unlink()
    with open(tiny / "model.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return {
        "transformers_version": transformers.__version__,
        "source": "fixtures/a_tiny_llama/llama (" + cfg_name + ")",
        "HqqConfig": {"nbits": 4, "group_size": 64},
        "prompt_input_ids": ids[0].tolist(),
        "max_abs_logits_hqq_vs_f32": float((q_logits - ref_logits).abs().max()),
        "max_abs_logits_hqq_vs_dequantized_forward": float((q_logits - deq_logits).abs().max()),
        "quantization_config": json.loads((tiny / "config.json").read_text()).get("quantization_config"),
        "safetensors_header": {k: v if k == "__metadata__" else {"dtype": v["dtype"], "shape": v["shape"]}
                               for k, v in header.items()},
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tensors, cases = make_cases()
    save_file(tensors, str(OUT / "cases.safetensors"), metadata={"format": "pt"})
    golden = {
        "hqq_version": hqq.__version__,
        "torch_version": torch.__version__,
        "device": "cpu",
        "torch_num_threads": 1,
        "optimizer": "optimize_weights_proximal_legacy (hqq default): lp_norm 0.7, beta 10, "
                     "kappa 1.01 (unused), iters 20, float32 on cpu",
        "cases": cases,
    }
    golden["layer"] = make_layer()
    if "--no-tiny" not in sys.argv:
        try:
            golden["tiny"] = make_tiny()
        except ImportError as e:
            golden["tiny"] = {"skipped": f"transformers not importable: {e}"}
    (OUT / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
