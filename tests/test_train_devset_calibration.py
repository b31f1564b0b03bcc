"""A round's dev answers carry every answer signal, and the round's greedy calibration is fitted
from them with no extra sampling (``round-N/calibration.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from caspo_lite.calibration import load_answer_calibration
from caspo_lite.engines.fake import FLAT, SHARP, FakeEngine, ScriptPath
from caspo_lite.tasks import get_task
from caspo_lite.train.config import TrainConfig
from caspo_lite.train.devset import evaluate_dev, fit_dev_calibration


def test_dev_rows_carry_signals_with_the_answer_tokens_alone(tmp_path: Path) -> None:
    script = ScriptPath.of(
        [("Step 1: 2 + 3 = 5", SHARP), ("\n", SHARP), ("Answer: ", SHARP), ("5", FLAT), ("\n", SHARP)]
    )
    task = get_task("arith")
    problems = task.load(3, seed=0, split="dev")
    out = tmp_path / "dev.jsonl"
    evaluate_dev(FakeEngine([script]), task, problems, TrainConfig(), out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3
    sig = rows[0]["signals"]
    assert set(sig) == {"path", "min_step", "tail", "answer_tokens", "vote_share"}
    assert rows[0]["answer"] == "5" and sig["vote_share"] == 1.0
    assert sig["answer_tokens"] < sig["min_step"] <= sig["path"]  # the unsure digit alone


def _rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.6, 1.0, n)
    ok = rng.random(n) < (s - 0.5)
    return [
        {
            "problem_id": f"p{i}",
            "answer": "1",
            "correct": bool(y),
            "signals": {"path": float(v), "min_step": float(v)},
        }
        for i, (v, y) in enumerate(zip(s, ok, strict=True))
    ]


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_round_calibration_is_fitted_from_dev_answers(tmp_path: Path) -> None:
    round_dir = tmp_path / "run" / "round-1"
    round_dir.mkdir(parents=True)
    _write(round_dir / "dev.jsonl", _rows(60, 0))
    cal = fit_dev_calibration(round_dir / "dev.jsonl", round_dir, TrainConfig())
    assert cal is not None and cal.fit["split"] == "dev" and cal.fit["n"] == 60
    back = load_answer_calibration(round_dir, "greedy")
    assert back is not None and back.prob(0.9) == cal.prob(0.9)


def test_too_few_dev_answers_skip_the_calibration_without_failing(tmp_path: Path) -> None:
    round_dir = tmp_path / "round-2"
    round_dir.mkdir()
    _write(round_dir / "dev.jsonl", _rows(8, 1))
    assert fit_dev_calibration(round_dir / "dev.jsonl", round_dir, TrainConfig()) is None
    assert not (round_dir / "calibration.json").exists()
