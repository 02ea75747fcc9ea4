"""load_model, model(input_ids), generate, the tokenizer, perplexity and errors."""

import json

import numpy as np
import pytest

import unified_quantization as uq
from conftest import MODEL_DIR, REPO


def test_logits_match_transformers_reference(model, reference_logits):
    for i in range(4):
        ids = reference_logits[f"prompt{i}.ids"].astype(np.int64)
        want = reference_logits[f"prompt{i}.logits"]
        got = model(ids[None, :])
        assert got.dtype == np.float32 and got.shape == (1,) + want.shape
        rel = np.linalg.norm(got[0] - want) / np.linalg.norm(want)
        assert rel <= 1e-4, f"prompt{i}: relative L2 {rel}"
        assert np.abs(got[0] - want).max() <= 1e-3


def test_one_dimensional_ids_and_lists_give_the_same_logits(model, reference_logits):
    ids = reference_logits["prompt0.ids"]
    batched = model(ids[None, :].astype(np.int64))
    np.testing.assert_array_equal(model(ids), batched[0])
    np.testing.assert_array_equal(model(ids.tolist()), batched[0])


def test_batch_rows_are_independent(model, reference_logits):
    a = reference_logits["prompt1.ids"][:16]
    b = reference_logits["prompt3.ids"][:16]
    both = model(np.stack([a, b]))
    np.testing.assert_array_equal(both[0], model(a))
    np.testing.assert_array_equal(both[1], model(b))


def test_greedy_generation_matches_transformers(model):
    refs = json.loads((REPO / "tests" / "data" / "refs.json").read_text())["greedy_prompt0"]
    prompt = np.array([refs["prompt_ids"]], dtype=np.int64)
    out = model.generate(prompt, max_new_tokens=len(refs["output_ids"]) - prompt.shape[1],
                         stop_at_eos=False)
    assert out.shape == (1, len(refs["output_ids"]))
    assert out[0].tolist() == refs["output_ids"]


def test_text_generation_and_tokenizer_round_trip(model):
    refs = json.loads((REPO / "tests" / "data" / "refs.json").read_text())
    for case in refs["tokenizer_cases"]:
        assert model.encode(case["text"]) == case["ids"]
        assert model.decode(case["ids"]) == case["decoded"]
    text = model.generate("Once upon a time", max_new_tokens=8)
    assert text.startswith("Once upon a time") and len(text) > len("Once upon a time")


def test_perplexity_follows_the_protocol(model, tmp_path):
    text = (REPO / "data" / "val.txt").read_text()[:6000]
    ids = np.array(model.encode(text), dtype=np.int64)
    ctx, windows = 64, len(ids) // 64
    nll = []
    for w in range(windows):
        logits = model(ids[w * ctx:(w + 1) * ctx]).astype(np.float64)
        log_probs = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1,
                                    keepdims=True)) - logits.max(1, keepdims=True)
        nll += [-log_probs[i, ids[w * ctx + i + 1]] for i in range(ctx - 1)]
    (tmp_path / "text.txt").write_text(text)
    for source in (text, tmp_path / "text.txt"):
        result = model.perplexity(source, ctx=ctx)
        assert result["windows"] == windows and result["tokens"] == windows * (ctx - 1)
        assert result["perplexity"] == pytest.approx(np.exp(np.mean(nll)), rel=1e-5)


def test_config_is_the_checkpoint_config(model):
    assert model.config["hidden_size"] == 256
    assert model.config["num_hidden_layers"] == 4
    assert {w["scheme"] for w in model.weights()} == {"bf16"}


def test_errors_become_uqerror_with_the_library_message(model, tmp_path):
    with pytest.raises(uq.UQError, match="model directory not found"):
        uq.load_model(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(uq.UQError, match="config.json"):
        uq.load_model(tmp_path)
    with pytest.raises(uq.UQError, match="vocab"):
        model([[0, 1, 5000]])
    with pytest.raises(ValueError, match="input_ids"):
        model(np.zeros((1, 2, 3), dtype=np.int64))
    assert issubclass(uq.UQError, RuntimeError)


def test_long_calls_release_the_gil(model):
    import threading
    import time

    ids = np.arange(1, 1 + 512, dtype=np.int64)[None, :] % 4096
    ticks = 0
    done = threading.Event()

    def run():
        for _ in range(3):
            model(ids)
        done.set()

    worker = threading.Thread(target=run)
    start = time.perf_counter()
    worker.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    elapsed = time.perf_counter() - start
    # With the GIL held through forward() this thread could not tick at all.
    assert ticks >= max(3, int(elapsed / 0.001) // 10), (ticks, elapsed)
