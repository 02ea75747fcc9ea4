"""compare_backends, BackendManager and the similarity check of the guide."""

import json
import re
import subprocess

import numpy as np
import pytest

import unified_quantization as uq
from conftest import MODEL_DIR, REPO

FIELDS = ["quantize_seconds", "disk_mib", "bits_per_weight", "weights_mib", "peak_memory_mib",
          "prompt_tokens_per_second", "decode_tokens_per_second", "perplexity",
          "cosine_similarity", "kl_divergence"]


def test_compare_backends_returns_a_measured_row_per_backend(model):
    rows = uq.compare_backends(model, input_shape=(1, 64), bits=4, ctx=64, eval_windows=1,
                               decode_tokens=4, data=REPO / "data" / "val.txt")
    assert [r["backend"] for r in rows] == ["float", "mlx", "quanto", "bnb", "custom"]
    for row in rows:
        for field in FIELDS:
            assert isinstance(row[field], float) and np.isfinite(row[field]), (row, field)
        assert row["prompt_tokens_per_second"] > 0 and row["perplexity"] > 1
    assert rows[0]["cosine_similarity"] == pytest.approx(1.0, abs=1e-6)
    assert rows[0]["kl_divergence"] == pytest.approx(0.0, abs=1e-6)
    for row in rows[1:]:
        assert 0.9 < row["cosine_similarity"] < 1.0 and row["kl_divergence"] > 0


def test_compare_backends_without_data_samples_the_float_model(model):
    rows = uq.compare_backends(model, input_shape=(1, 32), bits=8, backends=["mlx"], ctx=32,
                               eval_windows=2, decode_tokens=2)
    assert rows[0]["data"].startswith("sampled from the float model")
    assert rows[1]["cosine_similarity"] > 0.99
    # The float model's own samples are likely under it: perplexity well below val.txt's 53.7.
    assert 1 < rows[0]["perplexity"] < 53


def _status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def test_memory_info_agrees_with_proc_and_both_import_paths_work():
    from backend_manager import BackendManager as FromGuide
    from unified_quantization.backend_manager import BackendManager

    assert FromGuide is BackendManager is uq.BackendManager
    manager = BackendManager.get_instance()
    assert manager is BackendManager.get_instance()
    info = manager.get_memory_info()
    for key in ("total_gb", "available_gb", "used_gb", "process_rss_gb", "process_peak_gb"):
        assert info[key] > 0
    rss_gb = _status_kib("VmRSS") / 2**20
    assert info["process_rss_gb"] == pytest.approx(rss_gb, rel=0.05)
    meminfo = dict(line.split(":", 1) for line in open("/proc/meminfo"))
    assert info["total_gb"] == pytest.approx(int(meminfo["MemTotal"].split()[0]) / 2**20, rel=1e-3)
    assert manager.cpu()["threads"] >= 1
    assert [b["name"] for b in manager.backends()] == ["mlx", "quanto", "bnb", "custom"]
    big = np.ones(300 * 2**20 // 8)  # 300 MiB touched
    assert manager.get_memory_info()["process_peak_gb"] >= info["process_rss_gb"] + 0.25
    del big


def test_guide_similarity_check_equals_uq_eval_reference(model, tmp_path, uq_command):
    torch = pytest.importorskip("torch")
    qmodel, quantizer = uq.quantize_model(model, bits=4, backend="mlx")
    quantizer.save_model(qmodel, tmp_path / "q4")
    # One evaluation window of 128 tokens: eval compares the logits of its first 127 positions.
    ids = model.encode((REPO / "data" / "val.txt").read_text())[:128]
    (tmp_path / "window.txt").write_text(model.decode(ids))
    assert model.encode((tmp_path / "window.txt").read_text()) == ids
    window = torch.tensor([ids])
    with torch.no_grad():
        original_output = model(window)[:, :127]
        quantized_output = qmodel(window)[:, :127]
    similarity = torch.cosine_similarity(original_output.flatten(), quantized_output.flatten(),
                                         dim=0).item()
    report = subprocess.run([uq_command, "eval", str(tmp_path / "q4"), "--data",
                             str(tmp_path / "window.txt"), "--ctx", "128", "--reference",
                             str(MODEL_DIR), "--json"], capture_output=True, text=True, check=True)
    expected = json.loads(report.stdout)["cosine_similarity"]
    # torch sums 520K float32 products in float32: agreement to its rounding (~1e-5)...
    assert similarity == pytest.approx(expected, abs=2e-5)
    # ...and, accumulated in double as we do, to float32 output rounding.
    exact = torch.cosine_similarity(original_output.double().flatten(),
                                    quantized_output.double().flatten(), dim=0).item()
    assert exact == pytest.approx(expected, abs=1e-6)
    assert uq.cosine_similarity(original_output, quantized_output) == pytest.approx(expected,
                                                                                     abs=1e-6)
    assert 0.95 < similarity < 1.0
