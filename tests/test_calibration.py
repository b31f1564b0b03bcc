"""Answer calibration: the fitted maps recover a known calibration, stay monotone, and refuse
to fit on too little data; the stored form round-trips and bad files are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from caspo_lite import calibration as C
from caspo_lite.calibration_file import read_calibration, update_section
from caspo_lite.errors import DataError, ModelError
from caspo_lite.eval.metrics import brier, ece


def true_prob(s: np.ndarray) -> np.ndarray:
    """A known, overconfident calibration: raw scores in 0.7-0.95, accuracy 0.05-0.6."""
    return 0.05 + 0.55 * ((s - 0.7) / 0.25) ** 2


def draw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.7, 0.95, n)
    return s, rng.random(n) < true_prob(s)


@pytest.mark.parametrize("method", C.METHODS[:2])
def test_fitted_map_is_calibrated_on_fresh_draws(method: str) -> None:
    s, y = draw(2000, 0)
    params = C.fit_map(method, s, y)
    s2, y2 = draw(4000, 1)
    p2 = C.apply_map(method, params, s2)
    assert ece(p2, y2).value < 0.03
    # close to the true curve, not only on average
    grid = np.linspace(0.72, 0.93, 22)
    err = np.abs(C.apply_map(method, params, grid) - true_prob(grid)).max()
    assert err < (0.08 if method == "isotonic" else 0.12)
    raw_ece = ece(s2, y2).value
    assert raw_ece > 0.4  # the raw score is far from a probability


def test_isotonic_matches_sklearn_on_the_fitted_points() -> None:
    sklearn = pytest.importorskip("sklearn.isotonic")
    s, y = draw(300, 2)
    ours = C.apply_map("isotonic", C.fit_isotonic(s, y), s)
    ref = sklearn.IsotonicRegression(out_of_bounds="clip").fit(s, y.astype(float))
    # both are PAV; sklearn interpolates between block edges, we between block means: equal on
    # block values, so compare the sorted value sets' averages per block boundary loosely
    assert abs(ours.mean() - ref.predict(s).mean()) < 0.02
    assert np.corrcoef(ours, ref.predict(s))[0, 1] > 0.95


def test_platt_matches_sklearn_logistic_regression() -> None:
    linear = pytest.importorskip("sklearn.linear_model")
    s, y = draw(500, 3)
    params = C.fit_platt(s, y)
    z = C.logit(s).reshape(-1, 1)
    ref = linear.LogisticRegression(C=1e6).fit(z, y)
    assert params["a"] == pytest.approx(float(ref.coef_[0, 0]), rel=0.05, abs=0.05)
    assert params["b"] == pytest.approx(float(ref.intercept_[0]), rel=0.05, abs=0.05)


@pytest.mark.parametrize("method", C.METHODS)
def test_maps_are_monotone_so_rankings_never_reverse(method: str) -> None:
    s, y = draw(200, 4)
    grid = np.linspace(0.0, 1.0, 1001)
    p = C.apply_map(method, C.fit_map(method, s, y), grid)
    assert np.all(np.diff(p) >= -1e-12)
    assert np.all((p > 0) & (p < 1))


def test_a_signal_that_ranks_backwards_gets_a_constant_not_a_reversal() -> None:
    s, y = draw(400, 5)
    params = C.fit_platt(1.65 - s, y)  # anti-correlated with correctness
    assert params["a"] == 0.0
    assert C.apply_map("platt", params, [0.1])[0] == pytest.approx(y.mean(), abs=0.01)


def test_few_samples_stay_stable_and_too_few_is_a_clear_error() -> None:
    signals = [{"path": float(v)} for v in draw(30, 6)[0]]
    s, y = draw(30, 6)
    cal = C.fit_answer_calibration([{"path": float(v)} for v in s], y, "greedy", candidate_signals=("path",))
    probs = C.apply_map(cal.method, cal.params, np.linspace(0.7, 0.95, 11))
    assert np.all(np.diff(probs) >= -1e-12)
    assert np.all(np.abs(probs - true_prob(np.linspace(0.7, 0.95, 11))) < 0.45)
    assert 0.0 < cal.prob(0.8) < 1.0
    with pytest.raises(DataError, match="need at least 20"):
        C.fit_answer_calibration(signals[:10], y[:10], "greedy", candidate_signals=("path",))
    with pytest.raises(DataError, match="right and"):
        C.fit_answer_calibration(signals, np.zeros(30, bool), "greedy", candidate_signals=("path",))


def test_choice_is_by_cross_validated_log_loss_and_measured_per_signal() -> None:
    rng = np.random.default_rng(77)
    s, y = draw(400, 7)
    noise = rng.uniform(0.7, 0.95, s.size)  # an uninformative signal
    rows = [{"path": float(a), "min_step": float(b)} for a, b in zip(s, noise, strict=True)]
    cal = C.fit_answer_calibration(rows, y, "cat", {"split": "dev"}, candidate_signals=("path", "min_step"))
    assert cal.signal == "path"
    assert cal.candidates["path"]["auroc"] > cal.candidates["min_step"]["auroc"]
    assert cal.fit["split"] == "dev" and cal.fit["n"] == 400
    assert cal.fit["cv_log_loss"] < cal.fit["base_rate_log_loss"]
    chosen = cal.candidates[cal.signal]["cv_log_loss"][cal.method]
    assert chosen == min(min(c["cv_log_loss"].values()) for c in cal.candidates.values())


def test_store_and_load_round_trip_keeping_other_sections(tmp_path: Path) -> None:
    s, y = draw(100, 8)
    cal = C.fit_answer_calibration([{"path": float(v)} for v in s], y, "greedy", candidate_signals=("path",))
    path = tmp_path / "round-1" / "calibration.json"
    update_section(path, "cat", {"step_percentiles": {"30": 0.8}})
    C.save_answer_calibration(path, cal)
    other = C.fit_answer_calibration([{"path": float(v)} for v in s], y, "cat", candidate_signals=("path",))
    C.save_answer_calibration(path, other)
    data = read_calibration(path)
    assert data is not None and data["cat"] == {"step_percentiles": {"30": 0.8}}
    back = C.read_answer_section(data, str(path))
    assert set(back) == {"greedy", "cat"}
    assert back["greedy"].prob(0.85) == pytest.approx(cal.prob(0.85))
    assert C.load_answer_calibration(tmp_path / "round-1", "greedy").prob(0.9) == pytest.approx(cal.prob(0.9))
    assert C.load_answer_calibration(tmp_path / "round-1", "sc") is None  # no borrowed map


def test_a_malformed_answer_section_is_one_line_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    update_section(
        path, "answer", {"strategies": {"cat": {"signal": "path", "method": "isotonic", "params": {}}}}
    )
    data = json.loads(path.read_text())
    with pytest.raises(ModelError, match="answer.params"):
        C.read_answer_section(data, str(path))
    data["answer"]["strategies"]["cat"]["method"] = "magic"
    with pytest.raises(ModelError, match="answer.method"):
        C.read_answer_section(data, str(path))


def test_no_answer_is_probability_zero_and_a_missing_signal_falls_back_to_path() -> None:
    s, y = draw(100, 9)
    rows = [{"path": float(v), "answer_tokens": float(v)} for v in s]
    cal = C.fit_answer_calibration(rows, y, "greedy", candidate_signals=("answer_tokens",))
    assert cal.prob_of({"path": 0.9, "answer_tokens": 0.9}, answer=None) == 0.0
    assert cal.prob_of({"path": 0.9, "answer_tokens": None}, answer="3") == pytest.approx(cal.prob(0.9))


def test_calibrated_brier_beats_the_base_rate_on_fresh_draws() -> None:
    s, y = draw(300, 10)
    cal = C.fit_answer_calibration([{"path": float(v)} for v in s], y, "greedy", candidate_signals=("path",))
    s2, y2 = draw(2000, 11)
    p2 = C.apply_map(cal.method, cal.params, s2)
    assert brier(p2, y2).value < brier(np.full(y2.size, y.mean()), y2).value
