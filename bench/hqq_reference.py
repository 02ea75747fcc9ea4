"""The hqq package's own HQQ on the bundled model, for docs/ACCURACY.md.

Quantizes every decoder linear with hqq.core.quantize.Quantizer (group 64,
axis 1, optimize=True, float32 on the CPU), prints the mean relative weight
error ||W - W_hat||^2 / ||W||^2 and the l_0.7 error over those layers, and
writes a copy of the model whose decoder linears hold the dequantized
weights, so that `uq eval OUT --data data/val.txt` measures its perplexity.

Usage: python bench/hqq_reference.py BITS OUT_DIR
(needs `pip install hqq termcolor` in the oracle venv: a benchmark, not a test
dependency, so scripts/setup.sh does not install it)
"""
import json
import shutil
import sys
from pathlib import Path

import torch
from hqq.core.quantize import Quantizer
from safetensors.torch import load_file, save_file

bits, out = int(sys.argv[1]), Path(sys.argv[2])
model = Path(__file__).resolve().parent.parent / "models" / "tiny-llama"
tensors = load_file(model / "model.safetensors")
errors, lp = [], 0.0
for name, tensor in tensors.items():
    if not (name.startswith("model.layers.") and name.endswith("proj.weight")):
        continue
    w = tensor.float()
    q, meta = Quantizer.quantize(w, nbits=bits, channel_wise=True, group_size=64, optimize=True,
                                 round_zero=False, axis=1, bitpack=False, compute_dtype=torch.float32,
                                 device="cpu")
    w_hat = Quantizer.dequantize(q, meta).reshape(w.shape).float()
    errors.append(float(((w - w_hat) ** 2).sum() / (w ** 2).sum()))
    lp += float(((w - w_hat).abs() ** 0.7).sum())
    tensors[name] = w_hat.to(tensor.dtype)
out.mkdir(parents=True, exist_ok=True)
for f in model.iterdir():
    if f.name != "model.safetensors":
        shutil.copy(f, out / f.name)
save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
print(json.dumps({"bits": bits, "mean_relative_weight_error": sum(errors) / len(errors),
                  "lp07_error": lp, "layers": len(errors)}))
