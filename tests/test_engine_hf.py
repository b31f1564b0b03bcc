"""The transformers engine: same protocol, same logits as llama.cpp on the tiny model's f32 GGUF."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny():  # noqa: ANN201
    from caspo_lite.models import gguf_path, hf_path

    return hf_path("tiny"), gguf_path("tiny")


def test_hf_session_forks_and_decodes(tiny) -> None:  # noqa: ANN001
    from caspo_lite.engines.hf import HFEngine
    from caspo_lite.tasks.base import Prompt

    engine = HFEngine.load(tiny[0], n_threads=2)
    ids = engine.render(Prompt(messages=({"role": "user", "content": "What is 2 + 3?"},)))
    s = engine.session(3)
    row = s.prefill(ids, 0)
    s.fork(0, 1)
    s.fork(0, 2)
    tok = int(row.argmax())
    rows = s.decode({1: tok, 2: tok})
    np.testing.assert_allclose(rows[1], rows[2], atol=1e-5)
    assert engine.stats.prompt_tokens == len(ids) and engine.stats.generated_tokens == 2
    s.free(2)
    assert 2 not in s.caches


def test_hf_matches_llama_cpp_on_f32_gguf(tiny) -> None:  # noqa: ANN001
    pytest.importorskip("llama_cpp")
    from caspo_lite.engines.hf import HFEngine
    from caspo_lite.engines.llama_cpp import LlamaCppEngine

    hf = HFEngine.load(tiny[0], n_threads=2)
    ll = LlamaCppEngine(tiny[1], n_ctx=256, n_threads=2)
    try:
        text = "Q: What is 3 + 4?\n"
        ids = ll.tokenize(text)
        assert hf.tokenize(text) == ids or hf.tokenize(text) == ids[1:] or ids == hf.tokenize(text)[1:]
        hs, ls = hf.session(2), ll.session(2)
        h_row, l_row = hs.prefill(ids, 0), ls.prefill(ids, 0).copy()
        for _ in range(4):
            np.testing.assert_allclose(h_row, l_row, atol=2e-3, rtol=1e-3)
            tok = int(l_row.argmax())
            h_row, l_row = hs.decode({0: tok})[0], ls.decode({0: tok})[0].copy()
    finally:
        ll.close()
