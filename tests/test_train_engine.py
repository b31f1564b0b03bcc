"""Which engine a round samples with, and why (issue #14): llama.cpp fully offloaded on a GPU
build, the batched transformers sampler on a GPU otherwise, llama.cpp on CPU."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from caspo_lite.train import rounds
from caspo_lite.train.config import load_train_config

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny-ci.toml"


def _choice(
    monkeypatch: pytest.MonkeyPatch, device: str, llama: bool | None, engine: str = "auto", gguf: bool = True
) -> rounds.EngineChoice:
    monkeypatch.setattr(rounds, "_llama_cpp_gpu", lambda: llama)
    cfg = load_train_config(RECIPE, [f"sample.engine='{engine}'"])
    policy = rounds.Policy(Path("hf"), Path("p.gguf") if gguf else None)
    return rounds.choose_engine(cfg, policy, device=device)


def test_gpu_with_a_gpu_llama_cpp_offloads_every_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    c = _choice(monkeypatch, "cuda", llama=True)
    assert (c.kind, c.n_gpu_layers) == ("llama_cpp", rounds.ALL_LAYERS) and "offloaded" in c.reason


def test_gpu_with_a_cpu_llama_cpp_uses_the_batched_hf_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    c = _choice(monkeypatch, "cuda", llama=False)
    assert c.kind == "hf" and "CPU-only build" in c.reason and "GGML_CUDA" in c.reason
    assert _choice(monkeypatch, "cuda", llama=None).kind == "hf"  # not installed
    assert _choice(monkeypatch, "cuda", llama=True, gguf=False).kind == "hf"  # no GGUF


def test_cpu_uses_llama_cpp_and_forced_choices_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    c = _choice(monkeypatch, "cpu", llama=False)
    assert (c.kind, c.n_gpu_layers) == ("llama_cpp", 0)
    assert _choice(monkeypatch, "cpu", llama=False, engine="hf").kind == "hf"
    forced = _choice(monkeypatch, "cuda", llama=False, engine="llama_cpp")
    assert (forced.kind, forced.n_gpu_layers) == ("llama_cpp", 0) and "forced" in forced.reason


def test_open_engine_logs_the_choice_and_its_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    seen: dict = {}
    monkeypatch.setattr(rounds, "_llama_cpp_gpu", lambda: True)
    monkeypatch.setattr(rounds, "detect_device", lambda: "cuda")
    monkeypatch.setattr(rounds, "load_engine", lambda ref, **kw: seen.update(kw, ref=ref))
    cfg = load_train_config(RECIPE)
    with caplog.at_level(logging.INFO, logger="caspo_lite.train.rounds"):
        rounds.open_engine(cfg, rounds.Policy(Path("hf"), Path("p.gguf")))
    assert seen["kind"] == "llama_cpp" and seen["n_gpu_layers"] == rounds.ALL_LAYERS
    assert any(
        "sampling engine: llama_cpp" in r.getMessage() and "offloaded" in r.getMessage()
        for r in caplog.records
    )


# --- on a CUDA machine only ----------------------------------------------------------------------


@pytest.mark.gpu
def test_cuda_hf_engine_batched_equals_single_sequence(tiny_hf_dir: Path) -> None:
    """On the card, in 16 bit: the batched forward's greedy tokens equal each sequence's own."""
    from caspo_lite.engines.hf import HFEngine

    engine = HFEngine.load(tiny_hf_dir, device="cuda")
    ids = engine.tokenize("Step 1: 2 + 3 = ")
    s = engine.session(4)
    row = s.prefill(ids, 0)
    for q in (1, 2, 3):
        s.fork(0, q)
    toks = {q: int(np.argsort(row)[-1 - q]) for q in range(4)}
    seqs = {q: [*ids, t] for q, t in toks.items()}
    for _ in range(6):
        rows = s.decode(toks)
        toks = {q: int(r.argmax()) for q, r in rows.items()}
        for q, t in toks.items():
            seqs[q].append(t)
    for q in range(4):
        alone = engine.session(1)
        r = alone.prefill(seqs[q][: len(ids) + 1], 0)
        for t in seqs[q][len(ids) + 1 :]:
            assert int(r.argmax()) == t
            r = alone.decode({0: t})[0]
    engine.close()


@pytest.mark.gpu
def test_cuda_llama_cpp_offload(tiny_gguf: Path) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    if not llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama-cpp-python build has no GPU offload")
    from caspo_lite.engines import load_engine

    engine = load_engine(tiny_gguf, kind="llama_cpp", n_gpu_layers=rounds.ALL_LAYERS, n_ctx=256)
    try:
        assert engine.n_gpu_layers == rounds.ALL_LAYERS
    finally:
        engine.close()
