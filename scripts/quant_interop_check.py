"""Loads AWQ / HQQ checkpoints written by llm-quant with the reference Python tools themselves and
checks that they load cleanly and compute what our runtime computes.

Run through scripts/quant-interop-check.sh (it makes the virtualenv, see awq-reference.sh and
hqq-reference.sh):

    scripts/quant-interop-check.sh --awq DIR --hqq DIR --ids 1,328,384,353,219

Each tool runs in its own interpreter (the parent re-runs this file with `--child awq|hqq`):

AWQ (AutoAWQ 0.2.9 on transformers 5.x): AutoAWQForCausalLM.from_quantized(DIR) itself, i.e. the
    model skeleton from config.json, nn.Linear replaced by WQLinear_GEMM, weights put in by
    accelerate's load_checkpoint_and_dispatch, everything in fp16 (from_quantized's default
    torch_dtype). Two shims, neither touching the arithmetic: from_quantized forces the IPEX kernels
    (intel_extension_for_pytorch, not installed) whenever get_best_device() is "cpu", so
    awq.models.base sees a device name that is not "cpu" (fuse_layers=False, so nothing else
    reads it); and the Triton path is switched off (awq.modules.linear.gemm.TRITON_AVAILABLE) so
    WQLinear_GEMM.forward takes its plain-PyTorch branch: x.half() @ dequantize_gemm(...) in fp16.
    The checks: every parameter/buffer of the loaded model is off the meta device and equal to the
    file's tensor (cast to the loaded dtype), no file tensor went unused (accelerate only logs
    unused keys and leaves missing ones on meta), every decoder Linear became WQLinear_GEMM. Then
    a fp32 transformers model (same config, quantization_config dropped, load_state_dict strict)
    gets the weights dequantized with awq.utils.packing_utils: dequantize_gemm ((q - z) * s in
    fp16, as the GEMM forward does) and, separately, unpack_awq + reverse_awq_order with the
    product in fp32 ("exact").
HQQ (hqq 0.2.8 on transformers 4.57.3; 5.x cannot load HQQ checkpoints):
    AutoModelForCausalLM.from_pretrained(DIR, dtype=float32, device_map="cpu",
    output_loading_info=True) with HQQLinear's PYTORCH backend. transformers 4.57 builds every
    HQQLinear with compute_dtype = the quantizer's dtype, which is float32 whatever `dtype` says
    (AutoHfQuantizer.from_config gets no dtype), and HQQLinear.cuda() overwrites the checkpoint's
    meta compute_dtype with it: the forward is float32 even for a checkpoint that stores
    compute_dtype float16 and fp16 scale/zero. The checks: loading info (missing, unexpected,
    mismatched keys, error messages; note HqqHfQuantizer.update_missing_keys drops every missing
    key containing "weight", so these are not enough), every decoder Linear became an HQQLinear
    whose W_q/scale/zero equal the file's, every other tensor equals the file's, and the rope
    theta transformers 4.x reads (it knows rope_theta, not 5.x's rope_parameters). Then a fp32
    transformers model with the weights from HQQLinear.dequantize().

Per tool it prints the max |logits| difference between the tool's forward and (a) the fp32 model
with the tool's own dequantized weights, (b) our runtime's top-5 logits at every position
(`logits --model DIR --ids ... --top 5`, path from $LOGITS_BIN or target/release/examples/logits;
skipped with a message if the binary is absent), and whether the argmax agrees everywhere.

Tolerances for (b), on the top-5 logits (override with --tol-awq / --tol-hqq):
- AWQ max(0.05, 2% of the largest logit): AutoAWQ computes everything in fp16 (activations rounded to 2^-11 relative at every
  op, fp16 embeddings, norms' weights and lm_head) while our runtime computes in f32. On
  AutoAWQ's own checkpoint of this same tiny Llama (fixtures/awq_ref/golden.json,
  model.max_abs_diff.awq_gemm_cpu_vs_exact) that fp16 forward is 0.0126 away from the fp32 forward
  with exact weights; 0.05 is 4x that, and still far below a code, scale or zero-point error
  (one code step moves a weight by a whole scale; exact_vs_fp32_original is 2.47).
- HQQ 1e-3 when the loaded HQQLinear compute dtype is float32 (see above: both sides are f32 with
  the same dequantized weights, the only difference is summation order, ~1e-5 at these logit
  sizes; the reference fixture's HQQ forward vs its dequantized f32 forward is exactly 0), 0.05 if
  it turns out to be fp16.
Exit status: nonzero if a loader raises, reports missing/unexpected/mismatched keys, leaves a
weight uninitialised or different from the file, the rope theta differs, (b) exceeds the
tolerance, or the argmax disagrees with ours. (a) is reported, with its own tolerance check
(same numbers), since it isolates the tool's forward from its loader.
"""
import argparse
import json
import os
import subprocess
import sys
import traceback
import types
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BIN = REPO / "target" / "release" / "examples" / "logits"
DEFAULT_IDS = "1,328,384,353,219"  # fixtures/a_tiny_llama/llama/golden.json prompt 0
# "awq" is a floor: the tolerance is max(0.05, 2% of the largest logit), since AutoAWQ's fp16
# forward drifts with depth (SmolLM2, 30 layers: 0.27 from its own fp32 dequantized model at
# logits up to 26.5, 1%). "exact": ours against the tool's fp32 model with the tool's own
# dequantization of the file: both f32 with the same weights (SmolLM2 AWQ: 4.1e-5).
TOL = {"awq": 0.05, "awq_rel": 0.02, "hqq_f32": 1e-3, "hqq_f16": 0.05, "exact": 1e-3}


# ----------------------------------------------------------------------------- shared helpers
def parse_ids(s):
    return [int(x) for x in s.replace(" ", ",").split(",") if x]


def our_top_logits(model_dir, ids, top=5):
    """Runs our `logits` example; returns (rows, message). rows is None when it could not run."""
    exe = os.environ.get("LOGITS_BIN") or str(DEFAULT_BIN)
    if not Path(exe).is_file() or not os.access(exe, os.X_OK):
        return None, f"SKIPPED: our logits binary not found at {exe} (build it with `cargo build " \
                     f"--release --example logits` or set LOGITS_BIN)"
    cmd = [exe, "--model", str(model_dir), "--ids", ",".join(map(str, ids)), "--top", str(top)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except Exception as e:  # noqa: BLE001
        return None, f"ERROR: running {' '.join(cmd)}: {e}"
    if p.returncode != 0:
        return None, f"ERROR: {' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-2000:]}"
    try:
        rows = json.loads(p.stdout)
    except json.JSONDecodeError as e:
        return None, f"ERROR: could not parse the logits JSON ({e}): {p.stdout[:500]}"
    return rows, " ".join(cmd)


def compare_with_ours(logits, ids, rows):
    """logits: [T, V] float32 tensor of the tool's forward; rows: our top-k JSON."""
    import torch
    assert len(rows) == len(ids), f"our runtime returned {len(rows)} positions for {len(ids)} ids"
    max_diff, argmax_ok, details = 0.0, True, []
    for r in rows:
        pos = r["position"]
        assert r["id"] == ids[pos], (r, ids)
        ours = [(int(i), float(v)) for i, v in r["top"]]
        diffs = [abs(float(logits[pos, i]) - v) for i, v in ours]
        max_diff = max(max_diff, max(diffs))
        tool_top = torch.topk(logits[pos], len(ours))
        tool_ids = tool_top.indices.tolist()
        ok = tool_ids[0] == ours[0][0]
        if not ok:
            # a near tie is not a disagreement of substance, but it is still reported as one
            gap = float(logits[pos, ours[0][0]] - logits[pos, tool_ids[0]])
            details.append(f"pos {pos}: argmax tool {tool_ids[0]} vs ours {ours[0][0]} "
                           f"(tool logit gap {gap:+.4g})")
        argmax_ok &= ok
        if set(tool_ids) != {i for i, _ in ours}:
            details.append(f"pos {pos}: top-{len(ours)} sets differ: tool {tool_ids} ours "
                           f"{[i for i, _ in ours]}")
    return max_diff, argmax_ok, details


def fmt(x):
    return "n/a" if x is None else f"{x:.3e}"


def report(tool, res, tol):
    """Prints the verdict lines; returns the list of failures."""
    fails = list(res["load_problems"])
    print(f"\n=== {tool.upper()} summary ({res['dir']})")
    print(f"  loader: {res['loader']}")
    print(f"  forward dtype: {res['forward_dtype']}; token ids {res['ids']}")
    print(f"  load problems: {res['load_problems'] or 'none'}")
    for w in res.get("warnings", []):
        print(f"  warning: {w}")
    for name, v in res["vs_dequant"].items():
        flag = "ok" if v["max_abs"] <= tol else f"EXCEEDS tol {tol:g}"
        print(f"  (a) max|tool forward - fp32 model with {name}| = {v['max_abs']:.3e}  "
              f"argmax agrees at every position: {v['argmax_agree']}  [{flag}]")
        if v["max_abs"] > tol:
            fails.append(f"(a) {name}: {v['max_abs']:.3e} > {tol:g}")
    o = res["vs_ours"]
    if o.get("skipped"):
        print(f"  (b) ours: {o['skipped']}")
        if o["skipped"].startswith("ERROR"):
            fails.append("(b) our logits binary failed")
    else:
        flag = "ok" if o["max_abs_top5"] <= tol else f"EXCEEDS tol {tol:g}"
        print(f"  (b) max|tool logit - our logit| over our top-5 at every position = "
              f"{o['max_abs_top5']:.3e}  [{flag}]")
        print(f"      argmax agrees with ours at every position: {o['argmax_agree']}")
        exact = o.get("max_abs_top5_vs_dequant")
        flag = "ok" if exact is None or exact <= TOL["exact"] else f"EXCEEDS tol {TOL['exact']:g}"
        print(f"      ours vs the tool's fp32 model with its own dequantization of the file, same top-5: "
              f"{fmt(exact)}  [{flag}]")
        if exact is not None and exact > TOL["exact"]:
            fails.append(f"(b) ours vs the tool's fp32 dequantized model {exact:.3e} > {TOL['exact']:g}")
        for d in o["details"]:
            print(f"      {d}")
        if o["max_abs_top5"] > tol:
            fails.append(f"(b) {o['max_abs_top5']:.3e} > {tol:g}")
        if not o["argmax_agree"]:
            fails.append("(b) argmax differs from ours")
    print(f"  verdict: {'PASS' if not fails else 'FAIL: ' + '; '.join(fails)}")
    return fails


def tensors_in_file(d):
    from safetensors.torch import load_file
    files = sorted(Path(d).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {d}")
    sd = {}
    for f in files:
        sd.update(load_file(str(f)))
    return sd


def argmax_agree(a, b):
    return bool((a.argmax(-1) == b.argmax(-1)).all())


def ours_section(d, ids, logits, ref_logits):
    rows, msg = our_top_logits(d, ids)
    if rows is None:
        print(f"[ours] {msg}")
        return {"skipped": msg}
    print(f"[ours] {msg}")
    md, ok, details = compare_with_ours(logits, ids, rows)
    md_ref, _, _ = compare_with_ours(ref_logits, ids, rows)
    return {"max_abs_top5": md, "argmax_agree": ok, "details": details,
            "max_abs_top5_vs_dequant": md_ref, "rows": rows}


# ----------------------------------------------------------------------------- AWQ
def run_awq(d, ids):
    import torch
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    sys.modules.setdefault("datasets", types.SimpleNamespace(load_dataset=None))
    import logging
    import transformers
    import awq
    import awq.models.base as awq_base
    import awq.modules.linear.gemm as awq_gemm
    from awq import AutoAWQForCausalLM
    from awq.modules.linear.gemm import WQLinear_GEMM
    from awq.utils.packing_utils import dequantize_gemm, reverse_awq_order, unpack_awq
    from transformers import AutoConfig, AutoModelForCausalLM

    print(f"[awq] autoawq {awq.__version__}, transformers {transformers.__version__}, torch {torch.__version__}")
    problems, warns = [], []
    cfg_json = json.loads((Path(d) / "config.json").read_text())
    qc = cfg_json.get("quantization_config", {})
    print(f"[awq] quantization_config: {qc}")
    bits, gs = int(qc.get("bits", 4)), int(qc.get("group_size", 128))

    # accelerate reports unused checkpoint keys only through a logger warning: capture it
    captured = []

    class Grab(logging.Handler):
        def emit(self, rec):
            captured.append(rec.getMessage())

    for name in ("accelerate", "accelerate.utils.modeling", "transformers"):
        logging.getLogger(name).addHandler(Grab(level=logging.WARNING))

    awq_base.get_best_device = lambda: "cpu-without-ipex"  # see the module docstring
    awq_gemm.TRITON_AVAILABLE = False
    loader = ("AutoAWQForCausalLM.from_quantized(DIR, fuse_layers=False, device_map={'': 'cpu'}, "
              "torch_dtype=float16) -> WQLinear_GEMM (CPU branch: fp16 dequantize_gemm + matmul)")
    awq_model = AutoAWQForCausalLM.from_quantized(str(d), fuse_layers=False, device_map={"": "cpu"},
                                                  torch_dtype=torch.float16)
    model = awq_model.model.eval()
    for m in captured:
        if "not used" in m or "unexpected" in m.lower() or "missing" in m.lower():
            problems.append(f"loader log: {m[:600]}")

    # missing / unexpected / altered tensors
    file_sd = tensors_in_file(d)
    model_sd = model.state_dict()
    meta = [k for k, v in model_sd.items() if v.device.type == "meta"]
    if meta:
        problems.append(f"left uninitialised (meta) by the loader: {meta}")
    unexpected = sorted(set(file_sd) - set(model_sd))
    missing = sorted(set(model_sd) - set(file_sd))
    if unexpected:
        problems.append(f"unexpected keys (in the file, not in the model): {unexpected}")
    if getattr(model.config, "tie_word_embeddings", False):
        missing = [k for k in missing if k != "lm_head.weight"]  # a tied head is the embedding
    if missing:
        problems.append(f"missing keys (model tensors not in the file): {missing}")
    differ = []
    for k in sorted(set(file_sd) & set(model_sd)):
        a, b = model_sd[k], file_sd[k]
        if a.device.type == "meta":
            continue
        if tuple(a.shape) != tuple(b.shape) or not torch.equal(a.cpu(), b.to(a.dtype)):
            differ.append(f"{k}: model {a.dtype}{tuple(a.shape)} file {b.dtype}{tuple(b.shape)}")
    if differ:
        problems.append(f"tensors that differ from the file after loading: {differ}")
    wq = [n for n, m in model.named_modules() if isinstance(m, WQLinear_GEMM)]
    plain = [n for n, m in model.model.layers.named_modules() if isinstance(m, torch.nn.Linear)]
    if plain:
        problems.append(f"decoder Linear layers not converted to WQLinear_GEMM: {plain}")
    print(f"[awq] {len(wq)} WQLinear_GEMM layers; {len(file_sd)} file tensors, "
          f"{len(model_sd)} model tensors, all equal to the file: {not differ and not meta}")
    for n in wq[:1]:
        m = model.get_submodule(n)
        print(f"[awq]   e.g. {n}: in {m.in_features} out {m.out_features} w_bit {m.w_bit} "
              f"group {m.group_size}; qweight {tuple(m.qweight.shape)} qzeros {tuple(m.qzeros.shape)} "
              f"scales {m.scales.dtype}{tuple(m.scales.shape)}")

    x = torch.tensor([ids])
    with torch.no_grad():
        logits = model(x).logits[0].float()
    fwd_dtype = str(next(model.parameters()).dtype).replace("torch.", "")

    # (a) fp32 transformers model with AutoAWQ's own dequantization
    cfg = AutoConfig.from_pretrained(str(d))
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    vs = {}
    for tag in ("dequantize_gemm (fp16 product)", "unpack_awq+reverse_awq_order, fp32 product"):
        ref = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
        sd = {}
        for k, v in file_sd.items():
            if k.endswith(".qweight"):
                p = k[: -len(".qweight")]
                qw, qz, s = v, file_sd[p + ".qzeros"], file_sd[p + ".scales"]
                if tag.startswith("dequantize_gemm"):
                    wt = dequantize_gemm(qw, qz, s, bits, gs).float()
                else:
                    iw, iz = unpack_awq(qw, qz, bits)
                    iw, iz = reverse_awq_order(iw, iz, bits)
                    mask = (1 << bits) - 1
                    iw, iz = torch.bitwise_and(iw, mask).float(), torch.bitwise_and(iz, mask).float()
                    n = iw.shape[0]  # a shorter last group (ceil(d_in/g) groups) is cut here
                    wt = (iw - iz.repeat_interleave(gs, 0)[:n]) * s.float().repeat_interleave(gs, 0)[:n]
                sd[p + ".weight"] = wt.t().contiguous()
            elif not (k.endswith(".qzeros") or k.endswith(".scales")):
                sd[k] = v.float()
        res = ref.load_state_dict(sd, strict=False)
        tied = bool(getattr(ref.config, "tie_word_embeddings", False))
        if tied:
            ref.tie_weights()
        missing = [k for k in res.missing_keys if not (tied and k == "lm_head.weight")]
        if missing or res.unexpected_keys:
            problems.append(f"fp32 model ({tag}): missing {missing} unexpected {res.unexpected_keys}")
        with torch.no_grad():
            rl = ref(x).logits[0].float()
        vs[tag] = {"max_abs": float((logits - rl).abs().max()), "argmax_agree": argmax_agree(logits, rl),
                   "logits": rl}
    ref_logits = vs["unpack_awq+reverse_awq_order, fp32 product"]["logits"]
    ours = ours_section(d, ids, logits, ref_logits)
    return {"dir": str(d), "ids": ids, "loader": loader, "forward_dtype": fwd_dtype,
            "load_problems": problems, "warnings": warns,
            "vs_dequant": {k: {kk: vv for kk, vv in v.items() if kk != "logits"} for k, v in vs.items()},
            "vs_ours": {k: v for k, v in ours.items() if k != "rows"},
            "max_abs_logit": float(logits.abs().max())}


# ----------------------------------------------------------------------------- HQQ
def run_hqq(d, ids):
    import torch
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    import hqq
    import transformers
    from hqq.core.quantize import HQQBackend, HQQLinear
    from transformers import AutoConfig, AutoModelForCausalLM

    print(f"[hqq] hqq {hqq.__version__}, transformers {transformers.__version__}, torch {torch.__version__}")
    problems, warns = [], []
    if not transformers.__version__.startswith("4."):
        problems.append(f"transformers {transformers.__version__} is not 4.x: put hqq-tf4-site first on PYTHONPATH")
    HQQLinear.set_backend(HQQBackend.PYTORCH)
    cfg_json = json.loads((Path(d) / "config.json").read_text())
    print(f"[hqq] quantization_config: {cfg_json.get('quantization_config')}")

    # rope: transformers 4.x reads rope_theta / rope_scaling, 5.x writes rope_parameters
    cfg = AutoConfig.from_pretrained(str(d))
    rp = cfg_json.get("rope_parameters") or {}
    file_theta = cfg_json.get("rope_theta", rp.get("rope_theta"))
    print(f"[hqq] rope theta: config.json rope_theta={cfg_json.get('rope_theta')} "
          f"rope_parameters={cfg_json.get('rope_parameters')}; transformers {transformers.__version__} "
          f"uses rope_theta={getattr(cfg, 'rope_theta', None)} rope_scaling={getattr(cfg, 'rope_scaling', None)}")
    if "rope_theta" not in cfg_json and rp:
        msg = ("config.json has rope_parameters but no top-level rope_theta/rope_scaling: transformers "
               f"4.x ignores rope_parameters and uses its default theta {getattr(cfg, 'rope_theta', None)}")
        if file_theta is not None and float(file_theta) != float(getattr(cfg, "rope_theta", -1)):
            problems.append(msg + f" != {file_theta} (wrong positions)")
        else:
            warns.append(msg + " (equal here by coincidence; a model with another theta or rope "
                               "scaling would load wrong)")
        if rp.get("rope_type", "default") != "default" and getattr(cfg, "rope_scaling", None) is None:
            problems.append(f"rope_parameters {rp} has scaling that transformers 4.x does not see")

    loader = ("transformers AutoModelForCausalLM.from_pretrained(DIR, dtype=float32, device_map='cpu', "
              "output_loading_info=True) -> HqqHfQuantizer (pre-quantized) -> HQQLinear, backend PYTORCH")
    model, info = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32, device_map="cpu",
                                                       output_loading_info=True)
    model.eval()
    print(f"[hqq] loading info: {info}")
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        if info.get(key):
            problems.append(f"loading info {key}: {sorted(map(str, info[key]))}")

    file_sd = tensors_in_file(d)
    hq = {n: m for n, m in model.named_modules() if isinstance(m, HQQLinear)}
    plain = [n for n, m in model.model.layers.named_modules() if isinstance(m, torch.nn.Linear)]
    if plain:
        problems.append(f"decoder Linear layers left as nn.Linear (randomly initialised?): {plain}")
    differ, used = [], set()
    cds = set()
    for n, m in hq.items():
        cds.add((str(m.compute_dtype), str(m.meta.get("compute_dtype"))))
        for k, got in (("W_q", m.W_q), ("scale", m.meta.get("scale")), ("zero", m.meta.get("zero"))):
            f = file_sd.get(f"{n}.{k}")
            if f is None or got is None:
                differ.append(f"{n}.{k}: file {f is not None} model {got is not None}")
                continue
            used.add(f"{n}.{k}")
            if tuple(got.shape) != tuple(f.shape) or not torch.equal(got.detach().cpu(), f.to(got.dtype)):
                differ.append(f"{n}.{k}: model {got.dtype}{tuple(got.shape)} file {f.dtype}{tuple(f.shape)}")
        if tuple(m.meta["shape"]) != (m.out_features, m.in_features):
            differ.append(f"{n}: meta shape {m.meta['shape']}")
        for k in m.state_dict_keys():
            used.add(f"{n}.{k}")
    plain_sd = {k: v for k, v in model.state_dict().items()
                if not any(k.startswith(n + ".") for n in hq)}
    meta = [k for k, v in plain_sd.items() if v.device.type == "meta"]
    if meta:
        problems.append(f"left on meta: {meta}")
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    for k, v in plain_sd.items():
        f = file_sd.get(k)
        used.add(k)
        if f is None and tied and k == "lm_head.weight":
            # A tied head is the embedding table itself, not a tensor of its own in the file.
            f = file_sd.get("model.embed_tokens.weight")
        if f is None:
            problems.append(f"model tensor {k} is not in the file (randomly initialised)")
        elif tuple(v.shape) != tuple(f.shape) or not torch.equal(v.cpu(), f.to(v.dtype)):
            differ.append(f"{k}: model {v.dtype}{tuple(v.shape)} file {f.dtype}{tuple(f.shape)}")
    unused = sorted(set(file_sd) - used)
    if unused:
        problems.append(f"file tensors the loaded model does not hold: {unused}")
    if differ:
        problems.append(f"tensors that differ from the file after loading: {differ}")
    print(f"[hqq] {len(hq)} HQQLinear layers; (layer compute_dtype, meta compute_dtype): {sorted(cds)}; "
          f"W_q/scale/zero and all other tensors equal to the file: {not differ}")
    for n, m in list(hq.items())[:1]:
        print(f"[hqq]   e.g. {n}: shape {tuple(m.meta['shape'])} nbits {m.meta['nbits']} group "
              f"{m.meta['group_size']} axis {m.meta['axis']} packing {m.meta['packing']} "
              f"W_q {m.W_q.dtype}{tuple(m.W_q.shape)} scale {m.meta['scale'].dtype}{tuple(m.meta['scale'].shape)} "
              f"(file {file_sd[n + '.scale'].dtype})")
    fwd = {c for c, _ in cds}

    x = torch.tensor([ids])
    with torch.no_grad():
        logits = model(x).logits[0].float()

    # (a) fp32 transformers model with hqq's own dequantization of the loaded layers
    c2 = AutoConfig.from_pretrained(str(d))
    if hasattr(c2, "quantization_config"):
        del c2.quantization_config
    ref = AutoModelForCausalLM.from_config(c2, dtype=torch.float32).eval()
    sd = {k: v.float() for k, v in file_sd.items() if k in ref.state_dict()}
    with torch.no_grad():
        for n, m in hq.items():
            sd[n + ".weight"] = m.dequantize().float()
    res = ref.load_state_dict(sd, strict=False)
    if tied:
        ref.tie_weights()
    missing = [k for k in res.missing_keys if not (tied and k == "lm_head.weight")]
    if missing or res.unexpected_keys:
        problems.append(f"fp32 model: missing {missing} unexpected {res.unexpected_keys}")
    with torch.no_grad():
        rl = ref(x).logits[0].float()
    vs = {"HQQLinear.dequantize() weights": {"max_abs": float((logits - rl).abs().max()),
                                             "argmax_agree": argmax_agree(logits, rl)}}
    ours = ours_section(d, ids, logits, rl)
    return {"dir": str(d), "ids": ids, "loader": loader,
            "forward_dtype": "HQQLinear compute " + ",".join(sorted(fwd)) + ", rest float32",
            "hqq_compute_dtypes": sorted(fwd),
            "load_problems": problems, "warnings": warns, "vs_dequant": vs,
            "vs_ours": {k: v for k, v in ours.items() if k != "rows"},
            "max_abs_logit": float(logits.abs().max())}


# ----------------------------------------------------------------------------- driver
def child(tool, d, ids):
    try:
        res = (run_awq if tool == "awq" else run_hqq)(d, ids)
    except Exception as e:  # noqa: BLE001 - the loader's refusal is the finding
        tb = traceback.format_exc()
        print(tb, file=sys.stderr)
        frames = traceback.extract_tb(e.__traceback__)
        def at(f):
            return f"{f.filename}:{f.lineno} in {f.name}: {f.line}"
        where = at(frames[-1]) if frames else ""
        # and the deepest frame in the tool's own code (awq, hqq, transformers, accelerate)
        tool_frames = [f for f in frames if any(f"/{p}/" in f.filename for p in
                                                ("awq", "hqq", "transformers", "accelerate"))]
        if tool_frames and tool_frames[-1] is not frames[-1]:
            where += f"  <- {at(tool_frames[-1])}"
        res = {"dir": str(d), "ids": ids, "error": f"{type(e).__name__}: {e}", "raised_at": where}
    print("RESULT " + json.dumps(res))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--awq", help="an AutoAWQ GEMM checkpoint directory")
    ap.add_argument("--hqq", help="a transformers-4.x HQQ checkpoint directory")
    ap.add_argument("--ids", default=None, help=f"comma-separated token ids (default {DEFAULT_IDS})")
    ap.add_argument("ids_pos", nargs="*", help="token ids, as an alternative to --ids")
    ap.add_argument("--tol-awq", type=float, default=TOL["awq"])
    ap.add_argument("--tol-hqq", type=float, default=None,
                    help="default: 1e-3 if HQQLinear computes in float32, 0.05 if in float16")
    ap.add_argument("--child", choices=["awq", "hqq"], help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the results as JSON to this file")
    ap.add_argument("--verbose", action="store_true", help="show the tools' stderr even when they succeed")
    a = ap.parse_args()
    ids = parse_ids(a.ids) if a.ids else [int(t) for t in ",".join(a.ids_pos).split(",") if t] \
        if a.ids_pos else parse_ids(DEFAULT_IDS)

    if a.child:
        child(a.child, getattr(a, a.child), ids)
        return 0
    if not a.awq and not a.hqq:
        ap.error("give --awq DIR and/or --hqq DIR")

    site = os.environ.get("HQQ_TF4_SITE", str(Path.home() / ".cache/llm-rs/hqq-tf4-site"))
    results, fails = {}, {}
    for tool in ("awq", "hqq"):
        d = getattr(a, tool)
        if not d:
            continue
        env = dict(os.environ)
        pp = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p) != Path(site)]
        if tool == "hqq":
            pp.insert(0, site)  # transformers 4.57.3: 5.x cannot load HQQ checkpoints
        env["PYTHONPATH"] = os.pathsep.join(pp)
        cmd = [sys.executable, __file__, "--child", tool, f"--{tool}", d, "--ids", ",".join(map(str, ids))]
        print(f"\n##### {tool.upper()}: {' '.join(cmd)}" + (f"  (PYTHONPATH={env['PYTHONPATH']})" if pp else ""))
        sys.stdout.flush()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        res = None
        for line in p.stdout.splitlines():
            if line.startswith("RESULT "):
                res = json.loads(line[len("RESULT "):])
            else:
                print(line)
        err = [l for l in p.stderr.splitlines() if l.strip()]
        if err and (a.verbose or res is None or "error" in res):
            print("\n".join("  [stderr] " + l for l in err[-80:]))
        elif err:
            print(f"  ({len(err)} stderr lines (AutoAWQ's deprecation notice, progress bars) hidden; --verbose shows them)")
        if res is None:
            res = {"dir": d, "error": f"child exited {p.returncode} without a result"}
        results[tool] = res
        if "error" in res:
            print(f"\n=== {tool.upper()} summary ({d})\n  LOADER/RUN FAILED: {res['error']}\n"
                  f"  raised at: {res.get('raised_at', '?')}\n  verdict: FAIL")
            fails[tool] = [res["error"]]
            continue
        if tool == "awq":
            tol = max(a.tol_awq, TOL["awq_rel"] * res["max_abs_logit"])
        else:
            tol = a.tol_hqq if a.tol_hqq is not None else (
                TOL["hqq_f32"] if res["hqq_compute_dtypes"] == ["torch.float32"] else TOL["hqq_f16"])
        print(f"  (tolerance {tol:g}; largest |logit| of the tool's forward {res['max_abs_logit']:.3f})")
        fails[tool] = report(tool, res, tol)
        res["tolerance"] = tol
    if a.json:
        Path(a.json).write_text(json.dumps({"results": results, "failures": fails}, indent=1) + "\n")
    bad = {k: v for k, v in fails.items() if v}
    print("\nOVERALL: " + ("PASS" if not bad else f"FAIL ({', '.join(bad)})"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
