"""optimum-quanto as a real client of our files and a producer of its own.

  quantize MODEL OUT --weights QTYPE [--activations QTYPE --windows W.safetensors]
      quantize the HF model (in its stored dtype, on the CPU) with quanto's
      quantize (weights qint8|qint4|qint2|qfloat8_e4m3fn|qfloat8_e5m2), with
      activations: calibrate with `with Calibration(streamline=False):
      model(window)` for each row of the I64 tensor "windows" of
      W.safetensors in order, then freeze; save it the way quanto documents:
      the state dict as OUT/model.safetensors plus OUT/quantization_map.json
      (config and tokenizer files copied).
  logits DIR OUT.safetensors --ids 1,2,3
      rebuild the model from DIR/config.json, load DIR with quanto's
      requantize, check that every saved key was consumed, and write
      "logits": float32 forward over the saved codes dequantized in float32
      (quanto's unpacking; quantized activations quantized-dequantized in
      float32 with the saved input/output scales, as quanto's QModuleMixin
      hooks do), and "logits_quanto": quanto's own forward in the model dtype.
  batch JOBS
      runs each line of the file JOBS (the arguments of one of the commands
      above, separated by tabs) in this one process: torch starts once.
"""
import argparse
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

COPIED = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
          "generation_config.json"]


def quantize(args):
    from optimum.quanto import freeze, quantization_map, quantize as quanto_quantize
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype="auto")
    quanto_quantize(model, weights=args.weights, activations=args.activations)
    if args.activations is not None:
        from optimum.quanto import Calibration

        avoid_int8pack_crash()
        windows = load_file(args.windows)["windows"]
        with torch.no_grad(), Calibration(streamline=args.streamline):
            for window in windows:
                model(window[None].long())
    freeze(model)
    os.makedirs(args.out, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(args.out, "quantization_map.json"), "w") as f:
        json.dump(quantization_map(model), f)
    for name in COPIED:
        if os.path.exists(os.path.join(args.model, name)):
            shutil.copy(os.path.join(args.model, name), args.out)


def dequantized_float32(state, qmap, name):
    """The float32 weight of quantized module `name`, from the saved tensors
    with quanto's own unpacking and ungrouping, computed in float32 (quanto's
    dequantize() rounds to the model dtype)."""
    from optimum.quanto.tensor import ungroup
    from optimum.quanto.tensor.packed import PackedTensor

    prefix = name + ".weight."
    scale = state[prefix + "_scale"].float()
    if qmap[name]["weights"] in ("qint8", "qfloat8_e4m3fn", "qfloat8_e5m2"):
        return state[prefix + "_data"].float() * scale
    bits = 4 if qmap[name]["weights"] == "qint4" else 2
    packed = state[prefix + "_data._data"]
    rows = scale.shape[0]
    group = packed.shape[1]
    codes = PackedTensor(packed, bits, torch.Size([rows, group]), (group, 1)).unpack()
    return codes.float() * scale - state[prefix + "_shift"].float()


def quantize_dequantize(x, qtype, scale):
    """quanto's quantize_activation followed by dequantize, in float32."""
    if qtype == "qint8":
        return torch.clamp(torch.round(x / scale), -128, 127) * scale
    dtype = torch.float8_e4m3fn if qtype == "qfloat8_e4m3fn" else torch.float8_e5m2
    fmax = torch.finfo(dtype).max
    return torch.clamp(x / scale, -fmax, fmax).to(dtype).float() * scale


def add_activation_hooks(model, state, qmap):
    """Input and output of each Linear with quantized activations pass
    through quantize_dequantize with the saved scales."""
    for name, entry in qmap.items():
        qtype = entry["activations"]
        if qtype == "none":
            continue
        input_scale = state[name + ".input_scale"].float()
        output_scale = state[name + ".output_scale"].float()
        module = model.get_submodule(name)
        module.register_forward_pre_hook(
            lambda m, args, q=qtype, s=input_scale: (quantize_dequantize(args[0], q, s),))
        module.register_forward_hook(
            lambda m, args, out, q=qtype, s=output_scale: quantize_dequantize(out, q, s))


def avoid_int8pack_crash():
    """torch's _weight_int8pack_mm (quanto's CPU path for bf16 x qint8)
    segfaults with this torch build on some shapes; route it to quanto's
    generic qbytes_mm, the same product through a plain matmul."""
    import optimum.quanto.library.qbytes_mm as qbytes

    qbytes.qbytes_int8pack_mm = qbytes.qbytes_mm


def logits(args):
    from optimum.quanto import QTensor, requantize

    avoid_int8pack_crash()
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(args.dir)
    path = os.path.join(args.dir, "model.safetensors")
    with open(os.path.join(args.dir, "quantization_map.json")) as f:
        qmap = json.load(f)
    # Built on the CPU, not on meta: requantize would leave the rotary
    # embedding's non-persistent buffers uninitialised.
    model = AutoModelForCausalLM.from_config(config, dtype=config.torch_dtype)
    requantize(model, load_file(path), qmap, device=torch.device("cpu"))
    model.eval()
    state = load_file(path)
    loaded = set(model.state_dict().keys())
    if loaded != set(state.keys()):
        raise SystemExit(f"keys differ: missing {sorted(loaded - set(state))[:5]}, "
                         f"unexpected {sorted(set(state) - loaded)[:5]}")
    ids = torch.tensor([[int(x) for x in args.ids.split(",")]])
    with torch.no_grad():
        theirs = model(ids).logits[0]
        if isinstance(theirs, QTensor):  # lm_head's output quantization
            theirs = theirs.dequantize()
        theirs = theirs.float()
        float_state = {k: v.float() for k, v in state.items()
                       if not k.endswith(("._data", "._scale", "._shift", "input_scale",
                                          "output_scale"))}
        for name in qmap:
            out_features, in_features = model.get_submodule(name).weight.shape
            w = dequantized_float32(state, qmap, name)
            float_state[name + ".weight"] = w.reshape(out_features, in_features)
        reference = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        reference.load_state_dict(float_state, strict=True)
        reference.eval()
        add_activation_hooks(reference, state, qmap)
        ours = reference(ids).logits[0].float()
    save_file({"logits": ours.contiguous(), "logits_quanto": theirs.contiguous()}, args.out)


def parser_of_commands():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quantize")
    q.add_argument("model")
    q.add_argument("out")
    q.add_argument("--weights", required=True,
                   choices=["qint8", "qint4", "qint2", "qfloat8_e4m3fn", "qfloat8_e5m2"])
    q.add_argument("--activations", choices=["qint8", "qfloat8_e4m3fn", "qfloat8_e5m2"])
    q.add_argument("--windows", help="safetensors with the I64 calibration windows [n, ctx]")
    q.add_argument("--streamline", action="store_true",
                   help="quanto's default Calibration(streamline=True)")
    lg = sub.add_parser("logits")
    lg.add_argument("dir")
    lg.add_argument("out")
    lg.add_argument("--ids", required=True)
    sub.add_parser("batch").add_argument("jobs")
    return parser


def main():
    parser = parser_of_commands()
    args = parser.parse_args()
    if args.command != "batch":
        return run(args)
    with open(args.jobs) as f:
        for line in f:
            if line.strip():
                run(parser.parse_args(line.rstrip("\n").split("\t")))


def run(args):
    {"quantize": quantize, "logits": logits}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
