"""The guide's `AutoModel...from_pretrained(...)` objects go straight into quantize_model."""

import numpy as np
import pytest

import unified_quantization as uq
from conftest import MODEL_DIR

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def test_causal_lm_object_gives_our_logits_and_quantizes(model):
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(MODEL_DIR))
    ids = torch.tensor([[1183, 259, 2430, 424, 3130, 259, 892, 271]])
    qmodel, quantizer = uq.quantize_model(hf, bits=8, backend="mlx")
    expected_q, _ = uq.quantize_model(model, bits=8, backend="mlx")
    np.testing.assert_array_equal(qmodel(ids).numpy(), expected_q(ids).numpy())
    with torch.no_grad():
        theirs = hf(ids).logits.float()
    assert uq.cosine_similarity(qmodel(ids), theirs) > 0.999


def test_bare_automodel_gets_its_head_from_the_checkpoint(model):
    hf = transformers.AutoModel.from_pretrained(str(MODEL_DIR))
    qmodel, _ = uq.quantize_model(hf, bits=4, backend="custom")
    ours, _ = uq.quantize_model(model, bits=4, backend="custom")
    ids = np.array([[5, 6, 7, 8]], dtype=np.int64)
    np.testing.assert_array_equal(qmodel(ids), ours(ids))
