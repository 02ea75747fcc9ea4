"""A transformers model object (on the CPU) handed to the C++ library: its
config and state dict, copied into our weights. No import of transformers here:
the object is recognised by what it has."""

import json
import os

import numpy as np

from . import _core

_DTYPES = {"torch.float32": ("F32", None), "torch.float16": ("F16", "int16"),
           "torch.bfloat16": ("BF16", "int16")}


def is_transformers_model(obj) -> bool:
    return hasattr(obj, "state_dict") and hasattr(obj, "config") and \
        hasattr(obj.config, "to_dict")


def _tensor_entry(name, tensor):
    tensor = tensor.detach().cpu().contiguous()
    kind = str(tensor.dtype)
    if kind not in _DTYPES:
        raise TypeError(f"tensor '{name}': dtype {kind} is not a float dtype the library reads")
    dtype, view = _DTYPES[kind]
    if view is not None:
        import torch
        array = tensor.view(getattr(torch, view)).numpy()
    else:
        array = tensor.numpy()
    return dtype, np.ascontiguousarray(array)


def model_from_transformers(hf_model):
    config = hf_model.config.to_dict()
    config = json.loads(json.dumps(config, default=str))
    source = getattr(hf_model, "name_or_path", "") or config.get("_name_or_path", "")
    tensors = {}
    for name, tensor in hf_model.state_dict().items():
        # AutoModel gives the bare decoder ("layers.0..."): the checkpoint names
        # carry the "model." prefix.
        full = name if name.startswith(("model.", "lm_head.")) else "model." + name
        tensors[full] = _tensor_entry(name, tensor)
    if "lm_head.weight" not in tensors and not config.get("tie_word_embeddings", False):
        tensors["lm_head.weight"] = _lm_head_from_checkpoint(source)
    tokenizer = os.path.join(source, "tokenizer.json") if source else ""
    return _core.model_from_tensors(config, tensors,
                                    tokenizer if tokenizer and os.path.isfile(tokenizer) else "")


def _lm_head_from_checkpoint(source):
    """AutoModel drops the language-model head; read it from the checkpoint the
    model came from (torch is there: the model object is a torch module)."""
    if not source or not os.path.isdir(source):
        raise _core.UQError("transformers model: no lm_head (it was loaded with AutoModel and its "
                            "source directory is unknown); load it with AutoModelForCausalLM")
    from safetensors import safe_open
    for name in sorted(os.listdir(source)):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(source, name), framework="pt") as f:
                if "lm_head.weight" in f.keys():
                    return _tensor_entry("lm_head.weight", f.get_tensor("lm_head.weight"))
    raise _core.UQError(f"transformers model: no lm_head.weight in {source}")
