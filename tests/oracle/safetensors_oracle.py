"""Oracle for the safetensors reader and writer, using the official package.

  safetensors_oracle.py write OUT_DIR
      Writes OUT_DIR/official.safetensors (every dtype, with metadata) with
      safetensors.torch.save_file and OUT_DIR/expected.json holding, per tensor,
      its dtype, shape and values (as float64, exact for every stored dtype).
  safetensors_oracle.py read FILE OUT_JSON
      Loads FILE with safetensors.safe_open (which validates the header as the
      official library does) and writes what it read to OUT_JSON in the same
      form, plus "__metadata__".
"""

import json
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

DTYPE_NAMES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.uint32: "U32",
    torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
}


def describe(tensor):
    return {
        "dtype": DTYPE_NAMES[tensor.dtype],
        "shape": list(tensor.shape),
        "values": tensor.to(torch.float64).flatten().tolist(),
    }


def official_tensors():
    generator = torch.Generator().manual_seed(1234)
    floats = torch.randn(3, 5, generator=generator, dtype=torch.float64) * 10
    integers = torch.randint(-100, 100, (4, 3), generator=generator, dtype=torch.int64)
    return {
        "f64": floats,
        "f32": floats.to(torch.float32),
        "f16": floats.to(torch.float16),
        "bf16": floats.to(torch.bfloat16),
        "f8_e4m3": floats.to(torch.float8_e4m3fn),
        "f8_e5m2": floats.to(torch.float8_e5m2),
        "i64": integers * 1_000_000_007,
        "i32": integers * 1_000_007,
        "i16": integers * 300,
        "i8": integers,
        "u8": (integers + 100).to(torch.uint8),
        "u32": (integers + 100).mul(20_000_000).to(torch.uint32),
        "bool": integers > 0,
        "scalar": torch.tensor(2.5, dtype=torch.float32),
        "empty": torch.zeros(0, 7, dtype=torch.bfloat16),
        "model.layers.0.mlp.down_proj.weight": floats.t().contiguous().to(torch.bfloat16),
    }


def write(out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = official_tensors()
    metadata = {"format": "pt", "source": "safetensors_oracle.py"}
    save_file(tensors, str(out_dir / "official.safetensors"), metadata=metadata)
    expected = {name: describe(tensor) for name, tensor in tensors.items()}
    expected["__metadata__"] = metadata
    (out_dir / "expected.json").write_text(json.dumps(expected))


def read(path, out_json):
    result = {}
    with safe_open(path, framework="pt") as handle:
        result["__metadata__"] = handle.metadata() or {}
        for name in handle.keys():
            result[name] = describe(handle.get_tensor(name))
    Path(out_json).write_text(json.dumps(result))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "read":
        read(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
