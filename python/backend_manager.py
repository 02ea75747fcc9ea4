"""``from backend_manager import BackendManager``, as the migration guide writes it."""

from unified_quantization.backend_manager import BackendManager

__all__ = ["BackendManager"]
