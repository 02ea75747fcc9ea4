"""The migration guide's steps, end to end, on the bundled model.

    python examples/migration.py        (with the module built: PYTHONPATH=build/python)

Writes into $UQ_EXAMPLE_OUT (default: a temporary directory).
"""

import os
import pathlib
import tempfile

import numpy as np

from backend_manager import BackendManager
from unified_quantization import (UnifiedQuantizationConfig, compare_backends, load_model,
                                  quantize_model)

REPO = pathlib.Path(__file__).resolve().parents[1]
OUT = pathlib.Path(os.environ.get("UQ_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="uq-example-"))

# 1. Load the model (a Hugging Face directory; a transformers model object works too).
model = load_model(REPO / "models" / "tiny-llama")

# 2. One call: 4 bits, the backend chosen for this machine.
quantized_model, quantizer = quantize_model(model, bits=4, backend="auto")
print(f"backend: {quantizer.report['backend']} ({quantizer.report['backend_reason']})")

# 3. Save in the backend's own layout and load it back.
quantizer.save_model(quantized_model, OUT / "model_quantized")
loaded_model = quantizer.load_model(OUT / "model_quantized")

# 4. Mixed precision: a config with per-layer bits.
config = UnifiedQuantizationConfig(backend="mlx", default_bits=4, group_size=64,
                                   layer_bits={"embed": 8, "lm_head": 8, "model.layers.0": 6})
mixed_model, mixed_quantizer = quantize_model(model, config=config)
print(f"mixed: {mixed_quantizer.report['bits_per_quantized_weight']:.2f} bits per weight")

# 5. Validate: the quantized model's outputs against the original's.
input_ids = np.array([model.encode("The quick brown fox jumps over the lazy dog.")])
original_output = model(input_ids)
quantized_output = loaded_model(input_ids)
try:
    import torch
    similarity = torch.cosine_similarity(torch.from_numpy(original_output).flatten(),
                                         torch.from_numpy(quantized_output).flatten(), dim=0).item()
except ImportError:
    a, b = original_output.ravel().astype(np.float64), quantized_output.ravel().astype(np.float64)
    similarity = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
print(f"similarity: {similarity:.6f}")

# 6. Compare the backends and look at memory.
for row in compare_backends(model, input_shape=(1, 64), bits=4, ctx=64, eval_windows=1,
                            decode_tokens=4):
    print(f"{row['backend']:>7}: {row['bits_per_weight']:5.2f} bits/weight, "
          f"ppl {row['perplexity']:7.3f}, cosine {row['cosine_similarity']:.5f}, "
          f"decode {row['decode_tokens_per_second']:8.1f} tok/s")
memory = BackendManager.get_instance().get_memory_info()
print(f"memory: {memory['used_gb']:.2f} of {memory['total_gb']:.2f} GB used, "
      f"this process {memory['process_rss_gb']:.3f} GB")

# 7. Generate with the quantized model.
print(loaded_model.generate("Once upon a time", max_new_tokens=16))
