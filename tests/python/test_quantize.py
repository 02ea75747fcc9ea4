"""UnifiedQuantizationConfig, quantize_model, Quantizer.save_model/load_model."""

import numpy as np
import pytest

import unified_quantization as uq
from conftest import MODEL_DIR


def test_config_takes_the_guide_keywords():
    cfg = uq.UnifiedQuantizationConfig(backend="mlx", bits=4, default_bits=4,
                                       layer_bits={"lm_head": 8, "embed": 8}, group_size=64,
                                       method="rtn", calibration_samples=16,
                                       memory_efficient=False, chunk_size=256,
                                       enable_lora=False, lora_rank=16)
    assert cfg.backend == "mlx" and cfg.layer_bits == {"embed": 8, "lm_head": 8}
    assert cfg.to_dict()["group_size"] == 64
    assert "backend" in repr(cfg)
    with pytest.raises(TypeError, match="unknown option 'bitz'"):
        uq.UnifiedQuantizationConfig(bitz=4)
    with pytest.raises(uq.UQError, match="bits"):
        uq.UnifiedQuantizationConfig(bits=9).validate()


@pytest.mark.parametrize("backend,bits", [("mlx", 4), ("mlx", 8), ("quanto", 8), ("quanto", 4),
                                          ("bnb", 4), ("bnb", 8), ("custom", 4), ("custom", 8)])
def test_save_and_load_give_identical_logits(model, tmp_path, backend, bits):
    qmodel, quantizer = uq.quantize_model(model, bits=bits, backend=backend)
    assert quantizer.report["backend"] == backend
    assert quantizer.report["quantized_parameters"] > 0
    ids = np.array([[1183, 259, 2430, 424, 3130, 259, 892]], dtype=np.int64)
    before = qmodel(ids)
    quantizer.save_model(qmodel, tmp_path / "q")
    again = quantizer.load_model(tmp_path / "q")
    np.testing.assert_array_equal(again(ids), before)
    reference = model(ids)
    assert uq.cosine_similarity(before, reference) > (0.99 if bits == 8 else 0.95)


def test_auto_says_why_and_explicit_options_override_config(model):
    cfg = uq.UnifiedQuantizationConfig(backend="custom", bits=8)
    qmodel, quantizer = uq.quantize_model(model, config=cfg, bits=4)
    assert quantizer.config.bits == 4 and quantizer.config.backend == "custom"
    _, auto = uq.quantize_model(model, bits=4, backend="auto")
    assert auto.report["backend"] == "mlx" and auto.report["backend_reason"]


def test_layer_bits_reach_the_layers(model):
    qmodel, quantizer = uq.quantize_model(model, backend="mlx", default_bits=4,
                                          layer_bits={"lm_head": 8, "model.layers.0": 6})
    schemes = {w["path"]: w["scheme"] for w in qmodel.weights()}
    assert schemes["lm_head"] == "affine b8 g64"
    assert schemes["model.layers.0.mlp.up_proj"] == "affine b6 g64"
    assert schemes["model.layers.1.mlp.up_proj"] == "affine b4 g64"


def test_quantize_from_a_path(tmp_path):
    qmodel, quantizer = uq.quantize_model(str(MODEL_DIR), bits=8, backend="mlx")
    assert {w["scheme"] for w in qmodel.weights()} == {"affine b8 g64"}


def test_bad_options_raise_with_the_option_named(model):
    with pytest.raises(uq.UQError, match="backend"):
        uq.quantize_model(model, backend="nope")
    with pytest.raises(uq.UQError, match="group size 48"):
        uq.quantize_model(model, backend="mlx", group_size=48)
    with pytest.raises(TypeError):
        uq.quantize_model(model, colour="blue")
    with pytest.raises(TypeError, match="expected"):
        uq.quantize_model(object())


def test_calibrated_quantization_from_python(model, tmp_path, repo):
    text = (repo / "data" / "train.txt").read_text()[:60000]
    (tmp_path / "calib.txt").write_text(text)
    qmodel, quantizer = uq.quantize_model(model, bits=3, backend="mlx", method="gptq",
                                          calibration_data=str(tmp_path / "calib.txt"),
                                          calibration_samples=4, calibration_ctx=64, seed=1,
                                          layer_bits={"embed": 16, "lm_head": 16})
    layers = {l["path"]: l for l in quantizer.report["layers"]}
    down = layers["model.layers.0.mlp.down_proj"]
    assert down["scheme"] == "affine b3 g64" and down["method"] == "gptq"
    assert 0 < down["reconstruction_error"] < 1
    ids = np.array([[1183, 259, 2430, 424, 3130, 259, 892]], dtype=np.int64)
    assert uq.cosine_similarity(qmodel(ids), model(ids)) > 0.95


def test_gguf_round_trip_from_python(model, tmp_path):
    report = model.export_gguf(tmp_path / "m.gguf", "Q8_0")
    assert report["file_bytes"] > 0 and not report["dequantized"]
    again = uq.load_model(tmp_path / "m.gguf")
    ids = np.array([[1183, 259, 2430, 424, 3130]], dtype=np.int64)
    assert uq.cosine_similarity(again(ids), model(ids)) > 0.999
    with pytest.raises(uq.UQError, match="not a GGUF type"):
        model.export_gguf(tmp_path / "x.gguf", "Q3_K")
