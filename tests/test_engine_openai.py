"""The `openai` engine: entropy bounds from top-k logprobs, and sampling from llama-cpp-python's server.

The server test starts `python -m llama_cpp.server` on the tiny GGUF on a free localhost port
and stops it afterwards; it compares the endpoint's bounded entropies with the in-process
engine's exact ones on the same greedy tokens.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from caspo_lite.confidence import ConfidenceScorer
from caspo_lite.engines.openai import OpenAIEngine, entropy_bounds, parse_completion, topk_confidence
from caspo_lite.errors import ConfigError, EngineError

# -- the bounds -----------------------------------------------------------------------------------


def _exact(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 5, 20])
def test_bounds_bracket_the_exact_entropy(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(200, 0.1))
    top = np.sort(p)[::-1][:k]
    lo, hi = entropy_bounds(np.log(top).tolist(), n_vocab=200)
    assert lo - 1e-9 <= _exact(p) <= hi + 1e-9
    assert lo <= hi


def test_bounds_are_exact_when_the_top_k_hold_all_the_mass() -> None:
    p = np.array([0.5, 0.25, 0.25])
    lo, hi = entropy_bounds(np.log(p).tolist(), n_vocab=50_000)
    assert lo == pytest.approx(_exact(p)) and hi == pytest.approx(_exact(p))


def test_upper_bound_is_attained_by_a_flat_tail() -> None:
    v, k = 100, 10
    p = np.full(v, 0.5 / (v - k))
    p[:k] = 0.05
    lo, hi = entropy_bounds(np.log(p[:k]).tolist(), n_vocab=v)
    assert hi == pytest.approx(_exact(p))
    assert lo < hi


def test_topk_confidence_signals() -> None:
    top = [math.log(0.6), math.log(0.3)]
    assert topk_confidence(top, "maxprob", "lower", 10) == pytest.approx(0.6)
    assert topk_confidence(top, "margin", "lower", 10) == pytest.approx(0.3)
    lo, hi = entropy_bounds(top, 10)
    assert topk_confidence(top, "entropy", "lower", 10) == pytest.approx(math.exp(-lo))
    assert topk_confidence(top, "entropy", "upper", 10) == pytest.approx(math.exp(-hi))
    with pytest.raises(EngineError, match="top 20"):
        topk_confidence(top, "deepconf", "lower", 10)


def test_a_completion_without_logprobs_is_a_clear_error() -> None:
    with pytest.raises(EngineError, match="no logprobs"):
        parse_completion({"text": "hi", "finish_reason": "stop"}, 100, "openai:m@http://x")


def test_bad_settings_and_an_unreachable_endpoint() -> None:
    with pytest.raises(ConfigError, match="http"):
        OpenAIEngine("localhost:1", "m", 100)
    from caspo_lite.serve.server import free_port

    engine = OpenAIEngine(f"http://127.0.0.1:{free_port()}/v1", "m", 100, timeout_s=2)
    try:
        with pytest.raises(EngineError, match="cannot reach the endpoint"):
            engine.complete("hi", 4, 0.0)
        with pytest.raises(EngineError, match="in-process engine"):
            engine.session(2)
    finally:
        engine.close()


# -- against llama-cpp-python's own server ----------------------------------------------------------


@pytest.fixture(scope="module")
def llama_server(tiny_gguf: Path) -> Any:
    if (
        importlib.util.find_spec("llama_cpp.server") is None
        or importlib.util.find_spec("sse_starlette") is None
    ):
        pytest.skip(
            "llama-cpp-python's server extra is not installed (pip install 'llama-cpp-python[server]')"
        )
    from caspo_lite.serve.server import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(tiny_gguf), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--model_alias", "tiny"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/models", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
                    pytest.fail(f"llama_cpp.server did not start: {err}")
                time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _chat_task() -> Any:
    """arith with the chat prompt: the format the tiny model was trained on, so it writes real steps."""
    from dataclasses import replace

    from caspo_lite.tasks.arith import ArithTask, get_level

    return ArithTask(level=replace(get_level("default"), prompt="chat"))


def _chat_text(engine: Any) -> str:
    from caspo_lite.engines.llama_cpp import render_chat_template

    task = _chat_task()
    prompt = task.prompt(task.load(1, split="test")[0])
    return render_chat_template(engine.chat_template, prompt.messages, engine.bos_text, engine.eos_text)


def _exact_along(engine: Any, text: str, pieces: list[str]) -> list[float]:
    """Exact entropies in-process along the endpoint's own tokens (teacher-forced).

    The endpoint returns token texts; each is mapped back to its id where the text names one
    token only (stops at the first ambiguous one). Teacher forcing, not a second greedy decode:
    two greedy decodes can part at a near-tie from float noise alone.
    """
    by_text: dict[str, list[int]] = {}
    for i in range(engine.n_vocab):
        by_text.setdefault(engine.token_text(i), []).append(i)
    scorer = ConfidenceScorer("entropy")
    session = engine.session(1)
    row = session.prefill(engine.tokenize(text, special=True), 0)
    entropies = []
    for piece in pieces:
        ids = by_text.get(piece, [])
        if len(ids) != 1:
            break
        entropies.append(scorer.stats(row).entropy)
        row = session.decode({0: ids[0]})[0]
    session.close()
    return entropies


@pytest.mark.slow
@pytest.mark.parametrize("k", [5, 20])
def test_endpoint_entropies_bracket_the_in_process_exact_ones(
    llama_server: str, tiny_gguf: Path, k: int
) -> None:
    from caspo_lite.engines.llama_cpp import LlamaCppEngine

    local = LlamaCppEngine(tiny_gguf, n_ctx=1024, n_threads=1)
    remote = OpenAIEngine(llama_server, "tiny", local.n_vocab, top_logprobs=k)
    try:
        text = _chat_text(local)
        got = remote.complete(text, max_tokens=32, temperature=1.0, seed=7)
        assert got.engine == f"openai:tiny@{llama_server}"
        exact = _exact_along(local, text, [t.text for t in got.tokens])
        n = len(exact)
        assert n >= 10, got.text
        for i, (tok, h) in enumerate(zip(got.tokens, exact, strict=False)):
            assert tok.entropy_lower - 1e-3 <= h <= tok.entropy_upper + 1e-3, (i, tok, h)
        gaps_lo = [h - t.entropy_lower for t, h in zip(got.tokens[:n], exact, strict=False)]
        gaps_hi = [t.entropy_upper - h for t, h in zip(got.tokens[:n], exact, strict=False)]
        print(  # the gap the docs report (pytest -s shows it)
            f"\nk={k} V={local.n_vocab} tokens={n}: exact - lower mean {np.mean(gaps_lo):.4f} max "
            f"{np.max(gaps_lo):.4f} nats; upper - exact mean {np.mean(gaps_hi):.4f} max {np.max(gaps_hi):.4f}"
        )
    finally:
        remote.close()
        local.close()


@pytest.mark.slow
def test_sampling_stage_on_the_endpoint(llama_server: str, tiny_gguf: Path, tiny_hf_dir: Path) -> None:
    """sample_problem on the openai engine: concurrent samples, the record format, the engine recorded."""
    from caspo_lite.engines.llama_cpp import LlamaCppEngine
    from caspo_lite.train.config import load_train_config
    from caspo_lite.train.remote_sampling import open_remote_engine
    from caspo_lite.train.sampling import sample_problem

    cfg = load_train_config(
        overrides=[
            "sample.engine='openai'",
            f"sample.endpoint='{llama_server}'",
            "sample.endpoint_model='tiny'",
            "sample.n=4",
            "sample.max_tokens=32",
        ]
    )
    task = _chat_task()
    problem = task.load(1, split="test")[0]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_hf_dir)
    local = LlamaCppEngine(tiny_gguf, n_ctx=1024, n_threads=1)
    remote = open_remote_engine(cfg, 0, tokenizer)  # V from the policy tokenizer
    assert remote.n_vocab == len(tokenizer) and remote.model == "tiny"
    try:
        record = sample_problem(remote, task, problem, cfg, seed=11, tokenizer=tokenizer)
        reference = sample_problem(local, task, problem, cfg, seed=11, tokenizer=tokenizer)
    finally:
        remote.close()
        local.close()
    assert set(record) == set(reference) and record["prompt"] == reference["prompt"]
    assert len(record["solutions"]) == 4
    for sol in record["solutions"]:
        assert set(sol) >= set(reference["solutions"][0]) | {"entropy_bound"}
        assert sol["engine"] == f"openai:tiny@{llama_server}" and sol["entropy_bound"] == "lower"
        assert sol["n_tokens"] > 0 and sol["steps"]
        for st in sol["steps"]:
            assert 0.0 < st["confidence"] <= 1.0 and st["token_confidences"]
    assert reference["solutions"][0]["engine"] == "llama_cpp"
    # the tiny model mostly writes 'Step k: ...' lines ending with an Answer line, remote as local
    assert sum(s["answer"] is not None for s in record["solutions"]) >= 2


def test_replay_cuts_where_the_runner_would() -> None:
    """Remote tokens go through the same step rule; a path ends at an Answer line or a stop string."""
    from caspo_lite.engines.openai import RemoteCompletion, RemoteToken
    from caspo_lite.steps import StepRule
    from caspo_lite.tasks.answers import extract_numeric_answer
    from caspo_lite.train.remote_sampling import replay

    def completion(pieces: list[str], finish: str = "length") -> RemoteCompletion:
        toks = tuple(RemoteToken(p, -0.1, (-0.1, -3.0), 0.2, 0.4) for p in pieces)
        return RemoteCompletion("".join(pieces), toks, finish, "openai:m@http://x")

    rule = StepRule(r"\n", 2, 48)
    pieces = [
        "Step",
        " 1",
        ":",
        " 2",
        " +",
        " 3",
        " =",
        " 5",
        "\n",
        "Answer",
        ":",
        " 5",
        "\n",
        "Q",
        ":",
        " more",
    ]
    trace, text, reason = replay(completion(pieces), rule, (), extract_numeric_answer, 64, lambda t: 0.5)
    assert reason == "answer" and text == "Step 1: 2 + 3 = 5\nAnswer: 5\n" and trace.step_lens == [9, 4]
    trace, text, reason = replay(
        completion(pieces), rule, ("\nQ:",), extract_numeric_answer, 10, lambda t: 0.5
    )
    assert reason == "max tokens" and len(trace.pieces) == 10  # max_tokens before the answer line
    no_answer = ["Step", " 1", ":", " 7", "\n", "Q", ":", " next"]
    trace, text, reason = replay(
        completion(no_answer), rule, ("\nQ:",), extract_numeric_answer, 64, lambda t: 0.5
    )
    assert reason == "stop string" and text == "Step 1: 7"
    assert trace.confs == [0.5] * len(trace.pieces)


@pytest.mark.slow
def test_a_training_round_samples_on_the_endpoint(llama_server: str, tmp_path: Path) -> None:
    """`train` with sample.engine = openai: round 1 samples the base model remotely, the rest runs here."""
    from caspo_lite.train.config import load_train_config
    from caspo_lite.train.ledger import read_jsonl
    from caspo_lite.train.rounds import train

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "tiny-ci.toml"
    overrides = ["rounds.n=1", "rounds.dev_eval=false", "task.n_train=6", "dpo.max_steps=2"]
    overrides += ["pairs.mode='answer'"]  # the test is about sampling; 6 problems give few step pairs
    overrides += [
        "sample.engine='openai'",
        f"sample.endpoint='{llama_server}'",
        "sample.endpoint_model='tiny'",
    ]
    out = tmp_path / "remote"
    train(load_train_config(recipe, overrides), out)
    rd = out / "round-1"
    stages = json.loads((rd / "ledger.json").read_text())["stages"]
    assert stages["sample"]["engine"] == f"openai:tiny@{llama_server}"
    assert {"label", "pairs", "dpo", "export"} <= set(stages)
    samples = read_jsonl(rd / "samples.jsonl", "problem_id")
    assert len(samples) == 6 and all(
        s["engine"] == f"openai:tiny@{llama_server}" for rec in samples for s in rec["solutions"]
    )
    assert (rd / "adapter" / "adapter_config.json").is_file()
