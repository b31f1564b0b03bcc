"""`solve` shows the calibrated P(correct) when the model has a calibration, says "uncalibrated"
when not, and `--abstain-below` turns a low-probability answer into "not sure" in --json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from caspo_lite.calibration import fit_answer_calibration, save_answer_calibration
from caspo_lite.calibration_file import calibration_path
from caspo_lite.cli import app

runner = CliRunner()
pytest.importorskip("llama_cpp")
ARGS = ["solve", "What is 2 + 3?", "--model", "tiny", "--strategy", "greedy", "--max-tokens", "24", "--json"]


@pytest.fixture(autouse=True)
def _one_thread_own_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """One llama.cpp thread; calibrations in this test's own folder, not the shared test home
    (the tiny model's calibration would otherwise change what other tests' solves show)."""
    monkeypatch.setenv("CASPO_LITE_THREADS", "1")
    monkeypatch.setattr("caspo_lite.calibration_file.data_dir", lambda: tmp_path)


def calibrate_tiny() -> None:
    """A greedy calibration for the tiny model, stored where solve looks (keyed by its sha256)."""
    from caspo_lite.models import gguf_path

    rng = np.random.default_rng(0)
    s = rng.uniform(0.0, 1.0, 200)
    y = rng.random(200) < s
    cal = fit_answer_calibration([{"path": float(v)} for v in s], y, "greedy", {"split": "dev"})
    save_answer_calibration(calibration_path(gguf_path("tiny")), cal)


def solve_json(*extra: str) -> dict:
    res = runner.invoke(app, [*ARGS, *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_uncalibrated_then_calibrated_then_abstaining() -> None:
    from caspo_lite.models import gguf_path

    assert not calibration_path(gguf_path("tiny")).exists()
    plain = solve_json()
    assert plain["answer_confidence"]["calibrated"] is False
    assert plain["answer_confidence"]["probability"] is None and plain["not_sure"] is False

    calibrate_tiny()
    shown = solve_json("--abstain-below", "0")
    conf = shown["answer_confidence"]
    assert conf["calibrated"] is True and 0.0 <= conf["probability"] <= 1.0
    assert shown["answer"] == shown["best_guess"] and shown["not_sure"] is False

    unsure = solve_json("--abstain-below", "1")  # nothing is certain: every answer abstains
    assert unsure["answer"] is None and unsure["not_sure"] is True
    assert unsure["best_guess"] == shown["best_guess"]  # the guess is still there on demand
    assert unsure["answer_confidence"]["abstained"] is True


def test_abstain_threshold_outside_0_1_is_one_line() -> None:
    res = runner.invoke(app, [*ARGS, "--abstain-below", "1.5"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "abstain-below" in res.output and "[0, 1]" in res.output
