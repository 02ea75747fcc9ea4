"""bitsandbytes oracle (its CPU path).

Usage: bnb_oracle.py OUTDIR MODEL_DIR

Writes, deterministically:
  OUTDIR/codes.safetensors: "w" (bf16 [96, 320] with outliers), for nf4 and
      fp4 with double quantization bitsandbytes' quantize_4bit outputs as
      Linear4bit serializes them ("<type>.weight", "<type>.absmax",
      "<type>.quant_map", "<type>.nested_absmax", "<type>.nested_quant_map"),
      "<type>.plain_absmax" without double quantization, LLM.int8's
      int8_vectorwise_quant ("int8.weight", "int8.SCB"), and "dynamic_map".
  OUTDIR/model_nf4/: MODEL_DIR with every Linear of the decoder blocks stored
      as bitsandbytes' Linear4bit state dict (nf4, block 64, double quant) and
      a bitsandbytes quantization_config, and OUTDIR/model_nf4_logits.safetensors:
      "ids" and "logits" of transformers' Llama run on the weights bitsandbytes
      dequantizes (in float32).
"""

import json
import os
import shutil
import sys

import torch
import bitsandbytes.functional as F
from safetensors.torch import load_file, save_file

out_dir, model_dir = sys.argv[1], sys.argv[2]
os.makedirs(out_dir, exist_ok=True)
torch.manual_seed(1234)

w = (torch.randn(96, 320) * 0.05)
w[3, 17] = 4.0
w[50, 0] = -3.0
w[7, :64] = 0.0  # a zero block
w = w.to(torch.bfloat16)
tensors = {"w": w, "dynamic_map": F.create_dynamic_map()}
for quant_type in ("nf4", "fp4"):
    packed, state = F.quantize_4bit(w, blocksize=64, compress_statistics=True, quant_type=quant_type)
    packed_state = state.as_dict(packed=True)
    tensors[f"{quant_type}.weight"] = packed
    for key in ("absmax", "quant_map", "nested_absmax", "nested_quant_map"):
        tensors[f"{quant_type}.{key}"] = packed_state[key]
    tensors[f"{quant_type}.state"] = packed_state[f"quant_state.bitsandbytes__{quant_type}"]
    _, plain = F.quantize_4bit(w, blocksize=64, compress_statistics=False, quant_type=quant_type)
    tensors[f"{quant_type}.plain_absmax"] = plain.absmax
int8_weight, scb, _ = F.int8_vectorwise_quant(w.clone())
tensors["int8.weight"] = int8_weight
tensors["int8.SCB"] = scb
save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, "codes.safetensors"))

# A whole model in the Linear4bit serialization.
state_dict = load_file(os.path.join(model_dir, "model.safetensors"))
saved = {}
dequantized = {}
for name, tensor in state_dict.items():
    module = name[: -len(".weight")]
    if name.startswith("model.layers.") and name.endswith("_proj.weight"):
        packed, state = F.quantize_4bit(tensor, blocksize=64, compress_statistics=True, quant_type="nf4")
        saved[name] = packed
        for key, value in state.as_dict(packed=True).items():
            saved[f"{name}.{key}"] = value
        dequantized[name] = F.dequantize_4bit(packed, state).float()
    else:
        saved[name] = tensor
        dequantized[name] = tensor.float()
target = os.path.join(out_dir, "model_nf4")
os.makedirs(target, exist_ok=True)
save_file({k: v.contiguous() for k, v in saved.items()}, os.path.join(target, "model.safetensors"),
          metadata={"format": "pt"})
with open(os.path.join(model_dir, "config.json")) as f:
    config = json.load(f)
config["quantization_config"] = {
    "quant_method": "bitsandbytes", "load_in_4bit": True, "load_in_8bit": False,
    "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
    "bnb_4bit_compute_dtype": "float32", "llm_int8_threshold": 6.0,
}
with open(os.path.join(target, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
for file in os.listdir(model_dir):
    if file.startswith("tokenizer") or file == "special_tokens_map.json":
        shutil.copy(os.path.join(model_dir, file), target)

from transformers import LlamaConfig, LlamaForCausalLM

with open(os.path.join(model_dir, "config.json")) as f:
    plain_config = LlamaConfig(**json.load(f))
plain_config.torch_dtype = torch.float32
model = LlamaForCausalLM(plain_config).float().eval()
model.load_state_dict(dequantized, strict=False)
if getattr(plain_config, "tie_word_embeddings", False):
    model.tie_weights()
ids = torch.arange(1, 33, dtype=torch.int64) * 97 % plain_config.vocab_size
with torch.no_grad():
    logits = model(ids.unsqueeze(0)).logits[0].float()
save_file({"ids": ids.to(torch.int32), "logits": logits.contiguous()},
          os.path.join(out_dir, "model_nf4_logits.safetensors"))
