"""numpy in, numpy out; torch tensors accepted (and given back) when torch is installed."""

import numpy as np


def _is_torch_tensor(value) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def to_numpy(value, dtype) -> np.ndarray:
    if _is_torch_tensor(value):
        value = value.detach().cpu()
        if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
            value = value.float()
        value = value.numpy()
    return np.ascontiguousarray(np.asarray(value), dtype=dtype)


def from_numpy_like(result: np.ndarray, like):
    """``result`` as a torch tensor when ``like`` was one, else as it is."""
    if _is_torch_tensor(like):
        import torch
        return torch.from_numpy(result)
    return result
