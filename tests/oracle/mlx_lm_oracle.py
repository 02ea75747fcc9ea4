"""mlx-lm as a real client of our files and a producer of its own.

  convert MODEL OUT --bits B --group-size G    quantize an HF model with mlx_lm.convert
  logits MODEL OUT.safetensors --ids 1,2,3 [--adapter DIR]
                                              load with mlx_lm.load (and the LoRA
                                              adapter in mlx-lm's layout), logits in float32

Logits are computed after casting the model's float parameters to float32:
bf16 scales and biases convert exactly, so the dequantized weights are the
ones stored, and the comparison with our float32 forward is not blurred by
bf16 activations.
"""
import argparse
import sys

import mlx.core as mx
import numpy as np


def convert(args):
    from mlx_lm.convert import convert as mlx_convert

    mlx_convert(args.model, mlx_path=args.out, quantize=True,
                q_group_size=args.group_size, q_bits=args.bits)


def logits(args):
    from mlx_lm import load
    from safetensors.numpy import save_file

    model, _ = load(args.model, adapter_path=args.adapter)
    model.set_dtype(mx.float32)
    ids = mx.array([[int(x) for x in args.ids.split(",")]])
    out = model(ids)[0].astype(mx.float32)
    mx.eval(out)
    save_file({"logits": np.array(out)}, args.out)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert")
    c.add_argument("model")
    c.add_argument("out")
    c.add_argument("--bits", type=int, default=4)
    c.add_argument("--group-size", type=int, default=64)
    lg = sub.add_parser("logits")
    lg.add_argument("model")
    lg.add_argument("out")
    lg.add_argument("--ids", required=True)
    lg.add_argument("--adapter", default=None)
    args = parser.parse_args()
    {"convert": convert, "logits": logits}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
