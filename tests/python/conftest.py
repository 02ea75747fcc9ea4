"""Shared fixtures: the repository paths, the bundled model loaded once, and
the `uq` command of the same build as the module under test."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("UQ_BUILD_DIR", REPO / "build")).resolve()
MODEL_DIR = REPO / "models" / "tiny-llama"


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def uq_command():
    path = BUILD / "uq"
    if not path.exists():
        pytest.skip(f"{path} is not built")
    return str(path)


@pytest.fixture(scope="session")
def model():
    import unified_quantization as uq
    return uq.load_model(MODEL_DIR)


@pytest.fixture(scope="session")
def reference_logits():
    from safetensors.numpy import load_file
    return load_file(str(REPO / "tests" / "data" / "logits.safetensors"))
