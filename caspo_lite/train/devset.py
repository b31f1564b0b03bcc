"""Dev-set score of a round's policy: greedy answers, accuracy, mean path confidence.

Greedy on purpose: it measures what the policy believes most, with no sampling noise, so a
change between rounds is the training's doing. Written per problem (resumable) to dev.jsonl.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from caspo_lite.search.events import BranchFinished
from caspo_lite.search.factory import build_runner
from caspo_lite.tasks.base import Problem, Task
from caspo_lite.train.config import TrainConfig
from caspo_lite.train.ledger import JsonlAppender, read_jsonl


def greedy_answer(engine: Any, task: Task, problem: Problem, cfg: TrainConfig) -> BranchFinished:
    runner = build_runner(
        engine,
        task.prompt(problem),
        task.extract_answer,
        1,
        cfg.sample,
        cfg.confidence,
        cfg.steps,
        greedy=True,
        max_tokens=cfg.rounds.dev_max_tokens,
    )
    runner.open()
    try:
        runner.start(reason="root")
        while runner.live:
            runner.advance()
    finally:
        runner.close()
    return runner.finished[0]


def evaluate_dev(
    engine: Any,
    task: Task,
    problems: Sequence[Problem],
    cfg: TrainConfig,
    out: Path,
    on_problem: Callable[[int, int], None] | None = None,
) -> float:
    """Accuracy over ``problems``; one JSONL line per problem in ``out``."""
    with JsonlAppender(out, "problem_id") as app:
        for i, p in enumerate(problems):
            if p.id not in app.done:
                fin = greedy_answer(engine, task, p, cfg)
                ok = fin.answer is not None and bool(task.grade(fin.answer, p.answer))
                app.append(
                    {
                        "problem_id": p.id,
                        "answer": fin.answer,
                        "gold": p.answer,
                        "correct": ok,
                        "path_confidence": fin.path_confidence,
                        "n_tokens": fin.n_tokens,
                    }
                )
            if on_problem:
                on_problem(i + 1, len(problems))
    rows = read_jsonl(out, "problem_id")
    return sum(bool(r["correct"]) for r in rows) / len(rows) if rows else 0.0
