"""Regenerates fuzz/corpus/quantized_layout/ (committed; run only to refresh).

Usage: make_layout_corpus.py PATH/TO/uq
Writes a random one-block llama (width 64, the shape fuzz_quantized_layout.cpp
assumes) as a float checkpoint, quantizes it with `uq quantize` in every
layout, and frames each result as the target's input: [u32 length][the
config's quantization keys as JSON][model.safetensors]. Needs numpy.
"""
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CORPUS = HERE / "corpus" / "quantized_layout"
LAYOUTS = [("mlx", 4, 32), ("mlx", 3, 32), ("mlx", 8, 64), ("quanto", 2, 0), ("quanto", 4, 0),
           ("quanto", 8, 0), ("bnb", 4, 64), ("bnb", 8, 0), ("custom", 4, 0), ("custom", 8, 0)]


def safetensors_bytes(tensors):
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def tiny_model(directory):
    config = json.loads((REPO / "models" / "tiny-llama" / "config.json").read_text())
    config.update(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=1, head_dim=32, vocab_size=64,
                  max_position_embeddings=64, dtype="float32")
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "tokenizer.json").write_text(
        (REPO / "models" / "tiny-llama" / "tokenizer.json").read_text())
    rng = np.random.default_rng(0)
    shapes = {"model.embed_tokens": (64, 64), "lm_head": (64, 64),
              "model.layers.0.self_attn.q_proj": (64, 64),
              "model.layers.0.self_attn.k_proj": (32, 64),
              "model.layers.0.self_attn.v_proj": (32, 64),
              "model.layers.0.self_attn.o_proj": (64, 64),
              "model.layers.0.mlp.gate_proj": (128, 64), "model.layers.0.mlp.up_proj": (128, 64),
              "model.layers.0.mlp.down_proj": (64, 128)}
    tensors = {f"{name}.weight": rng.standard_normal(shape) * 0.05 for name, shape in shapes.items()}
    for norm in ("model.norm", "model.layers.0.input_layernorm",
                 "model.layers.0.post_attention_layernorm"):
        tensors[f"{norm}.weight"] = np.ones(64)
    (directory / "model.safetensors").write_bytes(safetensors_bytes(tensors))


def main(uq):
    CORPUS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "float").mkdir()
        tiny_model(scratch / "float")
        for backend, bits, group in LAYOUTS:
            out = scratch / f"{backend}{bits}"
            command = [uq, "quantize", str(scratch / "float"), "-o", str(out), "--bits", str(bits),
                       "--backend", backend, "--quiet"]
            if group:
                command += ["--group-size", str(group)]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            config = json.loads((out / "config.json").read_text())
            keys = {k: v for k, v in config.items() if k in ("quantization", "quantization_config")}
            text = json.dumps(keys, separators=(",", ":")).encode()
            seed = struct.pack("<I", len(text)) + text + (out / "model.safetensors").read_bytes()
            (CORPUS / f"{backend}{bits}").write_bytes(seed)


if __name__ == "__main__":
    main(sys.argv[1])
