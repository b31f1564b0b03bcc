"""CaT's calibration section: fitting, reading back, refusing heldout, the answer map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caspo_lite.calibration_file import read_calibration, update_section
from caspo_lite.cat_fit import calibrate_from_eval, confidences_from_records
from caspo_lite.errors import ConfigError, DataError
from caspo_lite.search.cat_calibration import (
    answer_probability,
    fit_cat_thresholds,
    load_calibration,
    threshold_for,
)


def test_fit_and_threshold_interpolate_between_stored_percentiles() -> None:
    confs = [i / 100 for i in range(1, 101)]
    sec = fit_cat_thresholds(confs, confs, "entropy", "geomean", "dev", 3)
    assert sec["n_problems"] == 3 and sec["n_boundaries"] == 100
    assert threshold_for(sec, 50, "entropy", "geomean") == pytest.approx(0.505)
    assert threshold_for(sec, 52.5, "entropy", "geomean") == pytest.approx(
        (sec["path"]["50"] + sec["path"]["55"]) / 2
    )
    assert threshold_for(sec, 50, "margin", "geomean") is None  # fitted for another signal
    assert threshold_for(None, 50, "entropy", "geomean") is None
    with pytest.raises(DataError):
        fit_cat_thresholds([], [], "entropy", "geomean")


def test_cat_section_keeps_the_answer_section_and_accept_reads_its_map(tmp_path: Path) -> None:
    from caspo_lite.calibration import AnswerCalibration, save_answer_calibration
    from caspo_lite.search.events import BranchFinished

    f = tmp_path / "calibration.json"
    lift = AnswerCalibration("path", "isotonic", {"x": [0.0, 1.0], "y": [0.1, 0.6]}, "cat")
    save_answer_calibration(f, lift)
    update_section(f, "cat", fit_cat_thresholds([0.5], [0.5], "entropy", "geomean"))
    data = read_calibration(f)
    assert data is not None and set(data) >= {"answer", "cat"}
    p = answer_probability(data)
    assert p is not None
    assert p(BranchFinished(0, "Answer: 3", "3", 0.5, 4, "answer", (0.5,))) == pytest.approx(0.35)
    assert p(BranchFinished(0, "no answer", None, 0.9, 4, "eos", (0.9,))) == 0.0  # never graded right
    # a map on a signal one path cannot define alone (the vote share), or for another strategy: raw
    vote = AnswerCalibration("vote_share", "isotonic", {"x": [0.0, 1.0], "y": [0.1, 0.6]}, "cat")
    save_answer_calibration(f, vote)
    assert answer_probability(read_calibration(f)) is None
    assert answer_probability(data, strategy="sc") is None
    assert load_calibration(None, str(f)) == read_calibration(f)


def test_missing_explicit_calibration_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="calibrate-cat"):
        load_calibration(None, str(tmp_path / "none.json"))
    assert load_calibration(object()) is None  # an engine without a model file has none


def _eval_dir(tmp_path: Path, split: str) -> Path:
    d = tmp_path / split
    d.mkdir()
    meta = {"split": split, "models": ["m"], "confidence": {"signal": "entropy", "path_mode": "geomean"}}
    (d / "eval_config.json").write_text(json.dumps(meta))
    steps = [{"confidence": 0.9}, {"confidence": 0.4}]
    rec = {"model": "m", "strategy": "sc", "problem_id": "p1", "paths": [{"steps": steps}]}
    (d / "problems.jsonl").write_text(json.dumps(rec) + "\n")
    return d


def test_fit_from_an_eval_folder_and_refuse_heldout(tmp_path: Path) -> None:
    steps, paths, n = confidences_from_records(
        [json.loads((_eval_dir(tmp_path, "dev") / "problems.jsonl").read_text())]
    )
    assert steps == [0.9, 0.4] and paths == pytest.approx([0.9, 0.6]) and n == 1
    out = tmp_path / "cal.json"
    path, sec = calibrate_from_eval(tmp_path / "dev", out, "entropy", "geomean")
    assert path == out and read_calibration(out)["cat"] == sec  # type: ignore[index]
    with pytest.raises(ConfigError, match="never on heldout"):
        calibrate_from_eval(_eval_dir(tmp_path, "heldout"), out, "entropy", "geomean")
    with pytest.raises(ConfigError, match="signal"):
        calibrate_from_eval(tmp_path / "dev", out, "margin", "geomean")
