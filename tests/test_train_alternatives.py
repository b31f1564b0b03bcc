"""Alternatives at a prefix: the rank-2 fallback on a scripted logits source, and the stage's store.

The resampling itself on a real model (the tiny GGUF) is in test_train_e2e.py, which has the
round's samples at hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from caspo_lite.engines.fake import FLAT, SHARP, FakeEngine, ScriptPath
from caspo_lite.labeler_registry import get_labeler
from caspo_lite.pairs import CORRECT, WRONG, ProblemSamples, Solution, Step
from caspo_lite.steps import StepRule
from caspo_lite.tasks.base import Problem
from caspo_lite.train.alternatives import AltStats, add_alternatives, label_alternative, rank2_step
from caspo_lite.train.config import load_train_config
from caspo_lite.train.problems import build_task

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny-ci.toml"
RULE = StepRule(min_step_tokens=2, max_step_tokens=8)


class TwoPeaks(FakeEngine):
    """The fake engine, but every path that matches the tokens so far puts its peak in the row
    (the base engine shows only the first): the scripted runner-up is then the rank-2 token."""

    def row(self, generated: Sequence[int]) -> np.ndarray:
        z = super().row(generated)
        if generated:
            for plan, path in zip(self._plans, self.paths, strict=True):
                i = len(generated)
                if plan[:i] == list(generated) and i < len(plan):
                    z[plan[i]] = max(z[plan[i]], path.sharpness[i])
        return z


def _engine() -> TwoPeaks:
    right = ScriptPath.of([("2+3=", SHARP), ("5", FLAT), ("\n", SHARP)])
    wrong = ScriptPath.of([("2+3=", SHARP), ("6", FLAT - 0.5), ("\n", SHARP)], weight=0.01)
    return TwoPeaks([right, wrong])


def _own(engine: FakeEngine) -> Step:
    ids = tuple(engine.index[p] for p in ("2+3=", "5", "\n"))
    return Step("2+3=5\n", 0.4, (0.9, 0.2, 0.9), CORRECT, ids)


def test_rank2_forces_the_runner_up_at_the_least_confident_token() -> None:
    engine = _engine()
    alt = rank2_step(engine, "What is 2+3?\n", _own(engine), RULE, "entropy")
    assert alt is not None
    assert alt.text == "2+3=6\n" and alt.origin == "rank2"
    assert alt.token_ids == tuple(engine.index[p] for p in ("2+3=", "6", "\n"))
    assert alt.token_confidences[0] == 0.9  # the kept head keeps its sampled confidence
    assert len(alt.token_confidences) == 3 and 0 < alt.confidence <= 1
    task = build_task(load_train_config(RECIPE))
    problem = Problem("p", "What is 2+3?", "5")
    assert label_alternative(get_labeler("verify"), task, problem, [], alt.text) == WRONG


def test_rank2_needs_the_sampled_ids() -> None:
    engine = _engine()
    no_ids = Step("2+3=5\n", 0.4, (0.9, 0.2, 0.9), CORRECT)
    assert rank2_step(engine, "Q\n", no_ids, RULE, "entropy") is None


def _problem(engine: FakeEngine) -> tuple[ProblemSamples, dict]:
    own = _own(engine)
    ps = ProblemSamples("p", "What is 2+3?\n", [Solution(0, (own,), correct=True)])
    rec = {"problem_id": "p", "question": "What is 2+3?", "gold": "5", "prompt": ps.prompt}
    return ps, rec


def test_the_stage_falls_back_to_rank2_and_resumes_from_its_store(tmp_path: Path) -> None:
    """An A candidate whose resamples hold no wrong step gets the rank-2 one; the store replays it."""
    cfg = load_train_config(RECIPE, ["pairs.alt_samples=2", "pairs.low_abs=0.5", "sample.temperature=0.01"])
    task = build_task(cfg)
    engine = _engine()
    ps, rec = _problem(engine)
    store = tmp_path / "alternatives.jsonl"
    stats = AltStats()
    (out,) = add_alternatives(engine, task, [ps], [rec], cfg, 1, get_labeler("verify"), store, stats=stats)
    steps = out.alternatives[(0, "")]
    assert [s.origin for s in steps][-1] == "rank2" and steps[-1].label == WRONG
    assert all(s.origin == "resample" for s in steps[:-1]) and len(steps) >= 2
    assert stats.counts["rank2_tried"] == 1 and stats.counts["rank2_found_wrong"] == 1
    assert stats.counts["candidates_A"] == 1 and stats.summary()["alt/time_s"] >= 0
    # a second run reads the store back instead of sampling: same alternatives, no engine use
    before = engine.stats.generated_tokens
    (again,) = add_alternatives(engine, task, [ps], [rec], cfg, 1, get_labeler("verify"), store)
    assert again.alternatives == out.alternatives and engine.stats.generated_tokens == before


def test_no_resampling_where_other_samples_have_the_label(tmp_path: Path) -> None:
    cfg = load_train_config(RECIPE, ["pairs.alt_samples=2", "pairs.low_abs=0.5"])
    engine = _engine()
    ps, rec = _problem(engine)
    wrong = Step("2+3=7\n", 0.3, (0.3,), WRONG)
    ps = ProblemSamples(ps.problem_id, ps.prompt, [*ps.solutions, Solution(1, (wrong,), correct=False)])
    stats = AltStats()
    (out,) = add_alternatives(
        engine, build_task(cfg), [ps], [rec], cfg, 1, get_labeler("verify"), stats=stats
    )
    assert out.alternatives == {} and engine.stats.generated_tokens == 0
    assert stats.counts["prefixes_covered_by_samples"] == 1


def test_rank2_skips_a_least_confident_line_end() -> None:
    """The least confident token is the newline: forcing another there only re-dresses the step,
    so the least confident content token (the result) is the one replaced."""
    engine = _engine()
    own = Step("2+3=5\n", 0.4, (0.9, 0.5, 0.1), CORRECT, _own(engine).token_ids)
    alt = rank2_step(engine, "What is 2+3?\n", own, RULE, "entropy")
    assert alt is not None and alt.text == "2+3=6\n"


def test_a_repeated_sure_mistake_gets_resampled_for_its_second_alternative() -> None:
    """Two samples wrote the same sure wrong step, one the right one: the second occurrence
    would only duplicate the first pair, so the prefix is resampled for another right step."""
    cfg = load_train_config(RECIPE, ["pairs.alt_samples=2", "pairs.low_abs=0.0", "pairs.high_abs=0.0"])
    engine = _engine()
    wrong = Step("2+3=6\n", 0.9, (0.9,), WRONG)
    right = Step("2+3=5\n", 0.9, (0.9,), CORRECT)
    sols = [Solution(0, (wrong,)), Solution(1, (wrong,)), Solution(2, (right,), correct=True)]
    ps = ProblemSamples("p", "What is 2+3?\n", sols)
    rec = {"problem_id": "p", "question": "What is 2+3?", "gold": "5", "prompt": ps.prompt}
    stats = AltStats()
    add_alternatives(engine, build_task(cfg), [ps], [rec], cfg, 1, get_labeler("verify"), stats=stats)
    assert stats.counts["candidates_B"] == 2 and stats.counts["prefixes_resampled"] == 1
    one = ProblemSamples("p", ps.prompt, sols[1:])  # one occurrence: the sampled right step suffices
    stats = AltStats()
    add_alternatives(engine, build_task(cfg), [one], [rec], cfg, 1, get_labeler("verify"), stats=stats)
    assert stats.counts["prefixes_resampled"] == 0 and stats.counts["prefixes_covered_by_samples"] == 1
