"""Real resampling at a prefix (``pairs.alt_samples = m``): m alternative steps at q_i, labelled.

The cheap source of alternatives is the other samples of the same problem that share the
prefix (pairs.py does that on its own). When they are too few — long solutions rarely share
long prefixes — this module samples m fresh steps at each A/B candidate's prefix through the
engine, stops each branch at its first step boundary, and labels the step in context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from caspo_lite.confidence import step_confidence
from caspo_lite.labelers import Label, label_next_step
from caspo_lite.pairs import (
    CORRECT,
    WRONG,
    ProblemSamples,
    Step,
    compute_thresholds,
    round_confidences,
    used_steps,
)
from caspo_lite.search.events import BranchFinished, StepDone, TokenGenerated
from caspo_lite.search.factory import build_runner
from caspo_lite.tasks.base import Problem, Prompt, Task
from caspo_lite.train.config import TrainConfig
from caspo_lite.train.sampling import problem_seed


def sample_steps(
    engine: Any, text: str, m: int, cfg: TrainConfig, seed: int, task: Task
) -> list[tuple[str, list[float]]]:
    """m next steps after raw ``text``: (step text, token confidences) each."""
    runner = build_runner(
        engine,
        Prompt(text=text),
        task.extract_answer,
        m,
        cfg.sample,
        replace(cfg.confidence, path_mode="geomean"),
        cfg.steps,
        max_tokens=cfg.steps.max_step_tokens,
        seed=seed,
    )
    pieces: dict[int, list[str]] = {}
    confs: dict[int, list[float]] = {}
    done: set[int] = set()
    runner.open()
    try:
        for _ in range(m):
            b, _ev = runner.start(reason="sample")
            pieces[b.id], confs[b.id] = [], []
        while runner.live:
            for ev in runner.advance():
                if isinstance(ev, TokenGenerated) and ev.branch not in done:
                    pieces[ev.branch].append(ev.text)
                    confs[ev.branch].append(ev.confidence)
                elif isinstance(ev, StepDone | BranchFinished):
                    done.add(ev.branch)
            for b in list(runner.live):
                if b.id in done:
                    runner.prune(b, 0.0, "step done")
    finally:
        runner.close()
    return [("".join(pieces[i]), confs[i]) for i in range(m) if "".join(pieces[i]).strip()]


def label_alternative(labeler: Any, task: Task, problem: Problem, prefix: Sequence[str], alt: str) -> str:
    """The alternative step's label in context (a partial solution must not be graded as final)."""
    answer = task.extract_answer(alt)
    if answer is not None:
        return CORRECT if task.grade(answer, problem.answer) else WRONG
    if getattr(labeler, "name", "") == "verify":  # the problem-aware checks, in the prefix's context
        return str(label_next_step(problem, prefix, alt, task).label)
    return str(labeler.label(problem, [*prefix, alt], task)[-1] if prefix or alt else Label.UNKNOWN)


def add_alternatives(
    engine: Any,
    task: Task,
    problems: Sequence[ProblemSamples],
    samples: Sequence[dict],
    cfg: TrainConfig,
    round_index: int,
    labeler: Any,
) -> list[ProblemSamples]:
    rule = cfg.pairs.rule()
    th = compute_thresholds(round_confidences(problems), rule)
    out = []
    for ps, rec in zip(problems, samples, strict=True):
        problem = Problem(
            rec["problem_id"], rec["question"], rec["gold"], meta={"prompt_text": rec["prompt"]}
        )
        keys: set[tuple[int, str]] = set()
        for sol in ps.solutions:
            steps = used_steps(sol.steps)
            for i, st in enumerate(steps):
                if (st.label == CORRECT and st.confidence < th.low) or (
                    st.label == WRONG and st.confidence >= th.high
                ):
                    keys.add((i, "".join(s.text for s in steps[:i])))
        alts: dict[tuple[int, str], tuple[Step, ...]] = {}
        for i, prefix in sorted(keys):
            seed = problem_seed(cfg.sample.seed, round_index, f"{ps.problem_id}/alt/{i}/{prefix}")
            prefix_steps = [s for s in _split_prefix(ps, i, prefix)]
            found = []
            for text, confs in sample_steps(
                engine, ps.prompt + prefix, cfg.pairs.alt_samples, cfg, seed, task
            ):
                label = label_alternative(labeler, task, problem, prefix_steps, text)
                found.append(Step(text, step_confidence(confs), tuple(confs), label))
            alts[(i, prefix)] = tuple(found)
        out.append(replace(ps, alternatives=alts))
    return out


def _split_prefix(ps: ProblemSamples, i: int, prefix: str) -> list[str]:
    for sol in ps.solutions:
        steps = [s.text for s in sol.steps[:i]]
        if "".join(steps) == prefix:
            return steps
    return [prefix] if prefix else []
