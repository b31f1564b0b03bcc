"""Eval with a calibration: calib/* measure the calibrated P(correct), calib/*_raw the raw score,
selective metrics are right on small known cases, and `calibrate --from` fits from an eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from caspo_lite.calibrate import fit_from_records
from caspo_lite.cli import app
from caspo_lite.eval import metrics as M
from caspo_lite.eval import report


def test_risk_coverage_aurc_and_accuracy_at_coverage_on_a_known_case() -> None:
    conf = [0.9, 0.8, 0.7, 0.6]
    ok = [True, False, True, False]
    cov, risk = M.risk_coverage(conf, ok)
    assert cov.tolist() == [0.25, 0.5, 0.75, 1.0]
    assert risk.tolist() == pytest.approx([0.0, 0.5, 1 / 3, 0.5])
    assert M.aurc(conf, ok).value == pytest.approx((0 + 0.5 + 1 / 3 + 0.5) / 4)
    assert M.accuracy_at_coverage(conf, ok, 0.5).value == pytest.approx(0.5)
    # ties are answered at their expected risk: all-equal confidence = the base error everywhere
    assert M.risk_coverage([0.5] * 4, ok)[1].tolist() == pytest.approx([0.5] * 4)
    assert M.aurc([], []).value is None


def records(n: int, seed: int, strategy: str = "greedy") -> list[dict]:
    """Eval records whose raw confidence (0.7-0.95) is far above their accuracy."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        c = float(rng.uniform(0.7, 0.95))
        ok = bool(rng.random() < (c - 0.7) * 2.0)
        path = {"branch": 0, "answer": "1", "correct": ok, "path_confidence": c, "steps": [{"confidence": c}]}
        out.append(
            {
                "model": "m",
                "strategy": strategy,
                "problem_id": f"p{i}",
                "answer": "1",
                "correct": ok,
                "confidence": c,
                "chosen_path": 0,
                "paths": [path],
                "n_tokens": 10,
                "latency_s": 1.0,
            }
        )
    return out


def test_calibrated_metrics_sit_beside_the_raw_ones() -> None:
    cal = fit_from_records(records(400, 0), "greedy", {"split": "dev"})
    (plain,) = report.summarize(records(400, 1))
    (g,) = report.summarize(records(400, 1), {("m", "greedy"): cal}, abstain_below=0.3)
    m = g.metrics
    assert plain.calibration is None and plain.metrics["calib/ece"].value == m["calib/ece_raw"].value
    assert m["calib/ece_raw"].value > 0.4 and m["calib/ece"].value < 0.08
    assert m["calib/brier"].value < m["calib/brier_base_rate"].value < m["calib/brier_raw"].value
    assert m["calib/auroc"].value == pytest.approx(m["calib/auroc_raw"].value, abs=0.02)  # monotone
    assert m["select/aurc"].value == pytest.approx(m["select/aurc_raw"].value, abs=0.02)
    assert 0.0 < m["select/coverage_at_threshold"].value < 1.0
    assert m["select/accuracy_answered"].value > m["eval/accuracy"].value
    assert m["answer_auroc/path"].value == pytest.approx(m["calib/auroc_raw"].value)
    out = g.to_json()
    assert out["calibration"]["split"] == "dev" and out["calibration"]["n"] == 400
    assert plain.to_json()["calibration"] == "uncalibrated"
    assert len(out["risk_coverage"]) == 21
    json.dumps(report.summary_json([g], {}), allow_nan=False)
    assert "fitted on ? dev n=400" in report.render_markdown([g], {})


def test_calibrate_from_an_eval_folder_and_refuse_heldout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    round_dir = tmp_path / "run" / "round-1"
    round_dir.mkdir(parents=True)
    ev = tmp_path / "ev"
    ev.mkdir()
    recs = [{**r, "model": str(round_dir)} for r in records(120, 2)]
    (ev / "problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (ev / "eval_config.json").write_text(json.dumps({"task": "arith", "split": "dev", "seed": 0}))
    res = CliRunner().invoke(
        app, ["calibrate", "--model", str(round_dir), "--from", str(ev), "--strategy", "greedy"]
    )
    assert res.exit_code == 0, res.output
    assert "answer AUROC" in res.output and (round_dir / "calibration.json").exists()
    data = json.loads((round_dir / "calibration.json").read_text())
    assert data["answer"]["strategies"]["greedy"]["fit"]["split"] == "dev"
    (ev / "eval_config.json").write_text(json.dumps({"task": "arith", "split": "heldout"}))
    res = CliRunner().invoke(app, ["calibrate", "--model", str(round_dir), "--from", str(ev)])
    assert res.exit_code != 0 and "heldout" in res.output and "Traceback" not in res.output
