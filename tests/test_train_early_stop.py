"""The trainer's early stop leaves a record in the run folder (`caspo_lite.runs`), cleared on resume."""

from __future__ import annotations

from pathlib import Path

import pytest

import caspo_lite.train.problems as problems
import caspo_lite.train.rounds as rounds
from caspo_lite.errors import ConfigError
from caspo_lite.runs import read_early_stop
from caspo_lite.train.config import load_train_config

REPO = Path(__file__).resolve().parents[1]


def _flat_rounds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rounds that never improve: same yield, same dev accuracy (no model is loaded)."""
    ran: list[int] = []

    def fake_round(cfg: object, run: object, r: int, policy: str, *rest: object) -> tuple[str, dict]:
        ran.append(r)
        return policy, {"round": r, "pairs/yield_per_problem": 1.0, "eval/dev_accuracy": 0.5}

    monkeypatch.setattr(rounds, "start_backend", lambda cfg: None)
    monkeypatch.setattr(rounds, "base_policy", lambda cfg, run: "base")
    monkeypatch.setattr(rounds, "run_round", fake_round)
    monkeypatch.setattr(problems, "build_task", lambda cfg: None)
    monkeypatch.setattr(problems, "split_problems", lambda task, cfg: ([], []))
    return ran


def test_early_stop_is_recorded_and_a_resume_decides_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = _flat_rounds(monkeypatch)
    cfg = load_train_config(
        REPO / "recipes" / "tiny-ci.toml", ["rounds.n=4", "rounds.patience=1", "rounds.early_stop=true"]
    )
    events = []
    rounds.train(cfg, tmp_path / "run", events.append)
    assert ran == [1, 2]  # round 2 did not beat round 1
    assert read_early_stop(tmp_path / "run") == {
        "after_round": 2,
        "reason": "pair yield and dev accuracy stopped improving",
    }
    assert [e.kind for e in events][-1] == "stop"

    cfg = load_train_config(
        REPO / "recipes" / "tiny-ci.toml", ["rounds.n=4", "rounds.patience=1", "rounds.early_stop=false"]
    )
    (tmp_path / "run" / "config.toml").unlink()  # the same folder, resumed without early stop
    rounds.train(cfg, tmp_path / "run")
    assert read_early_stop(tmp_path / "run") is None


def test_out_naming_a_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a run folder")
    cfg = load_train_config(REPO / "recipes" / "tiny-ci.toml")
    with pytest.raises(ConfigError, match="a file is in the way"):
        rounds.train(cfg, tmp_path / "taken")
