"""The rollout labeler on the tiny GGUF: fixed seeds, stop strings, a cache per prefix, verify+rollout."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from caspo_lite import model_labelers  # noqa: E402
from caspo_lite.errors import ConfigError  # noqa: E402
from caspo_lite.labeler_registry import get_labeler  # noqa: E402
from caspo_lite.labelers import Label  # noqa: E402
from caspo_lite.model_labelers import RolloutLabeler, problem_seed  # noqa: E402
from caspo_lite.tasks.arith import ArithTask  # noqa: E402
from caspo_lite.tasks.base import Problem  # noqa: E402

TASK = ArithTask(level="easy")


@pytest.fixture(scope="module")
def engine(tiny_gguf: Path):  # noqa: ANN201
    from caspo_lite.engines import load_engine

    eng = load_engine(tiny_gguf, n_threads=1)
    yield eng
    eng.close()


def _problems() -> list[Problem]:
    return TASK.load(2, split="train")


def _labeler(engine, **kw) -> RolloutLabeler:  # noqa: ANN001
    return get_labeler("rollout", engine=engine, k=2, max_tokens=24, seed=7, **kw)


def test_fixed_seeds_give_the_same_labels_and_seeds_differ_per_problem(engine) -> None:  # noqa: ANN001
    problem = _problems()[0]
    steps = ["Step 1: 3 + 4 = 7", "Answer: 7"]
    a, b = _labeler(engine), _labeler(engine)
    first = a.label(problem, steps, TASK)
    assert first == b.label(problem, steps, TASK)
    assert len(first) == 2 and all(lb in (Label.CORRECT, Label.WRONG, Label.UNKNOWN) for lb in first)
    assert a.rollouts == 2  # the step is rolled out k times; the answer step is graded directly
    assert problem_seed(7, "p-1", 0) != problem_seed(7, "p-2", 0) != problem_seed(7, "p-1", 1)


def test_answer_steps_are_graded_not_rolled_out(engine) -> None:  # noqa: ANN001
    problem = Problem("p", "What is 2 + 3?", "5")
    labeler = _labeler(engine)
    assert labeler.label(problem, ["Answer: 5"], TASK) == [Label.CORRECT]
    assert labeler.label(problem, ["Answer: 6"], TASK) == [Label.WRONG]
    assert labeler.rollouts == 0


def test_a_shared_prefix_is_rolled_out_once(engine) -> None:  # noqa: ANN001
    problem = _problems()[1]
    labeler = _labeler(engine, min_frac=0.0)  # every rollout "reaches gold": all steps labelled
    labeler.label(problem, ["Step 1: 5 + 5 = 10", "Step 2: 10 + 1 = 11", "Answer: 11"], TASK)
    assert labeler.rollouts == 4
    labeler.label(problem, ["Step 1: 5 + 5 = 10", "Step 2: 10 - 1 = 9", "Answer: 9"], TASK)
    assert labeler.rollouts == 6  # step 1 came from the cache; only the new step 2 ran


def test_rollouts_stop_where_the_sampler_stops(engine, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    seen = []
    real = model_labelers._run

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(inspect.signature(real).bind(*args, **kwargs).arguments.get("stop"))
        out = real(*args, **kwargs)
        assert not any("\nQ:" in text for text in out)
        return out

    monkeypatch.setattr(model_labelers, "_run", spy)
    problem = _problems()[0]
    _labeler(engine).label(problem, ["Step 1: 3 + 4 = 7"], TASK)
    assert seen == [TASK.prompt(problem).stop] and "\nQ:" in seen[0]


def test_verify_plus_rollout_rolls_out_only_what_verify_leaves_unknown(engine) -> None:  # noqa: ANN001
    problem = Problem("p", "What is 8 - 8 + 5?", "5")
    labeler = get_labeler("verify+rollout", engine=engine, k=2, max_tokens=24, seed=7)
    assert labeler.name == "verify+rollout"
    steps = ["Step 1: 8 + 5 = 13", "Step 2: 13 - 5 = 8", "Answer: 8"]
    verdicts = labeler.explain(problem, steps, TASK)
    assert [(v.label, v.reason) for v in verdicts] == [
        (Label.CORRECT, "checked"),
        (Label.WRONG, "operation"),
        (Label.UNKNOWN, "after_wrong"),
    ]
    assert labeler.rollouts == 0
    # a step with nothing to check in an unfinished solution: verify says unknown, rollouts decide
    verdicts = labeler.explain(problem, ["First I add the numbers.", "Step 1: 8 - 8 = 0"], TASK)
    assert verdicts[0].reason == "rollout" and labeler.rollouts == 2
    assert verdicts[0].label is Label.WRONG or verdicts[1].reason == "final_answer"
    with pytest.raises(ConfigError, match="mode"):
        RolloutLabeler(engine, mode="both")
