"""GGUF oracles: the `gguf` package (PyPI) and llama.cpp through llama-cpp-python.

Subcommands (each writes only into OUT_DIR):
  read FILE OUT_DIR
      summary.json: version, metadata (arrays as their length plus the first
      and last items, except token_type and merges counts), tensors (name,
      ggml type, shape in ggml order); dequantized.safetensors: every tensor
      dequantized by gguf.quants, float32, shape [rows, row length].
  quantize TYPE IN.safetensors OUT_DIR
      codes.safetensors: tensor "x" of IN (float32 [rows, n]) quantized by
      gguf.quants to TYPE, as uint8 [rows, row bytes].
  convert MODEL_DIR OUTTYPE OUT_DIR
      model.gguf: the Hugging Face model converted by llama.cpp's own
      convert_hf_to_gguf.py (--outtype f16, bf16 or q8_0), the copy that the
      llama-cpp-python sdist vendors, unpacked by scripts/setup.sh into
      UQ_LLAMA_CPP_CONVERTER (default ~/.cache/unified_quantization/llama.cpp-<version>).
      One thing is set by hand: the converter names a BPE pre-tokenizer by hashing
      what a list of known tokenizers make of a test text, and the bundled tiny
      tokenizer is not in its list; its pre-tokenizer is the GPT-2 ByteLevel regex,
      so the converter is told "gpt-2", llama.cpp's name for that regex.
  llama_quantize IN.gguf TYPE OUT_DIR
      model.gguf: IN quantized by llama.cpp's own llama_model_quantize.
  llama_logits IDS OUT_DIR FILE...
      logits_<i>.safetensors: llama.cpp's logits [n, vocab] of the i-th FILE for
      the comma-separated ids.
"""
import json
import os
import sys

import numpy as np


def read(path, out_dir):
    import gguf
    from gguf.quants import dequantize
    from safetensors.numpy import save_file

    reader = gguf.GGUFReader(path)
    metadata = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        value = field.contents()
        if isinstance(value, list):
            value = {"length": len(value), "first": value[:3], "last": value[-3:]}
        metadata[key] = value
    tensors = []
    arrays = {}
    for tensor in reader.tensors:
        shape = [int(d) for d in tensor.shape]
        tensors.append({"name": tensor.name, "type": tensor.tensor_type.name, "shape": shape})
        values = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        arrays[tensor.name] = np.ascontiguousarray(values.reshape(-1, shape[0]))
    summary = {"version": int(reader.fields["GGUF.version"].contents()), "metadata": metadata,
               "tensors": tensors}
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    save_file(arrays, os.path.join(out_dir, "dequantized.safetensors"))


def quantize(type_name, in_path, out_dir):
    import gguf
    from gguf.quants import quantize as gguf_quantize
    from safetensors.numpy import load_file, save_file

    x = load_file(in_path)["x"].astype(np.float32)
    codes = gguf_quantize(x, gguf.GGMLQuantizationType[type_name])
    save_file({"codes": np.ascontiguousarray(codes.view(np.uint8))},
              os.path.join(out_dir, "codes.safetensors"))


def convert(model_dir, outtype, out_dir):
    import importlib.metadata
    import runpy

    version = importlib.metadata.version("llama_cpp_python")
    converter = os.environ.get("UQ_LLAMA_CPP_CONVERTER", os.path.expanduser(
        f"~/.cache/unified_quantization/llama.cpp-{version}"))
    script = os.path.join(converter, "convert_hf_to_gguf.py")
    if not os.path.isfile(script):
        sys.exit(f"{script} is missing: run scripts/setup.sh")
    sys.path[:0] = [os.path.join(converter, "gguf-py"), converter]
    import conversion.base

    for value in vars(conversion.base).values():
        if isinstance(value, type) and "get_vocab_base_pre" in vars(value):
            value.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
    sys.argv = [script, model_dir, "--outtype", outtype, "--outfile",
                os.path.join(out_dir, "model.gguf")]
    runpy.run_path(script, run_name="__main__")


def llama_quantize(in_path, type_name, out_dir):
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{type_name}")
    params.nthread = 1
    out_path = os.path.join(out_dir, "model.gguf")
    status = llama_cpp.llama_model_quantize(in_path.encode(), out_path.encode(), params)
    if status != 0:
        sys.exit(f"llama_model_quantize failed with {status}")


def llama_logits(ids_text, out_dir, *paths):
    import llama_cpp
    from safetensors.numpy import save_file

    ids = [int(i) for i in ids_text.split(",")]
    for index, path in enumerate(paths):
        llm = llama_cpp.Llama(model_path=path, n_ctx=max(len(ids), 16), n_batch=len(ids),
                              n_threads=1, logits_all=True, verbose=False, seed=0)
        llm.eval(ids)
        logits = np.array(llm.scores[: len(ids)], dtype=np.float32)
        save_file({"logits": logits}, os.path.join(out_dir, f"logits_{index}.safetensors"))


def main():
    command, args = sys.argv[1], sys.argv[2:]
    {"read": read, "quantize": quantize, "convert": convert, "llama_quantize": llama_quantize,
     "llama_logits": llama_logits}[command](*args)


if __name__ == "__main__":
    main()
