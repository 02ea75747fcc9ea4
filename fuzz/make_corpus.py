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


def gguf_bytes(metadata, tensors, alignment=32):
    """metadata: [(key, type code, packed value bytes)]; tensors: [(name, dims, ggml type,
    raw bytes)] -> GGUF v3 file bytes (the layout in src/io/formats/gguf_reader.hpp)."""
    def text(value):
        raw = value.encode()
        return struct.pack("<Q", len(raw)) + raw

    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, type_code, value in metadata:
        out += text(key) + struct.pack("<I", type_code) + value
    offset, data = 0, b""
    for name, dims, ggml_type, raw in tensors:
        out += text(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        out += struct.pack("<IQ", ggml_type, offset)
        padded = raw + b"\0" * (-len(raw) % alignment)
        data += padded
        offset += len(padded)
    out += b"\0" * (-len(out) % alignment)
    return out + data


def gguf_string(value):
    raw = value.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf_array(type_code, items):
    return struct.pack("<IQ", type_code, len(items)) + b"".join(items)


def gguf_seeds():
    u32 = lambda v: struct.pack("<I", v)
    f32 = lambda v: struct.pack("<f", v)
    tokens = ["<|endoftext|>", "a", "b", "ab", "Ġ", "Ġab"]
    metadata = [
        ("general.architecture", 8, gguf_string("llama")),
        ("general.alignment", 4, u32(32)),
        ("llama.context_length", 4, u32(64)),
        ("llama.embedding_length", 4, u32(32)),
        ("llama.block_count", 4, u32(1)),
        ("llama.feed_forward_length", 4, u32(64)),
        ("llama.attention.head_count", 4, u32(2)),
        ("llama.attention.head_count_kv", 4, u32(1)),
        ("llama.attention.layer_norm_rms_epsilon", 6, f32(1e-5)),
        ("llama.rope.freq_base", 6, f32(10000.0)),
        ("llama.rope.dimension_count", 4, u32(16)),
        ("tokenizer.ggml.model", 8, gguf_string("gpt2")),
        ("tokenizer.ggml.pre", 8, gguf_string("gpt-2")),
        ("tokenizer.ggml.tokens", 9, gguf_array(8, [gguf_string(t) for t in tokens])),
        ("tokenizer.ggml.token_type", 9, gguf_array(5, [struct.pack("<i", 3)] +
                                                    [struct.pack("<i", 1)] * 5)),
        ("tokenizer.ggml.merges", 9, gguf_array(8, [gguf_string("a b"), gguf_string("Ġ ab")])),
        ("tokenizer.ggml.bos_token_id", 4, u32(0)),
    ]
    norm = struct.pack("<32f", *([1.0] * 32))
    q8_0 = struct.pack("<H", 0x3C00) + bytes(range(32))  # d = 1, q = 0..31
    write("gguf", "tiny_llama", gguf_bytes(metadata, [
        ("token_embd.weight", [32, 6], 8, q8_0 * 6),
        ("output_norm.weight", [32], 0, norm),
        ("blk.0.attn_norm.weight", [32], 0, norm),
    ]))
    # One tensor of every block type the reader knows, with varied bytes.
    pattern = bytes((i * 37 + 11) % 256 for i in range(256))
    blocks = [("f32", [4], 0, 16), ("f16", [4], 1, 8), ("bf16", [4], 30, 8), ("q4_0", [32], 2, 18),
              ("q4_1", [32], 3, 20), ("q5_0", [32], 6, 22), ("q8_0", [32], 8, 34),
              ("q4_k", [256], 12, 144), ("q6_k", [256], 14, 210)]
    write("gguf", "every_type", gguf_bytes(
        [("general.name", 8, gguf_string("types")), ("nested", 9, gguf_array(9, [
            struct.pack("<IQ", 4, 2) + u32(1) + u32(2)]))],
        [(name, dims, code, (pattern * 2)[:size]) for name, dims, code, size in blocks]))
    write("gguf", "no_tensors", gguf_bytes([("general.architecture", 8, gguf_string("llama"))], []))


def main():
    safetensors_seeds()
    index_seeds()
    config_seeds()
    gguf_seeds()
    tokenizer_seeds(sys.argv[1])


if __name__ == "__main__":
    main()
