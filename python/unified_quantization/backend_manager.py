"""``from unified_quantization.backend_manager import BackendManager``."""

from ._core import BackendManager

__all__ = ["BackendManager"]
