"""unified_quantization: quantize a Hugging Face language model in one call.

The names follow the migration guide the C++ library implements::

    from unified_quantization import load_model, quantize_model, UnifiedQuantizationConfig
    model = load_model("models/tiny-llama")
    qmodel, quantizer = quantize_model(model, bits=4, backend="auto")
    quantizer.save_model(qmodel, "model_quantized")
    again = quantizer.load_model("model_quantized")

Arrays go in as numpy arrays, lists or torch tensors and come back as numpy
arrays (torch tensors when a torch tensor went in). Errors from the library
raise UQError (a RuntimeError) with the library's message.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from . import _core
from ._arrays import from_numpy_like, to_numpy
from ._transformers import is_transformers_model, model_from_transformers
from ._core import UQError, UnifiedQuantizationConfig

__all__ = [
    "BackendManager",
    "Model",
    "Quantizer",
    "UQError",
    "UnifiedQuantizationConfig",
    "compare_backends",
    "cosine_similarity",
    "load_model",
    "mean_kl_divergence",
    "quantize_model",
]


class Model:
    """A loaded (float or quantized) model; ``model(input_ids)`` returns logits."""

    def __init__(self, core: _core.Model):
        self._core = core

    def __call__(self, input_ids):
        """Logits [batch, sequence, vocab] (float32) for ids [batch, sequence]; [sequence, vocab] for 1-D ids."""
        ids = to_numpy(input_ids, np.int64)
        return from_numpy_like(self._core.forward(ids), input_ids)

    forward = __call__

    def generate(self, input_ids=None, max_new_tokens: int = 32, temperature: float = 0.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int = 0, stop_at_eos: bool = True,
                 prompt: Optional[str] = None, do_sample: Optional[bool] = None):
        """Continues the prompt. Ids in ([sequence] or [1, sequence]) give ids out, prompt
        ids followed by the new ones, as transformers does; a str prompt gives text out."""
        if do_sample is False:
            temperature = 0.0
        if isinstance(input_ids, str):
            prompt, input_ids = input_ids, None
        if prompt is not None:
            ids = self._core.encode(prompt)
            out = self._core.generate(ids, max_new_tokens, temperature, top_k, top_p, seed,
                                      stop_at_eos)
            return self._core.decode(out, True)
        array = to_numpy(input_ids, np.int64)
        if array.ndim == 2 and array.shape[0] != 1:
            raise ValueError("generate: one prompt at a time (input_ids of shape [1, sequence])")
        out = self._core.generate(array.reshape(-1).tolist(), max_new_tokens, temperature, top_k,
                                  top_p, seed, stop_at_eos)
        result = np.asarray(out, dtype=np.int64).reshape((1, -1) if array.ndim == 2 else (-1,))
        return from_numpy_like(result, input_ids)

    def encode(self, text: str) -> list:
        return self._core.encode(text)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self._core.decode(to_numpy(ids, np.int64).reshape(-1).tolist(), skip_special_tokens)

    def perplexity(self, text_or_path, ctx: int = 256) -> dict:
        """Perplexity (DESIGN.md §4.2 protocol) of a text, or of the text file at a path."""
        text = text_or_path
        if isinstance(text_or_path, os.PathLike) or (isinstance(text_or_path, str)
                                                     and os.path.isfile(text_or_path)):
            with open(text_or_path, encoding="utf-8") as f:
                text = f.read()
        return self._core.perplexity(self._core.encode(text), ctx)

    @property
    def config(self) -> dict:
        return self._core.config

    def export_gguf(self, path, type: str = "Q4_K_M") -> dict:
        """Writes the model as a GGUF file for llama.cpp (type: F32, F16, BF16, Q8_0, Q4_0,
        Q4_1, Q5_0, Q6_K, Q4_K or the Q4_K_M recipe); quantized weights are dequantized first."""
        return _core.export_gguf(self._core, os.fspath(path), type)

    def weights(self) -> list:
        """One dict per weight matrix: path, scheme, shape, bytes."""
        return self._core.weights()

    def __repr__(self) -> str:
        cfg = self._core.config
        schemes = sorted({w["scheme"] for w in self._core.weights()})
        return (f"Model({cfg.get('model_type')}, {cfg.get('num_hidden_layers')} layers, "
                f"weights: {', '.join(schemes)})")


class Quantizer:
    """Saves a quantized model in its backend's native layout and loads it back."""

    def __init__(self, core: _core.Quantizer):
        self._core = core

    @property
    def config(self) -> UnifiedQuantizationConfig:
        return self._core.config

    @property
    def report(self) -> dict:
        """What happened to each layer, the backend chosen and why, the time taken."""
        return self._core.report

    def save_model(self, model: Model, directory) -> None:
        self._core.save_model(_core_model(model), os.fspath(directory))

    def load_model(self, directory) -> Model:
        return Model(self._core.load_model(os.fspath(directory)))


def load_model(path) -> Model:
    """A Hugging Face directory, a directory written by any backend's save_model, or a
    llama.cpp GGUF file."""
    return Model(_core.load_model(os.fspath(path)))


def quantize_model(model_or_path, bits: Optional[int] = None, backend: Optional[str] = None,
                   config: Optional[UnifiedQuantizationConfig] = None,
                   enable_lora: Optional[bool] = None, lora_rank: Optional[int] = None,
                   **options: Any):
    """Quantizes a model (ours, a transformers model object, or a path) and returns
    ``(quantized_model, quantizer)``. Keyword options are UnifiedQuantizationConfig fields;
    those given explicitly override ``config``. The original model is left untouched."""
    cfg = _merged_config(config, bits=bits, backend=backend, enable_lora=enable_lora,
                         lora_rank=lora_rank, **options)
    if isinstance(model_or_path, (str, os.PathLike)):
        qmodel, quantizer = _core.quantize_model_from_path(os.fspath(model_or_path), cfg)
    else:
        qmodel, quantizer = _core.quantize_model(_core_model(model_or_path), cfg)
    return Model(qmodel), Quantizer(quantizer)


def compare_backends(model, input_shape: Sequence[int] = (1, 512), bits: int = 4,
                     backends: Optional[Iterable[str]] = None, device: str = "cpu",
                     group_size: int = 64, data=None, ctx: int = 256, eval_windows: int = 4,
                     decode_tokens: int = 32) -> list:
    """The float model and every backend measured side by side: one dict per row
    (quantize time, size, bits per weight, peak memory, prompt and decode tokens/s,
    perplexity, cosine similarity and KL divergence of logits against the original).
    Without ``data`` the evaluation text is sampled from the float model itself."""
    result = _core.compare_backends(_core_model(model), list(input_shape), bits,
                                    list(backends or []), device, group_size,
                                    "" if data is None else os.fspath(data), ctx, eval_windows,
                                    decode_tokens)
    for row in result["rows"]:
        row["input_shape"] = result["input_shape"]
        row["data"] = result["data"]
    return result["rows"]


def cosine_similarity(a, b) -> float:
    """Cosine similarity of two arrays (flattened), accumulated in double."""
    return _core.cosine_similarity(to_numpy(a, np.float32), to_numpy(b, np.float32))


def mean_kl_divergence(reference_logits, candidate_logits) -> float:
    """Mean over positions of KL(softmax(reference) || softmax(candidate))."""
    return _core.mean_kl_divergence(to_numpy(reference_logits, np.float32),
                                    to_numpy(candidate_logits, np.float32))


BackendManager = _core.BackendManager


def _core_model(model) -> _core.Model:
    if isinstance(model, Model):
        return model._core
    if isinstance(model, _core.Model):
        return model
    if is_transformers_model(model):
        return model_from_transformers(model)
    raise TypeError(f"expected a unified_quantization Model, a transformers model or a path, "
                    f"got {type(model).__name__}")


def _merged_config(config: Optional[UnifiedQuantizationConfig], **given: Any):
    cfg = UnifiedQuantizationConfig(**config.to_dict()) if config is not None \
        else UnifiedQuantizationConfig()
    for name, value in given.items():
        if value is None:
            continue
        if not hasattr(cfg, name):
            raise TypeError(f"quantize_model: unknown option '{name}'")
        setattr(cfg, name, value)
    return cfg
