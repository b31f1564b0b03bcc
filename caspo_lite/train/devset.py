"""Dev-set score of a round's policy: greedy answers, accuracy, mean path confidence.

Greedy on purpose: it measures what the policy believes most, with no sampling noise, so a
change between rounds is the training's doing. Written per problem (resumable) to dev.jsonl.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from caspo_lite.answer_signals import path_signals
from caspo_lite.calibration import fit_answer_calibration, save_answer_calibration
from caspo_lite.calibration_file import calibration_path
from caspo_lite.errors import DataError
from caspo_lite.search.events import BranchFinished
from caspo_lite.search.factory import build_runner
from caspo_lite.tasks.base import Problem, Task
from caspo_lite.train.config import TrainConfig
from caspo_lite.train.ledger import JsonlAppender, read_jsonl


def greedy_answer(engine: Any, task: Task, problem: Problem, cfg: TrainConfig) -> BranchFinished:
    return _greedy(engine, task, problem, cfg)[0]


def _greedy(engine: Any, task: Task, problem: Problem, cfg: TrainConfig) -> tuple[BranchFinished, Any]:
    """The greedy path and its `Branch` (whose pieces and token confidences the signals need)."""
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
        branch, _ = runner.start(reason="root")
        while runner.live:
            runner.advance()
    finally:
        runner.close()
    return runner.finished[0], branch


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
                fin, branch = _greedy(engine, task, p, cfg)
                ok = fin.answer is not None and bool(task.grade(fin.answer, p.answer))
                pieces = list(zip(branch.pieces, branch.token_conf, strict=False))
                app.append(
                    {
                        "problem_id": p.id,
                        "answer": fin.answer,
                        "gold": p.answer,
                        "correct": ok,
                        "path_confidence": fin.path_confidence,
                        "n_tokens": fin.n_tokens,
                        "signals": path_signals(fin, pieces),  # for the round's answer calibration
                    }
                )
            if on_problem:
                on_problem(i + 1, len(problems))
    rows = read_jsonl(out, "problem_id")
    return sum(bool(r["correct"]) for r in rows) / len(rows) if rows else 0.0


def fit_dev_calibration(dev_rows_file: Path, round_dir: Path, cfg: TrainConfig) -> Any:
    """Fit the round's greedy answer calibration from its dev answers (no extra sampling).

    Writes ``round-N/calibration.json`` (section ``answer``, strategy ``greedy``) and returns the
    `AnswerCalibration`, or None (logged) when the dev set is too small or one-sided to fit:
    a missing calibration must never stop training; the round then shows "uncalibrated".
    """
    import logging

    rows = [r for r in read_jsonl(dev_rows_file, "problem_id") if r.get("signals")]
    answered = [r for r in rows if r.get("answer") is not None]
    info = {"task": cfg.task.name, "split": "dev", "seed": cfg.task.seed, "problems": len(rows)}
    try:
        cal = fit_answer_calibration(
            [r["signals"] for r in answered], [bool(r["correct"]) for r in answered], "greedy", info
        )
    except DataError as exc:
        logging.getLogger(__name__).warning("round %s: no answer calibration (%s)", round_dir.name, exc)
        return None
    save_answer_calibration(calibration_path(Path(), round_dir), cal, model={"name": round_dir.name})
    return cal
