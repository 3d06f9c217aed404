"""Runs AutoAWQ 0.2.9's own code on CPU and writes fixtures/awq_ref, what llm-quant's AWQ tests
compare against (golden.json says what every tensor is). Spec: scripts/AWQ_SPEC.md.

Run through scripts/awq-reference.sh, which makes the virtualenv (autoawq==0.2.9 --no-deps on the
repo's pinned torch/transformers). Three cases:

(a) pack: a fixed fp32 W [out 64, in 256]; AwqQuantizer.pseudo_quantize_tensor (4 bit, group 128,
    zero point) in fp32 and, as _apply_quant does it, in fp16; WQLinear_GEMM.from_linear packs the
    fp16 result (qweight/qzeros/scales exactly as a checkpoint stores them); unpack_awq +
    reverse_awq_order read it back; dequantize_gemm gives W^T.
(b) search: AwqQuantizer._search_best_scale on that W (one linear, module2inspect = the linear,
    fixed synthetic activations X [128, 256] with outlier channels): x_mean, w_mean, the 20 losses,
    the best scales; then _compute_best_clip on the scaled W and X/s (default n_sample_token=512,
    and 64 to exercise the token subsampling).
(c) model: AutoAWQForCausalLM.quantize on fixtures/a_tiny_llama/llama (fp32, 4 bit, group 32,
    GEMM) with token-id calibration data; the saved checkpoint (model.safetensors + config.json),
    every search's scales and loss history, every clip's max values, the weights just before the
    final quantization, and logits on two prompts (fp32 model with AutoAWQ's dequantized weights,
    with exact fp32 dequantization, with AutoAWQ's own WQLinear_GEMM CPU path, and the original).

Three shims, none changing AutoAWQ's arithmetic as it runs on CUDA: CpuSafeQuantizer (AutoAWQ's
search saves the module's weights with .cpu(), a no-op on CPU, so its snapshot aliases the weights
it then scales in place; the shim makes that snapshot a copy, as on CUDA); `datasets` is stubbed
(only load_dataset is imported, and token-id calibration data never calls it); _compute_best_clip
pads a layer whose out_features is not a multiple of 64 (the tiny Llama's v_proj has 32 rows;
AutoAWQ asserts out % 64 == 0 for its output-channel batching) with zero rows and drops them
afterwards: every output channel is searched independently, so the real rows are unchanged.
"""
import json
import shutil
import sys
import types
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
sys.modules.setdefault("datasets", types.SimpleNamespace(load_dataset=None))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import awq  # noqa: E402
import awq.modules.linear.gemm as awq_gemm  # noqa: E402
from awq import AutoAWQForCausalLM  # noqa: E402
from awq.modules.linear.gemm import WQLinear_GEMM  # noqa: E402
from awq.quantize.quantizer import AwqQuantizer  # noqa: E402
from awq.utils.calib_data import get_calib_dataset  # noqa: E402
from awq.utils.packing_utils import dequantize_gemm, reverse_awq_order, unpack_awq  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "fixtures"
SRC = FIX / "a_tiny_llama" / "llama"
OUT = FIX / "awq_ref"

torch.manual_seed(0)
torch.set_num_threads(1)  # deterministic summation order on CPU


class CpuSafeQuantizer(AwqQuantizer):
    """_compute_best_scale saves the module with `{k: v.cpu() for k, v in state_dict().items()}`,
    which on a CUDA module is a copy but on a CPU module aliases the live weights: the in-place
    `fc.weight.mul_(scales)` of the first ratio then overwrites the saved copy, every later ratio
    starts from W*s(ratio 0) and the module is left scaled. This makes state_dict() return clones
    during the search, so a CPU run computes what the CUDA run does."""

    def _compute_best_scale(self, x, w_mean, x_mean, module2inspect, linears2scale, fp16_output, kwargs={}):
        orig = module2inspect.state_dict
        module2inspect.state_dict = lambda *a, **k: {n: v.clone() for n, v in orig(*a, **k).items()}
        try:
            return super()._compute_best_scale(x, w_mean, x_mean, module2inspect, linears2scale,
                                               fp16_output, kwargs)
        finally:
            del module2inspect.state_dict


def bare_quantizer(group_size, w_bit=4, zero_point=True, duo_scaling=True, cls=None):
    """An AwqQuantizer without __init__ (which would load calibration data and run the model)."""
    cls = cls or CpuSafeQuantizer
    q = cls.__new__(cls)
    q.w_bit, q.group_size, q.zero_point, q.duo_scaling = w_bit, group_size, zero_point, duo_scaling
    q.version = "gemm"
    q.n_parallel_calib_samples = None
    q.max_chunk_memory = 1024 * 1024 * 1024
    return q


def codes_of(w, scales, zeros, group_size):
    """The integer codes pseudo_quantize_tensor rounds to (it returns only the dequantized w):
    clamp(round(w / s) + z, 0, 15), in w's dtype, per group of group_size along the input."""
    out, inn = w.shape
    wg = w.reshape(-1, group_size)
    s = scales.reshape(-1, 1)
    z = zeros.reshape(-1, 1)
    return torch.clamp(torch.round(wg / s) + z, 0, 15).reshape(out, inn).to(torch.uint8)


def fixed_weight(out, inn):
    g = torch.Generator().manual_seed(1234)
    w = torch.randn(out, inn, generator=g) * 0.05
    w[3, 7] = 0.6  # an outlier in group 0 of row 3
    w[10, 200] = -0.5  # and in group 1 of row 10
    w[20, 128:256] = 0.0  # a constant group: scale = 1e-5/15 (the clamp), zero 0
    w[21, 0:128] = 0.25  # a constant positive group
    return w


def fixed_activations(n_tok, inn):
    g = torch.Generator().manual_seed(99)
    x = torch.randn(n_tok, inn, generator=g)
    boost = torch.ones(inn)
    boost[[5, 17, 130, 250]] = torch.tensor([20.0, 8.0, 12.0, 30.0])  # salient channels
    return x * boost


# ----------------------------------------------------------------------------- (a) pack
def pack_case(tensors, golden):
    out_f, in_f, gs = 64, 256, 128
    w = fixed_weight(out_f, in_f)
    q = bare_quantizer(gs)

    w32, s32, z32 = q.pseudo_quantize_tensor(w.clone())
    c32 = codes_of(w, s32, z32, gs)

    # _apply_quant: linear.half(), pseudo-quantize in fp16, scales/zeros transposed, from_linear
    lin = nn.Linear(in_f, out_f, bias=False)
    lin.weight.data = w.clone()
    lin = lin.half()
    lin.weight.data, s16, z16 = q.pseudo_quantize_tensor(lin.weight.data)
    c16 = codes_of(w.half(), s16, z16, gs)
    ql = WQLinear_GEMM.from_linear(lin, 4, gs, init_only=False,
                                   scales=s16.t().contiguous(), zeros=z16.t().contiguous())
    iw, iz = unpack_awq(ql.qweight, ql.qzeros, 4)
    iw, iz = reverse_awq_order(iw, iz, 4)
    iw, iz = torch.bitwise_and(iw, 15), torch.bitwise_and(iz, 15)
    deq = dequantize_gemm(ql.qweight, ql.qzeros, ql.scales, 4, gs)  # [in, out] fp16

    assert torch.equal(iw.t().to(torch.uint8), c16), "packed codes != pseudo_quantize codes"
    assert torch.equal(iz.t().to(torch.uint8), z16.to(torch.uint8))

    tensors.update({
        "pack.w": w,
        "pack.fp32.scales": s32, "pack.fp32.zeros": z32,
        "pack.fp32.codes": c32,
        "pack.fp16.scales": s16,
        "pack.fp16.zeros": z16, "pack.fp16.codes": c16,
        "pack.qweight": ql.qweight, "pack.qzeros": ql.qzeros, "pack.scales": ql.scales,
        "pack.unpacked_codes": iw.to(torch.uint8), "pack.unpacked_zeros": iz.to(torch.uint8),
        "pack.dequantized": deq,
    })
    golden["pack"] = {
        "w_bit": 4, "group_size": gs, "zero_point": True, "out_features": out_f, "in_features": in_f,
        "pack.w": "fp32 W [out, in] (seeded randn*0.05 with outliers; row 20 group 1 all 0, row 21 group 0 all 0.25)",
        "pack.fp32.*": "pseudo_quantize_tensor on fp32 W (its w_dq = (codes - zeros) * scales, not stored): scales/zeros [out, in/gs] (zeros are float integers), codes = clamp(round(w/s)+z,0,15)",
        "pack.fp16.*": "the same on W.half(), as _apply_quant does before packing (all fp16); its w_dq is pack.dequantized^T",
        "fp32_w_dq_max_abs_vs_fp16_w_dq": float((w32 - lin.weight.data.float()).abs().max()),
        "pack.qweight": "WQLinear_GEMM.qweight int32 [in, out/8], nibble i of word j holds column 8j+[0,2,4,6,1,3,5,7][i]",
        "pack.qzeros": "int32 [in/gs, out/8], same order, zero stored as is (no -1)",
        "pack.scales": "fp16 [in/gs, out] (transpose of pack.fp16.scales)",
        "pack.unpacked_codes": "uint8 [in, out] from unpack_awq + reverse_awq_order (= pack.fp16.codes^T)",
        "pack.unpacked_zeros": "uint8 [in/gs, out]",
        "pack.dequantized": "dequantize_gemm: (codes - zeros) * scales computed in fp16, [in, out] = W_dq^T",
        "fp32_vs_fp16_codes_differ": int((c32 != c16).sum()),
        "dequantized_equals_fp16_w_dq_T": bool(torch.equal(deq, lin.weight.data.t())),
    }
    return w


# ----------------------------------------------------------------------------- (b) search
class Recorder:
    def __init__(self):
        self.losses = []


def search_case(w, tensors, golden):
    gs = 128
    q = bare_quantizer(gs)
    rec = Recorder()
    orig_loss = q._compute_loss

    def loss_hook(a, b, device):
        v = orig_loss(a, b, device)
        rec.losses.append(v)
        return v

    q._compute_loss = loss_hook
    x = fixed_activations(128, w.shape[1])
    block = nn.ModuleDict({"prev": nn.Linear(8, w.shape[1], bias=False),
                           "fc": nn.Linear(w.shape[1], w.shape[0], bias=False)})
    block["fc"].weight.data = w.clone()
    prev_name, names, scales = q._search_best_scale(block, block["prev"], [block["fc"]], x)
    assert torch.equal(block["fc"].weight.data, w), "search must restore the weights"

    # the intermediates, recomputed the way _search_best_scale does
    wg = w.view(-1, gs)
    w_mean = (wg.abs() / (wg.abs().amax(dim=1, keepdim=True) + 1e-6)).view(w.shape).mean(0)
    x_mean = x.abs().view(-1, x.shape[-1]).to(torch.float32).sum(0) / x.shape[0]
    best = min(range(20), key=lambda i: (rec.losses[i], i))

    # the same search through the unpatched class (CPU aliasing bug, see CpuSafeQuantizer)
    qb = bare_quantizer(gs, cls=AwqQuantizer)
    bad_losses = []
    qb._compute_loss = lambda a, b, d: bad_losses.append(AwqQuantizer._compute_loss(qb, a, b, d)) or bad_losses[-1]
    fcb = nn.ModuleDict({"prev": nn.Linear(8, w.shape[1], bias=False),
                         "fc": nn.Linear(w.shape[1], w.shape[0], bias=False)})
    fcb["fc"].weight.data = w.clone()
    qb._search_best_scale(fcb, fcb["prev"], [fcb["fc"]], x)
    golden_bug = {"unpatched_cpu_losses": bad_losses,
                  "unpatched_cpu_leaves_weight_modified": not torch.equal(fcb["fc"].weight.data, w)}

    w_scaled = w * scales.view(1, -1)
    x_scaled = x / scales.view(1, -1)
    clip512 = q._compute_best_clip(w_scaled, x_scaled)
    clip64 = q._compute_best_clip(w_scaled, x_scaled, n_sample_token=64)

    tensors.update({
        "search.x": x, "search.x_mean": x_mean, "search.w_mean": w_mean,
        "search.best_scales": scales, "search.losses": torch.tensor(rec.losses, dtype=torch.float64),
        "search.clip_max_val": clip512, "search.clip_max_val_ntok64": clip64,
    })
    golden["search"] = {
        "weight": "pack.w (group 128); module2inspect = the linear itself (no bias); duo_scaling True",
        "search.x": "fp32 activations [128 tokens, 256]: seeded randn, channels 5,17,130,250 multiplied by 20,8,12,30",
        "search.x_mean": "mean |x| per input channel (fp32 sum / n_tokens)",
        "search.w_mean": "mean over rows of |w| / (max |w| in its group + 1e-6)",
        "search.losses": "float64 [20]: MSE for ratio = i/20, i = 0..19",
        "best_ratio_index": best, "best_ratio": best / 20,
        "search.best_scales": "scales at the best ratio: (x_mean^r / (w_mean^(1-r) + 1e-4)).clamp(min=1e-4) / sqrt(max*min)",
        "search.clip_max_val": "_compute_best_clip(W*s, X/s): [out, in/gs, 1] best max |w| per (row, group)",
        "search.clip_max_val_ntok64": "same with n_sample_token=64 (tokens X[::2] used)",
        "op_names": [prev_name, list(names)],
        "cpu_aliasing_bug": golden_bug,
    }


# ----------------------------------------------------------------------------- (c) model
CALIB_SEQ_LEN = 64
GROUP = 32


def calib_ids():
    g = torch.Generator().manual_seed(7)
    samples = []
    for i in range(24):
        n = int(torch.randint(8, 90, (1,), generator=g))  # some are longer than 64: skipped
        ids = torch.randint(3, 512, (n,), generator=g).tolist()
        samples.append([1] + ids)
    return samples


class RecordingQuantizer(CpuSafeQuantizer):
    """AutoAWQ's quantizer; the overrides only record and call the original (see the clip shim)."""
    record = {"searches": [], "clips": [], "pre_quant": {}, "layer_out_check": []}
    expected_hidden = None  # [n_layers+1] hidden states of the fp32 model on the calibration batch

    def _search_best_scale(self, module, prev_op, layers, inp, module2inspect=None, kwargs={}):
        start = len(self.record.setdefault("_losses", []))
        res = super()._search_best_scale(module, prev_op, layers, inp, module2inspect, kwargs)
        losses = self.record["_losses"][start:]
        self.record["searches"].append({"layer": self._layer, "prev_op": res[0],
                                        "layers": list(res[1]), "scales": res[2].clone(),
                                        "losses": list(losses), "inp_shape": list(inp.shape)})
        return res

    def _compute_loss(self, fp16_output, int_w_output, device):
        v = super()._compute_loss(fp16_output, int_w_output, device)
        self.record.setdefault("_losses", []).append(v)
        return v

    def _compute_best_clip(self, w, input_feat, n_grid=20, max_shrink=0.5, n_sample_token=512):
        rows = w.shape[0]
        pad = (-rows) % 64 if rows % 256 else 0
        if pad:
            w = torch.cat([w, torch.zeros(pad, w.shape[1], dtype=w.dtype, device=w.device)])
        mv = super()._compute_best_clip(w, input_feat, n_grid, max_shrink, n_sample_token)
        return mv[:rows]

    def _search_best_clip(self, layer, named_linears, input_feat):
        clip_list = super()._search_best_clip(layer, named_linears, input_feat)
        for name, mv in clip_list:
            self.record["clips"].append({"layer": self._layer, "name": name, "max_val": mv.clone()})
        return clip_list

    def _get_input_feat(self, layer, named_linears):
        self._layer = [i for i, m in enumerate(self.modules) if m is layer][0]
        feat = super()._get_input_feat(layer, named_linears)
        exp = self.expected_hidden[self._layer + 1]
        self.record["layer_out_check"].append(float((self.inps - exp).abs().max()))
        return feat

    def _apply_quant(self, module, named_linears):
        for name, lin in named_linears.items():
            self.record["pre_quant"][f"model.layers.{self._layer}.{name}.weight"] = lin.weight.data.clone().float()
        return super()._apply_quant(module, named_linears)


def dequant_state(sd, exact):
    """HF fp32 weights from the AWQ tensors: AutoAWQ's dequantize_gemm (fp16 product) or
    exact ((q - z) as f32 * f32(s))."""
    out = {}
    for k, v in sd.items():
        if k.endswith(".qweight"):
            p = k[: -len(".qweight")]
            qw, qz, s = v, sd[p + ".qzeros"], sd[p + ".scales"]
            if exact:
                iw, iz = unpack_awq(qw, qz, 4)
                iw, iz = reverse_awq_order(iw, iz, 4)
                iw, iz = torch.bitwise_and(iw, 15).float(), torch.bitwise_and(iz, 15).float()
                wt = (iw - iz.repeat_interleave(GROUP, 0)) * s.float().repeat_interleave(GROUP, 0)
            else:
                wt = dequantize_gemm(qw, qz, s, 4, GROUP).float()
            out[p + ".weight"] = wt.t().contiguous()
        elif k.endswith(".qzeros") or k.endswith(".scales"):
            continue
        else:
            out[k] = v.float()
    return out


def model_case(tensors, golden):
    from transformers import AutoModelForCausalLM

    ck = OUT / "checkpoint"
    samples = calib_ids()
    blocks = get_calib_dataset(data=samples, n_samples=128, max_seq_len=CALIB_SEQ_LEN)
    batch = torch.cat(blocks, 0)

    ref = AutoModelForCausalLM.from_pretrained(SRC, dtype=torch.float32, attn_implementation="sdpa").eval()
    outs = []
    hooks = [l.register_forward_hook(lambda m, a, o: outs.append(o[0] if isinstance(o, tuple) else o))
             for l in ref.model.layers]
    with torch.no_grad():
        ref(batch)
    for h in hooks:
        h.remove()
    RecordingQuantizer.expected_hidden = [None] + outs  # [i + 1] = output of decoder layer i
    prompts = json.loads((SRC / "golden.json").read_text())["prompts"]
    prompt_ids = [prompts[0]["input_ids"], prompts[2]["input_ids"]]
    with torch.no_grad():
        fp_logits = [ref(torch.tensor([p])).logits[0] for p in prompt_ids]

    model = AutoAWQForCausalLM.from_pretrained(str(SRC), torch_dtype=torch.float32)
    quant_config = {"zero_point": True, "q_group_size": GROUP, "w_bit": 4, "version": "GEMM"}
    model.quantize(None, quant_config=quant_config, calib_data=samples,
                   max_calib_samples=128, max_calib_seq_len=CALIB_SEQ_LEN,
                   quantizer_cls=RecordingQuantizer)
    if ck.exists():
        shutil.rmtree(ck)
    model.save_quantized(str(ck))
    for extra in ck.iterdir():
        if extra.name not in ("model.safetensors", "config.json"):
            extra.unlink()

    # logits: AutoAWQ's own CPU GEMM path (naive dequantize + fp16 matmul), forced off triton
    awq_gemm.TRITON_AVAILABLE = False
    with torch.no_grad():
        naive_logits = [model.model(torch.tensor([p])).logits[0].float() for p in prompt_ids]

    sd = load_file(str(ck / "model.safetensors"))
    logits = {}
    for tag, exact in (("awq_dequant", False), ("exact_dequant", True)):
        m = AutoModelForCausalLM.from_pretrained(SRC, dtype=torch.float32, attn_implementation="sdpa").eval()
        m.load_state_dict(dequant_state(sd, exact), strict=True)
        with torch.no_grad():
            logits[tag] = [m(torch.tensor([p])).logits[0] for p in prompt_ids]
        if tag == "awq_dequant":
            l0 = dequant_state({k: v for k, v in sd.items() if "layers.0.self_attn.q_proj" in k}, False)
        else:
            l0e = dequant_state({k: v for k, v in sd.items() if "layers.0.self_attn.q_proj" in k}, True)

    rtn = AutoModelForCausalLM.from_pretrained(SRC, dtype=torch.float32, attn_implementation="sdpa").eval()
    qr = bare_quantizer(GROUP)
    for mod in rtn.model.layers.modules():
        if isinstance(mod, nn.Linear):
            mod.weight.data = qr.pseudo_quantize_tensor(mod.weight.data)[0]
    with torch.no_grad():
        rtn_logits = [rtn(torch.tensor([p])).logits[0] for p in prompt_ids]

    def mse(a, b):
        return float(sum(((x - y) ** 2).sum() for x, y in zip(a, b)) / sum(x.numel() for x in a))

    rec = RecordingQuantizer.record
    for i, s in enumerate(rec["searches"]):
        tensors[f"model.search{i}.scales"] = s["scales"].float()
    for c in rec["clips"]:
        tensors[f"model.clip.layers.{c['layer']}.{c['name']}"] = c["max_val"].float()
    for k, v in rec["pre_quant"].items():
        if ".layers.0." in k:  # layer 0 only, to keep the fixture small
            tensors[f"model.pre_quant.{k}"] = v
    for j, p in enumerate(prompt_ids):
        tensors[f"model.logits_fp32_original.p{j}"] = fp_logits[j]
        tensors[f"model.logits_exact_dequant.p{j}"] = logits["exact_dequant"][j]
        if j == 0:
            tensors[f"model.logits_awq_dequant.p{j}"] = logits["awq_dequant"][j]
            tensors[f"model.logits_awq_gemm_cpu.p{j}"] = naive_logits[j]
    tensors["model.layer0_q_proj_awq_dequant"] = l0["model.layers.0.self_attn.q_proj.weight"]
    tensors["model.layer0_q_proj_exact_dequant"] = l0e["model.layers.0.self_attn.q_proj.weight"]

    golden["model"] = {
        "source": "fixtures/a_tiny_llama/llama (fp32, hidden 64, intermediate 128, 2 layers, 4 heads, 2 kv heads)",
        "quant_config": quant_config,
        "quantize_kwargs": {"duo_scaling": True, "apply_clip": True, "max_calib_samples": 128,
                            "max_calib_seq_len": CALIB_SEQ_LEN, "n_parallel_calib_samples": None},
        "torch_dtype": "float32 (AutoAWQ's search ran in fp32; _apply_quant pseudo-quantizes in fp16)",
        "calib_samples": samples,
        "calib_samples_note": "24 token-id lists (BOS 1 + seeded ids); get_calib_dataset drops those longer than 64, concatenates the rest and cuts 64-token blocks (tail dropped)",
        "calib_blocks": [b[0].tolist() for b in blocks],
        "layer_output_vs_hf_hidden_states_max_abs": rec["layer_out_check"],
        "searches": [{"tensor": f"model.search{i}.scales", "layer": s["layer"], "prev_op": s["prev_op"],
                      "layers": s["layers"], "inp_shape": s["inp_shape"], "losses": s["losses"],
                      "best_ratio": min(range(20), key=lambda r: (s["losses"][r], r)) / 20}
                     for i, s in enumerate(rec["searches"])],
        "clips": [{"tensor": f"model.clip.layers.{c['layer']}.{c['name']}", "layer": c["layer"],
                   "name": c["name"], "shape": list(c["max_val"].shape)} for c in rec["clips"]],
        "pre_quant": "model.pre_quant.<weight name> (layer 0 only): fp32 weight after scaling and clipping, just before _apply_quant (which casts to fp16 and pseudo-quantizes)",
        "prompts": prompt_ids,
        "logits": {
            "model.logits_fp32_original.pJ": "the unquantized fp32 model",
            "model.logits_awq_dequant.p0": "(prompt 0 only) fp32 model with weights = AutoAWQ dequantize_gemm (fp16 (q-z)*s) cast to fp32",
            "model.logits_exact_dequant.pJ": "fp32 model with weights = (q - z) * f32(scale) in fp32",
            "model.logits_awq_gemm_cpu.p0": "(prompt 0 only) AutoAWQ's quantized model itself (WQLinear_GEMM naive CPU path: x.half() @ fp16 dequantized W, output cast back to fp32)",
        },
        "max_abs_diff": {
            "awq_dequant_vs_exact": max(float((a - b).abs().max()) for a, b in zip(logits["awq_dequant"], logits["exact_dequant"])),
            "exact_vs_fp32_original": max(float((a - b).abs().max()) for a, b in zip(logits["exact_dequant"], fp_logits)),
            "awq_gemm_cpu_vs_exact": max(float((a - b).abs().max()) for a, b in zip(naive_logits, logits["exact_dequant"])),
        },
        "logit_mse_vs_fp32_original": {"awq_exact_dequant": mse(logits["exact_dequant"], fp_logits),
                                       "rtn_g32_fp32_same_layers": mse(rtn_logits, fp_logits)},
        "checkpoint": "checkpoint/model.safetensors + checkpoint/config.json written by save_quantized (other files removed)",
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tensors, golden = {}, {}
    import transformers
    golden["versions"] = {"autoawq": awq.__version__, "torch": torch.__version__,
                          "transformers": transformers.__version__}
    w = pack_case(tensors, golden)
    search_case(w, tensors, golden)
    if "--no-model" not in sys.argv:
        model_case(tensors, golden)
    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    save_file(tensors, str(OUT / "awq_ref.safetensors"), metadata={"format": "pt"})
    golden["tensors"] = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                         for k, v in sorted(tensors.items())}
    (OUT / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    for f in OUT.rglob("*"):
        if f.is_file():
            f.chmod(0o644)  # safetensors writes 0600
    print("wrote", OUT)


if __name__ == "__main__":
    main()
