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


def _reference_logits(model, ids: list[int]) -> np.ndarray:  # noqa: ANN001
    """Last-position logits of a full forward without any cache: what every sequence must see."""
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1].float().numpy()


def test_batched_decode_equals_single_sequence_greedy(tiny) -> None:  # noqa: ANN001
    """Sequences of different lengths (fork mid-way, a second prompt, a free) in ONE forward each
    step give the same logits and greedy tokens as each sequence decoded alone without a cache."""
    from caspo_lite.engines.hf import HFEngine
    from caspo_lite.tasks.base import Prompt

    engine = HFEngine.load(tiny[0], n_threads=2)
    a = engine.render(Prompt(messages=({"role": "user", "content": "What is 2 + 3?"},)))
    b = engine.render(Prompt(messages=({"role": "user", "content": "Compute 17 * 4 - 9 and explain."},)))
    s = engine.session(4)
    seqs = {0: list(a), 2: list(b)}
    rows = {0: s.prefill(a, 0), 2: s.prefill(b, 2)}
    for _ in range(3):  # sequence 0 runs ahead alone: lengths now differ from the fork point on
        tok = int(rows[0].argmax())
        seqs[0].append(tok)
        rows[0] = s.decode({0: tok})[0]
    s.fork(0, 1)
    seqs[1], rows[1] = list(seqs[0]), rows[0]
    calls = engine.stats.decode_calls
    for step in range(8):
        if step == 4:  # a finished branch: the batch re-packs without it
            s.free(2)
            del seqs[2], rows[2]
        # the fork takes the second-best token once, so its sequence really differs from its parent's
        toks = {q: int(np.argsort(r)[-2] if (q == 1 and step == 0) else r.argmax()) for q, r in rows.items()}
        for q, t in toks.items():
            seqs[q].append(t)
        rows = s.decode(toks)
        for q in rows:
            ref = _reference_logits(engine.model, seqs[q])
            np.testing.assert_allclose(rows[q], ref, atol=1e-4, rtol=1e-4)
            assert int(rows[q].argmax()) == int(ref.argmax())
    assert engine.stats.decode_calls == calls + 8  # one forward per step, whatever the batch size
    assert seqs[0] != seqs[1]


def test_close_releases_the_weights(tiny) -> None:  # noqa: ANN001
    import weakref

    from caspo_lite.engines.hf import HFEngine

    engine = HFEngine.load(tiny[0], n_threads=1)
    ref = weakref.ref(engine.model)
    engine.close()
    assert ref() is None  # nothing else (no cycle) kept the model alive


def test_cuda_load_uses_16_bit_and_device_map(tiny, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """On CUDA the engine asks transformers for a 16-bit dtype and a device_map (mocked: no GPU here)."""
    import torch
    import transformers

    from caspo_lite.engines import hf

    seen: dict = {}
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(path, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.update(kw)
        return real(path)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # Ampere+
    engine = hf.HFEngine.load(tiny[0], device="cuda")
    assert seen["dtype"] == torch.bfloat16 and seen["device_map"] == "cuda"
    engine.device = "cpu"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    hf.HFEngine.load(tiny[0], device="cuda")
    assert seen["dtype"] == torch.float16  # emulated bf16 only (pre-Ampere): fp16
