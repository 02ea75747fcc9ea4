"""Hugging Face peft as a real client of our LoRA adapters, and a producer of its own.

  peft_oracle.py BASE --ids 1,2,3 [--load ADAPTER OUT.safetensors]
                 [--create ADAPTER_OUT OUT.safetensors --r 4 --alpha 8]

  BASE is a Hugging Face float directory or an mlx-lm quantized one (its
  weights are dequantized with mlx.core.dequantize, i.e. exactly the values
  stored), built in float32 with transformers on the CPU.
  --load: ADAPTER (PEFT layout) is loaded with peft.PeftModel.from_pretrained
      and the logits of the ids are written as tensor "logits" [n, vocab].
  --create: peft makes an adapter of its own (all seven projections, B random
      instead of zero so that it changes the model), saves it with
      save_pretrained into ADAPTER_OUT and writes the logits it gives.
  Both in one process: importing torch and transformers is the slow part.
"""
import argparse
import glob
import json
import os
import sys

import numpy as np
import torch


def dequantized_state(base):
    import mlx.core as mx

    with open(os.path.join(base, "config.json")) as f:
        quantization = json.load(f)["quantization"]
    tensors = {}
    for path in sorted(glob.glob(os.path.join(base, "*.safetensors"))):
        tensors.update(mx.load(path))
    state = {}
    for name, value in tensors.items():
        if name.endswith(".scales") or name.endswith(".biases"):
            continue
        module = name[: -len(".weight")] if name.endswith(".weight") else None
        if module is not None and module + ".scales" in tensors:
            settings = quantization.get(module, quantization)
            # float32 scales and biases: dequantizing in their bf16 would round w.
            value = mx.dequantize(value, tensors[module + ".scales"].astype(mx.float32),
                                  tensors[module + ".biases"].astype(mx.float32),
                                  group_size=settings["group_size"], bits=settings["bits"])
        state[name] = torch.from_numpy(np.array(value.astype(mx.float32)))
    return state


def base_model(base):
    from transformers import AutoConfig, AutoModelForCausalLM

    with open(os.path.join(base, "config.json")) as f:
        raw = json.load(f)
    if "quantization" not in raw:
        return AutoModelForCausalLM.from_pretrained(base, torch_dtype=torch.float32)
    raw.pop("quantization", None)
    raw.pop("quantization_config", None)
    config = AutoConfig.for_model(**raw)
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    missing, unexpected = model.load_state_dict(dequantized_state(base), strict=False)
    missing = [m for m in missing if not (m == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise SystemExit(f"dequantized state does not fit: missing {missing}, unexpected {unexpected}")
    return model


def run_logits(model, ids, out):
    from safetensors.torch import save_file

    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float().contiguous()
    save_file({"logits": logits}, out)


def load(args, ids):
    from peft import PeftModel

    adapter, out = args.load
    run_logits(PeftModel.from_pretrained(base_model(args.base), adapter), ids, out)


def create(args, ids):
    from peft import LoraConfig, get_peft_model

    adapter, out = args.create
    config = LoraConfig(r=args.r, lora_alpha=args.alpha, init_lora_weights=False,
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                        "up_proj", "down_proj"])
    model = get_peft_model(base_model(args.base), config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.mul_(0.05)  # a change of a trained adapter's size
    model.save_pretrained(adapter)
    run_logits(model, ids, out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("--ids", required=True)
    parser.add_argument("--load", nargs=2, metavar=("ADAPTER", "OUT"))
    parser.add_argument("--create", nargs=2, metavar=("ADAPTER_OUT", "OUT"))
    parser.add_argument("--r", type=int, default=4)
    parser.add_argument("--alpha", type=float, default=8.0)
    args = parser.parse_args()
    torch.manual_seed(0)
    ids = torch.tensor([[int(x) for x in args.ids.split(",")]])
    if args.load:
        load(args, ids)
    if args.create:
        create(args, ids)


if __name__ == "__main__":
    sys.exit(main())
