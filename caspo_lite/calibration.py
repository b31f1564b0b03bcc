"""Answer confidence -> P(correct): fit a monotone map on dev, store it with the model, apply it.

Why: the search's answer confidence (exp of minus mean token entropy) is a sharpness score.
On SmolLM2 it sits in 0.69-0.90 while accuracy is 0.16-0.42, so showing it as "confidence"
promises far more than the model delivers. A monotone map fitted on dev problems turns a
signal (`caspo_lite.answer_signals`) into the chance that the answer is right, without
changing which answer ranks above which (a non-decreasing map; strictly increasing between
the first and last isotonic block, and everywhere for Platt with a positive slope).

Maps (pure numpy; scikit-learn is only a test reference):
- ``isotonic``     pool-adjacent-violators on the sorted scores, then linear interpolation
                   between the blocks' mean scores (flat beyond the ends); probabilities are
                   clipped to [1/(n+2), 1 - 1/(n+2)] so a held-out log-loss is never infinite.
- ``platt``        sigmoid(a * logit(score) + b), a >= 0, fitted by Newton's method with a
                   tiny ridge (stable on a few dozen samples).
- ``temperature``  sigmoid(a * logit(score)) (b = 0): the one-parameter version.

`fit_answer_calibration` scores every (signal, map) pair by 5-fold cross-validated dev
log-loss and keeps the best, refitted on all dev answers; each candidate's answer AUROC and
CV log-loss are stored beside it, so the choice is measured, not assumed.

Public API for other modules (CaT's thresholds, the TUI, solve, eval):

    cal = load_answer_calibration("runs/x/round-2", strategy="cat")   # None if not calibrated
    if cal is not None:
        p = cal.prob_of(signals_from_result(result))   # P(correct) of a live search result
        p = cal.prob(0.83)                             # P(correct) of one raw signal value
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from caspo_lite.answer_signals import ANSWER_SIGNALS
from caspo_lite.calibration_file import locate_calibration, read_calibration, update_section
from caspo_lite.errors import DataError, ModelError
from caspo_lite.eval.metrics import auroc

METHODS: tuple[str, ...] = ("isotonic", "platt", "temperature")
MIN_SAMPLES = 20  # answered dev problems below which no map is fitted (a clear error instead)
MIN_PER_CLASS = 2  # right and wrong answers each, so both ends of the map are seen
CV_FOLDS = 5
_EPS = 1e-6


# -- fitting (pure functions) ------------------------------------------------------------------


def logit(p: np.ndarray | float) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(q) - np.log1p(-q)


def sigmoid(z: np.ndarray | float) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


def pav(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool adjacent violators: the non-decreasing fit of ``values`` (in order) by weighted mean.

    Returns (block values, block weights, block end index (exclusive) into the input).
    """
    vals: list[float] = []
    wts: list[float] = []
    ends: list[int] = []
    for i, (v, w) in enumerate(zip(values.tolist(), weights.tolist(), strict=True)):
        vals.append(v)
        wts.append(w)
        ends.append(i + 1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            w2 = wts[-2] + wts[-1]
            v2 = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w2
            vals[-2:], wts[-2:], ends[-2:] = [v2], [w2], [ends[-1]]
    return np.array(vals), np.array(wts), np.array(ends, dtype=np.int64)


def fit_isotonic(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> dict[str, Any]:
    """Isotonic map parameters: knots ``x`` (block mean scores) and values ``y`` (P(correct))."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    order = np.argsort(s, kind="mergesort")
    s, y = s[order], y[order]
    # tied scores are one point (their mean label), so the map is a function of the score
    uniq, start = np.unique(s, return_index=True)
    counts = np.diff(np.r_[start, s.size])
    means = np.add.reduceat(y, start) / counts
    vals, wts, ends = pav(means, counts.astype(np.float64))
    starts = np.r_[0, ends[:-1]]
    knots = np.array([np.average(uniq[a:b], weights=counts[a:b]) for a, b in zip(starts, ends, strict=True)])
    floor = 1.0 / (s.size + 2)
    return {"x": knots.tolist(), "y": np.clip(vals, floor, 1.0 - floor).tolist()}


def _newton_logistic(
    z: np.ndarray, y: np.ndarray, with_bias: bool, ridge: float = 1e-3
) -> tuple[float, float]:
    """Minimise log-loss of sigmoid(a z + b) (+ ridge a^2/2 per sample) by Newton's method."""
    a, b = 1.0, (float(logit(np.clip(y.mean(), 0.01, 0.99))) if with_bias else 0.0)
    n = y.size
    for _ in range(100):
        p = sigmoid(a * z + b)
        r = p - y
        w = np.maximum(p * (1.0 - p), 1e-12)
        ga = float(np.dot(r, z)) / n + ridge * a
        haa = float(np.dot(w, z * z)) / n + ridge
        if with_bias:
            gb = float(r.sum()) / n
            hab, hbb = float(np.dot(w, z)) / n, float(w.sum()) / n + 1e-12
            det = haa * hbb - hab * hab
            if det <= 1e-18:
                break
            da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        else:
            da, db = ga / haa, 0.0
        step = 1.0
        while step > 1e-4 and max(abs(da), abs(db)) * step > 50:  # damp wild first steps
            step /= 2
        a, b = a - step * da, b - step * db
        if max(abs(da), abs(db)) * step < 1e-10:
            break
    return a, b


def fit_platt(
    scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray, with_bias: bool = True
) -> dict[str, Any]:
    """Platt (``with_bias``) or temperature map parameters on logit(score); slope a >= 0.

    A negative slope would reverse the ranking; then the best monotone map is a constant
    (a = 0: the base rate for Platt, 0.5 for temperature), and that is what is returned.
    """
    z = logit(np.asarray(scores, dtype=np.float64))
    y = np.asarray(labels, dtype=np.float64)
    base = float(np.clip(y.mean(), 1.0 / (y.size + 2), 1.0 - 1.0 / (y.size + 2)))
    constant = {"a": 0.0, "b": float(logit(base)) if with_bias else 0.0}
    if np.ptp(z) < 1e-9:  # one score value: nothing to map but the base rate
        return constant
    a, b = _newton_logistic(z, y, with_bias)
    if not (a > 0 and math.isfinite(a) and math.isfinite(b)):
        return constant
    fitted = {"a": float(a), "b": float(b)}
    # Newton on a nearly flat problem can wander; never return worse than the constant map
    if log_loss(apply_map("platt", fitted, np.asarray(scores)), y) > log_loss(
        apply_map("platt", constant, np.asarray(scores)), y
    ):
        return constant
    return fitted


def fit_map(method: str, scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    if method == "isotonic":
        return fit_isotonic(scores, labels)
    if method == "platt":
        return fit_platt(scores, labels, with_bias=True)
    if method == "temperature":
        return fit_platt(scores, labels, with_bias=False)
    raise ValueError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")


def apply_map(method: str, params: Mapping[str, Any], scores: np.ndarray | Sequence[float]) -> np.ndarray:
    """P(correct) for raw scores under a fitted map (vectorised)."""
    s = np.asarray(scores, dtype=np.float64)
    if method == "isotonic":
        return np.interp(
            s, np.asarray(params["x"], dtype=np.float64), np.asarray(params["y"], dtype=np.float64)
        )
    if method in ("platt", "temperature"):
        return sigmoid(float(params["a"]) * logit(s) + float(params.get("b", 0.0)))
    raise ValueError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0 - _EPS)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def stratified_folds(labels: np.ndarray, k: int = CV_FOLDS, seed: int = 0) -> np.ndarray:
    """Fold index per sample: each class shuffled (seeded) and dealt round-robin into k folds."""
    rng = np.random.default_rng(seed)
    fold = np.empty(labels.size, dtype=np.int64)
    offset = 0
    for cls in (False, True):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        fold[idx] = (np.arange(idx.size) + offset) % k
        offset += idx.size
    return fold


def cv_log_loss(
    method: str, scores: np.ndarray, labels: np.ndarray, k: int = CV_FOLDS, seed: int = 0
) -> float:
    """Out-of-fold log-loss of ``method``: each fold predicted by a map fitted on the others."""
    folds = stratified_folds(labels, k, seed)
    probs = np.empty(scores.size, dtype=np.float64)
    for f in range(k):
        test = folds == f
        if not test.any():
            continue
        params = fit_map(method, scores[~test], labels[~test])
        probs[test] = apply_map(method, params, scores[test])
    return log_loss(probs, labels)


def check_fit_data(scores: np.ndarray, labels: np.ndarray, what: str = "answered dev problems") -> None:
    """Refuse to fit on too little data, in one line that says what to do."""
    n, n_ok = int(labels.size), int(labels.sum())
    if n < MIN_SAMPLES:
        raise DataError(f"calibrate: only {n} {what}; need at least {MIN_SAMPLES} (use a larger --n)")
    if min(n_ok, n - n_ok) < MIN_PER_CLASS:
        raise DataError(
            f"calibrate: {n_ok} of {n} {what} are right; need at least {MIN_PER_CLASS} right and "
            f"{MIN_PER_CLASS} wrong to fit a map (use a larger --n or another task)"
        )
    if not np.all(np.isfinite(scores)):
        raise DataError(
            f"calibrate: {int((~np.isfinite(scores)).sum())} non-finite confidences in the {what}"
        )


# -- the fitted calibration ----------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerCalibration:
    """A fitted map from one answer signal to P(correct), for one search strategy.

    ``prob(score)`` maps a raw signal value; ``prob_of(signals)`` picks this calibration's
    signal from `answer_signals.signals_from_result`/`signals_from_record` output (falling back
    to the path confidence when the chosen signal is undefined for that answer). ``fit`` says
    what it was fitted on (task, split, n, seed, model); ``candidates`` every (signal, map)
    pair's dev AUROC and cross-validated log-loss.
    """

    signal: str
    method: str
    params: dict[str, Any]
    strategy: str
    fit: dict[str, Any] = field(default_factory=dict)
    candidates: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # where it was read from (file path or "gguf:<path>"), for display

    def prob(self, score: float) -> float:
        """P(correct) for one raw value of ``self.signal`` (non-decreasing in ``score``)."""
        return float(apply_map(self.method, self.params, [float(score)])[0])

    def prob_of(self, signals: Mapping[str, float | None], answer: str | None = "") -> float | None:
        """P(correct) of an answer from its signals dict; 0.0 when no answer was extracted."""
        if answer is None:
            return 0.0  # an answer that could not be extracted is never graded right
        value = signals.get(self.signal)
        if value is None:
            value = signals.get("path")
        return None if value is None else self.prob(value)

    def describe(self) -> str:
        split, n = self.fit.get("split", "?"), self.fit.get("n", "?")
        return f"{self.method} on {self.signal}, fitted on {split} n={n}"

    def to_json(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "method": self.method,
            "params": self.params,
            "strategy": self.strategy,
            "fit": self.fit,
            "candidates": self.candidates,
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> AnswerCalibration:
        """Parse one strategy's entry; a ModelError names ``where`` and the bad field."""
        if not isinstance(data, dict):
            raise ModelError(f"{where}: answer calibration is not an object; re-run caspo-lite calibrate")
        for key, ok in (
            ("signal", lambda v: v in ANSWER_SIGNALS),
            ("method", lambda v: v in METHODS),
            ("params", lambda v: isinstance(v, dict)),
        ):
            if not ok(data.get(key)):
                raise ModelError(
                    f"{where}: field 'answer.{key}' = {data.get(key)!r} is invalid; re-run calibrate"
                )
        params = data["params"]
        try:
            if data["method"] == "isotonic":
                x, y = np.asarray(params["x"], float), np.asarray(params["y"], float)
                if x.size == 0 or x.shape != y.shape or np.any(np.diff(x) < 0) or np.any(np.diff(y) < -1e-12):
                    raise ValueError("knots must be non-empty, sorted, and values non-decreasing")
            else:
                if not float(params["a"]) >= 0 or not math.isfinite(float(params.get("b", 0.0))):
                    raise ValueError("slope 'a' must be >= 0 and 'b' finite")
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}: field 'answer.params' is invalid ({exc}); re-run calibrate") from None
        return cls(
            signal=data["signal"],
            method=data["method"],
            params=params,
            strategy=str(data.get("strategy", "")),
            fit=dict(data.get("fit") or {}),
            candidates=dict(data.get("candidates") or {}),
            source=where,
        )


def _auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    return auroc(scores, labels).value


def fit_answer_calibration(
    signals: Sequence[Mapping[str, float | None]],
    correct: Sequence[bool],
    strategy: str,
    fit_info: Mapping[str, Any] | None = None,
    candidate_signals: Sequence[str] = ANSWER_SIGNALS,
    methods: Sequence[str] = METHODS,
) -> AnswerCalibration:
    """Choose and fit the (signal, map) with the lowest cross-validated log-loss on these answers.

    ``signals`` are per-answer dicts (`answer_signals`), one per answered problem (problems
    without an extracted answer are never right and are left out: `prob_of` gives them 0).
    A signal undefined for an answer takes that answer's path confidence, as `prob_of` does.

    Raises:
        DataError: fewer than MIN_SAMPLES answers or fewer than MIN_PER_CLASS of a class.
    """
    y = np.asarray(correct, dtype=bool)
    if len(signals) != y.size:
        raise ValueError(f"{len(signals)} signal rows but {y.size} labels")
    table = {
        name: np.array(
            [float(s[name] if s.get(name) is not None else (s.get("path") or 0.0)) for s in signals],
            dtype=np.float64,
        )
        for name in candidate_signals
    }
    check_fit_data(table[candidate_signals[0]] if table else np.zeros(0), y)
    candidates: dict[str, Any] = {}
    best: tuple[float, str, str] | None = None
    for name, scores in table.items():
        entry: dict[str, Any] = {"auroc": _auroc(scores, y), "cv_log_loss": {}}
        for method in methods:
            loss = cv_log_loss(method, scores, y)
            entry["cv_log_loss"][method] = loss
            if best is None or loss < best[0] - 1e-12:
                best = (loss, name, method)
        candidates[name] = entry
    assert best is not None
    loss, name, method = best
    params = fit_map(method, table[name], y)
    info = dict(fit_info or {})
    info.update(
        {
            "n": int(y.size),
            "n_correct": int(y.sum()),
            "base_rate": float(y.mean()),
            "cv_log_loss": loss,
            "cv_folds": CV_FOLDS,
            "base_rate_log_loss": log_loss(np.full(y.size, y.mean()), y),
        }
    )
    return AnswerCalibration(name, method, params, strategy, info, candidates)


# -- where calibrations live -----------------------------------------------------------------------


def read_answer_section(data: Mapping[str, Any] | None, where: str) -> dict[str, AnswerCalibration]:
    """Strategy -> AnswerCalibration from a calibration file's content (empty when none)."""
    section = (data or {}).get("answer")
    if not section:
        return {}
    by = section.get("strategies") if isinstance(section, dict) else None
    if not isinstance(by, dict):
        raise ModelError(f"{where}: field 'answer.strategies' is missing; re-run caspo-lite calibrate")
    return {name: AnswerCalibration.from_json(entry, f"{where} [{name}]") for name, entry in by.items()}


def load_answer_calibration(model_ref: str | Path, strategy: str = "cat") -> AnswerCalibration | None:
    """The answer calibration of ``model_ref`` for ``strategy``, or None when it has none.

    Looked up in order (`calibration_file.locate_calibration`): a training round's
    ``round-N/calibration.json``; the data dir's file keyed by the model file's sha256; the
    ``caspo.calibration.*`` metadata of the GGUF itself (what `export` writes). A map fitted
    for another strategy is not used: greedy and CaT answers have different score
    distributions, so the result is None ("uncalibrated") rather than a borrowed map.

    Raises:
        ModelError: a calibration exists but is malformed (one line naming the file and field).
    """
    found = locate_calibration(model_ref)
    if found is None:
        return None
    data, where = found
    return read_answer_section(data, where).get(strategy)


def save_answer_calibration(path: Path, cal: AnswerCalibration, model: dict[str, Any] | None = None) -> None:
    """Store ``cal`` as its strategy's entry of section ``answer``, keeping other strategies and sections."""
    data = read_calibration(path) or {}
    section = dict(data.get("answer") or {})
    by = dict(section.get("strategies") or {})
    by[cal.strategy] = cal.to_json()
    section["strategies"] = by
    update_section(path, "answer", section, model=model)
