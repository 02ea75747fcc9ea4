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
  convert MODEL_DIR OUT_DIR
      model.gguf: the Hugging Face model written with gguf.GGUFWriter the way
      llama.cpp's convert_hf_to_gguf.py writes a Llama (F16 matrices, F32
      norms, q/k rows permuted, gpt2 tokenizer). That script is not on PyPI.
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


def permute_qk(weights, heads):
    # convert_hf_to_gguf.py LlamaModel.permute: pair rotary halves per head.
    rows = weights.shape[0]
    return (weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def read_safetensors_f32(path):
    """(name, float32 array) of a .safetensors file in stored order; bf16 widened
    exactly (numpy has no bfloat16, and importing torch costs seconds)."""
    with open(path, "rb") as f:
        raw = f.read()
    header_length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_length])
    header.pop("__metadata__", None)
    data = raw[8 + header_length:]
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        begin, end = entry["data_offsets"]
        chunk = data[begin:end]
        if entry["dtype"] == "BF16":
            values = (np.frombuffer(chunk, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            values = np.frombuffer(chunk, {"F32": np.float32, "F16": np.float16}[entry["dtype"]])
        yield name, values.astype(np.float32).reshape(entry["shape"])


def convert(model_dir, out_dir):
    import gguf

    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(model_dir, "tokenizer.json")) as f:
        tokenizer = json.load(f)
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    head_dim = config.get("head_dim", config["hidden_size"] // heads)
    rope = config.get("rope_parameters", {})
    writer = gguf.GGUFWriter(os.path.join(out_dir, "model.gguf"), "llama")
    writer.add_name(os.path.basename(model_dir.rstrip("/")))
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(rope.get("rope_theta", config.get("rope_theta", 10000.0)))
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    vocab = tokenizer["model"]["vocab"]
    added = {t["id"]: t for t in tokenizer["added_tokens"]}
    by_id = {i: t for t, i in vocab.items()}
    for i, t in added.items():
        by_id[i] = t["content"]
    tokens, types = [], []
    for i in range(config["vocab_size"]):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added.get(i, {}).get("special")
                         else gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])
    writer.add_add_bos_token(False)

    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight":
             "output_norm.weight", "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
                 "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
                 "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for name, values in read_safetensors_f32(os.path.join(model_dir, "model.safetensors")):
        if name in names:
            gguf_name = names[name]
        else:
            parts = name.split(".")
            layer, module = parts[2], ".".join(parts[3:-1])
            gguf_name = f"blk.{layer}.{per_layer[module]}.weight"
            if module == "self_attn.q_proj":
                values = permute_qk(values, heads)
            elif module == "self_attn.k_proj":
                values = permute_qk(values, kv_heads)
        # The converter keeps 1-D tensors in F32 and writes matrices in F16.
        values = values.astype(np.float32 if values.ndim == 1 else np.float16)
        writer.add_tensor(gguf_name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


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
