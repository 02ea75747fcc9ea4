"""Regenerates the seed corpora in fuzz/corpus/ (committed; run only to refresh).

Usage: make_corpus.py TOKENIZER_ORACLE_DIR
(config/tiny_llama is a copy of models/tiny-llama/config.json.)
TOKENIZER_ORACLE_DIR holds the output of tests/oracle/tokenizer_oracle.py; its
tokenizers are cut down to their first vocabulary entries and the merges among
them so that each seed stays a few KB. Plain Python, deterministic.
"""
import json
import struct
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def safetensors_bytes(tensors, metadata=None):
    """tensors: [(name, dtype, shape, raw bytes)] -> file bytes (8-byte aligned header)."""
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)


def write(target, name, data):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def safetensors_seeds():
    f32 = struct.pack("<4f", 1.0, -2.5, 3.0e-5, 65504.0)
    bf16 = struct.pack("<4H", 0x3F80, 0xC020, 0x7F80, 0x0001)
    write("safetensors", "two_tensors", safetensors_bytes(
        [("w", "F32", [2, 2], f32), ("b", "BF16", [4], bf16)], {"format": "pt"}))
    write("safetensors", "every_dtype", safetensors_bytes([
        ("bool", "BOOL", [2], b"\x00\x01"), ("u8", "U8", [3], b"\x01\x02\x03"),
        ("i8", "I8", [1], b"\xff"), ("i16", "I16", [1], b"\x01\x80"),
        ("i32", "I32", [1], b"\x01\x00\x00\x80"), ("i64", "I64", [1], b"\x00" * 8),
        ("f16", "F16", [2], struct.pack("<2e", 1.5, -0.25)),
        ("f64", "F64", [1], struct.pack("<d", 2.0)),
        ("e4m3", "F8_E4M3", [2], b"\x38\xb8"), ("e5m2", "F8_E5M2", [2], b"\x3c\x7c")]))
    write("safetensors", "empty_and_scalar", safetensors_bytes(
        [("empty", "F32", [0, 5], b""), ("scalar", "F16", [], struct.pack("<e", 7.0))]))
    write("safetensors", "no_tensors", safetensors_bytes([], {"k": "v"}))


def index_seeds():
    shard = "model-00001-of-00001.safetensors"
    write("checkpoint_index", "valid", json.dumps(
        {"metadata": {"total_size": 32}, "weight_map": {"a": shard, "b": shard}}))
    write("checkpoint_index", "partial", json.dumps({"weight_map": {"a": shard}}))
    write("checkpoint_index", "escape", json.dumps(
        {"weight_map": {"a": shard, "c": "../outside/secret.safetensors"}}))
    write("checkpoint_index", "missing_shard", json.dumps(
        {"weight_map": {"a": shard, "z": "model-00002-of-00002.safetensors"}}))


def config_seeds():
    base = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
            "num_key_value_heads": 2, "num_hidden_layers": 3, "vocab_size": 100,
            "rms_norm_eps": 1e-5, "max_position_embeddings": 256, "torch_dtype": "bfloat16"}
    seeds = {
        "llama3_rope": {"model_type": "llama", "bos_token_id": 1, "eos_token_id": [2, 3],
                        "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                         "original_max_position_embeddings": 8192},
                        "attention_bias": True, "mlp_bias": True, "tie_word_embeddings": True},
        "linear_rope_head_dim": {"model_type": "llama", "head_dim": 32,
                                 "rope_scaling": {"type": "linear", "factor": 2.0}},
        "mistral_window": {"model_type": "mistral", "sliding_window": 128},
        "mistral_no_window": {"model_type": "mistral", "sliding_window": None},
        "qwen2_layer_types": {"model_type": "qwen2", "use_sliding_window": True,
                              "sliding_window": 64, "max_window_layers": 1,
                              "layer_types": ["full_attention", "sliding_attention",
                                              "sliding_attention"]},
    }
    for name, fields in seeds.items():
        write("config", name, json.dumps({**base, **fields}))


def shrink_tokenizer(spec, keep):
    model = spec["model"]
    vocab = {token: i for token, i in model["vocab"].items() if i < keep}
    merges = []
    for merge in model.get("merges", []):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        if left in vocab and right in vocab and left + right in vocab:
            merges.append(merge)
    model["vocab"], model["merges"] = vocab, merges
    spec["added_tokens"] = [t for t in spec.get("added_tokens") or [] if t["id"] < keep + 8]
    return spec


def tokenizer_seeds(oracle_dir):
    for path in sorted(Path(oracle_dir).glob("*.json")):
        if path.name == "expected.json":
            continue
        spec = json.loads(path.read_text())
        byte_level = len(spec["model"]["vocab"]) > 256 and "Ġ" in spec["model"]["vocab"]
        spec = shrink_tokenizer(spec, 300 if byte_level else 120)
        text = "Hello world, don't 123 café  日本\n"
        write("tokenizer", path.stem, json.dumps(spec, ensure_ascii=False) + "\0" + text)


def main():
    safetensors_seeds()
    index_seeds()
    config_seeds()
    tokenizer_seeds(sys.argv[1])


if __name__ == "__main__":
    main()
