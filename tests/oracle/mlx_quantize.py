"""MLX affine quantization oracle.

Usage: mlx_quantize.py OUTDIR [MODEL_DIR]

Writes, deterministically:
  OUTDIR/random.safetensors  inputs "w.<dtype>" (f32/f16/bf16, [rows, 384]) with
      outliers, constant, all-zero, all-negative and all-positive rows, and for
      every bits in BITS x group in GROUPS MLX's "q|s|b.<dtype>.b<bits>.g<group>"
      (codes uint32, scales, biases).
  OUTDIR/model.b<bits>.g<group>.safetensors  (with MODEL_DIR) MLX's
      "q|s|b.<name>" for every 2-D weight of the model's model.safetensors.
"""

import os
import sys

import mlx.core as mx
import numpy as np

BITS = [1, 2, 3, 4, 5, 6, 8]
GROUPS = [32, 64, 128]
DTYPES = {"f32": mx.float32, "f16": mx.float16, "bf16": mx.bfloat16}
COLS = 384  # divisible by every group size


def random_matrix(rng):
    rows = [rng.standard_normal(COLS) * 0.05 for _ in range(6)]
    outliers = rng.standard_normal(COLS) * 0.02
    outliers[rng.integers(0, COLS, 7)] = [8.0, -12.0, 30.0, -0.5, 3.0, -25.0, 100.0]
    rows.append(outliers)
    rows.append(np.full(COLS, 0.75))  # constant positive
    rows.append(np.full(COLS, -1.25))  # constant negative
    rows.append(np.zeros(COLS))  # all zero
    rows.append(-np.abs(rng.standard_normal(COLS)) - 0.1)  # all negative
    rows.append(np.abs(rng.standard_normal(COLS)) + 0.1)  # all positive
    rows.append(rng.integers(-8, 8, COLS) * 0.125)  # many exact ties
    rows.append(rng.standard_normal(COLS) * 1e-6)  # tiny range, hits the 1e-7 floor
    return np.stack(rows).astype(np.float32)


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    mx.set_default_device(mx.cpu)
    rng = np.random.default_rng(1234)
    base = random_matrix(rng)
    tensors = {}
    for tag, dtype in DTYPES.items():
        w = mx.array(base).astype(dtype)
        tensors["w." + tag] = w
        for bits in BITS:
            for group in GROUPS:
                q, s, b = mx.quantize(w, group_size=group, bits=bits)
                key = f"{tag}.b{bits}.g{group}"
                tensors["q." + key], tensors["s." + key], tensors["b." + key] = q, s, b
    mx.save_safetensors(os.path.join(outdir, "random.safetensors"), tensors)

    if len(sys.argv) > 2:
        model = mx.load(os.path.join(sys.argv[2], "model.safetensors"))
        matrices = {k: v for k, v in model.items() if v.ndim == 2}
        for bits in BITS:
            for group in GROUPS:
                out = {}
                for name, w in matrices.items():
                    q, s, b = mx.quantize(w, group_size=group, bits=bits)
                    out["q." + name], out["s." + name], out["b." + name] = q, s, b
                path = os.path.join(outdir, f"model.b{bits}.g{group}.safetensors")
                mx.save_safetensors(path, out)


if __name__ == "__main__":
    main()
