"""Evaluation metrics as pure functions (docs/design.md §1.7).

Every function takes plain sequences (or numpy arrays) and returns a `Metric`: a value, or
``None`` with the reason it is undefined (no samples, one class only, a confidence outside
[0, 1]). Nothing here returns NaN, reads files or loads a model, so the numbers in
``summary.json`` are either real or explicitly absent.

Names are slash-namespaced and listed once in ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

N_BINS = 15  # ECE bins (equal width on [0, 1]); the usual choice since Guo et al. 2017

STEP_CORRECT = "correct"
STEP_WRONG = "wrong"


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric value, or None with the reason it is undefined.

    ``n`` is the number of samples it was computed from (so a reader can tell 1.0 of 2 from
    1.0 of 2000).
    """

    name: str
    value: float | None
    n: int = 0
    reason: str = ""

    @property
    def defined(self) -> bool:
        return self.value is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "n": self.n}
        if self.value is None:
            out["reason"] = self.reason
        return out

    def fmt(self, digits: int = 3) -> str:
        """Short text for tables: the value, or 'n/a' (the reason is in summary.json)."""
        return "n/a" if self.value is None else f"{self.value:.{digits}f}"


def undefined(name: str, reason: str, n: int = 0) -> Metric:
    return Metric(name=name, value=None, n=n, reason=reason)


def _defined(name: str, value: float, n: int) -> Metric:
    value = float(value)
    if not math.isfinite(value):  # a bug upstream; never leak NaN/inf into the summary
        return undefined(name, f"non-finite result ({value})", n)
    return Metric(name=name, value=value, n=n)


def _arrays(
    name: str, scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray] | Metric:
    """Validate paired (score, label) inputs; a Metric on failure (the caller returns it)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=bool).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"{name}: {s.size} scores but {y.size} labels")
    if s.size == 0:
        return undefined(name, "no samples")
    if not np.all(np.isfinite(s)):
        return undefined(name, f"{int((~np.isfinite(s)).sum())} non-finite confidences", int(s.size))
    return s, y


def _probabilities(name: str, s: np.ndarray) -> Metric | None:
    if s.min() < 0.0 or s.max() > 1.0:
        return undefined(
            name, f"confidence outside [0, 1] (range {s.min():.3g}..{s.max():.3g}); not a probability", s.size
        )
    return None


def mean(name: str, values: Sequence[float] | np.ndarray) -> Metric:
    """Plain mean of finite values (None when there are none)."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return undefined(name, "no samples")
    return _defined(name, arr.mean(), int(arr.size))


def accuracy(correct: Sequence[bool] | np.ndarray, name: str = "eval/accuracy") -> Metric:
    """Share of problems answered correctly."""
    y = np.asarray(correct, dtype=bool).reshape(-1)
    if y.size == 0:
        return undefined(name, "no problems")
    return _defined(name, y.mean(), int(y.size))


def step_reliability(
    answer_correct: Sequence[bool],
    step_labels: Sequence[Sequence[str]],
    name: str = "eval/step_reliability",
) -> Metric:
    """Share of correct answers whose steps the labeler finds all correct.

    A right answer reached through a wrong step is luck, not reasoning; this is the share of
    right answers that are not luck. A step labelled ``unknown`` is not "found correct", and
    a correct answer with no steps at all does not count as reliable.
    """
    if len(answer_correct) != len(step_labels):
        raise ValueError(f"{name}: {len(answer_correct)} answers but {len(step_labels)} label lists")
    right = [labels for ok, labels in zip(answer_correct, step_labels, strict=True) if ok]
    if not right:
        return undefined(name, "no correct answers")
    reliable = sum(1 for labels in right if labels and all(lab == STEP_CORRECT for lab in labels))
    return _defined(name, reliable / len(right), len(right))


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """One bin of a reliability diagram: [lo, hi), its size, mean confidence and accuracy."""

    lo: float
    hi: float
    count: int
    confidence: float | None  # mean confidence in the bin (None when empty)
    accuracy: float | None  # share correct in the bin (None when empty)

    def to_json(self) -> dict[str, Any]:
        return {
            "lo": self.lo,
            "hi": self.hi,
            "count": self.count,
            "confidence": self.confidence,
            "accuracy": self.accuracy,
        }


def _bin_index(s: np.ndarray, n_bins: int) -> np.ndarray:
    # Equal-width bins [k/n, (k+1)/n); confidence 1.0 falls into the last bin.
    return np.minimum((s * n_bins).astype(np.int64), n_bins - 1)


def reliability_bins(
    confidences: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, n_bins: int = N_BINS
) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1] for a reliability diagram (empty bins kept, values None).

    Raises ValueError when a confidence is outside [0, 1] or not finite (the caller decides
    whether that is a user error).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    checked = _arrays("reliability_bins", confidences, correct)
    if isinstance(checked, Metric):
        if checked.n == 0:
            s, y = np.zeros(0), np.zeros(0, dtype=bool)
        else:
            raise ValueError(f"reliability_bins: {checked.reason}")
    else:
        s, y = checked
        bad = _probabilities("reliability_bins", s)
        if bad is not None:
            raise ValueError(bad.reason)
    idx = _bin_index(s, n_bins)
    bins = []
    for k in range(n_bins):
        mask = idx == k
        count = int(mask.sum())
        bins.append(
            ReliabilityBin(
                lo=k / n_bins,
                hi=(k + 1) / n_bins,
                count=count,
                confidence=float(s[mask].mean()) if count else None,
                accuracy=float(y[mask].mean()) if count else None,
            )
        )
    return bins


def _probability_arrays(
    name: str, confidences: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray] | Metric:
    """`_arrays` plus the check that calibration metrics need: confidences are probabilities."""
    checked = _arrays(name, confidences, correct)
    if isinstance(checked, Metric):
        return checked
    bad = _probabilities(name, checked[0])
    return bad if bad is not None else checked


def ece(
    confidences: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    n_bins: int = N_BINS,
    name: str = "calib/ece",
) -> Metric:
    """Expected calibration error: sum_b |B|/n * |acc(B) - conf(B)| over equal-width bins."""
    checked = _probability_arrays(name, confidences, correct)
    if isinstance(checked, Metric):
        return checked
    s, y = checked
    idx = _bin_index(s, n_bins)
    total = 0.0
    for k in np.unique(idx):
        mask = idx == k
        total += mask.sum() / s.size * abs(y[mask].mean() - s[mask].mean())
    return _defined(name, total, int(s.size))


def brier(
    confidences: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, name: str = "calib/brier"
) -> Metric:
    """Brier score: mean (confidence - correct)^2 (lower is better; 0.25 = always 0.5)."""
    checked = _probability_arrays(name, confidences, correct)
    if isinstance(checked, Metric):
        return checked
    s, y = checked
    return _defined(name, np.mean((s - y.astype(np.float64)) ** 2), int(s.size))


def _average_ranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (what Mann-Whitney U needs)."""
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(s.size, dtype=np.float64)
    # Boundaries of runs of equal values in the sorted array.
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], s.size]
    for a, b in zip(starts, ends, strict=True):
        ranks[order[a:b]] = (a + 1 + b) / 2.0  # mean of ranks a+1 .. b
    return ranks


def auroc(
    scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray, name: str = "calib/auroc"
) -> Metric:
    """Area under the ROC curve of ``scores`` for ``labels`` (rank-based, ties count one half).

    AUROC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg), R_pos the sum of the positives'
    average ranks: the probability that a random positive scores above a random negative.
    Undefined (None) with only one class. Scores need not be probabilities.
    """
    checked = _arrays(name, scores, labels)
    if isinstance(checked, Metric):
        return checked
    s, y = checked
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        only = "positive (correct)" if n_neg == 0 else "negative (wrong)"
        return undefined(name, f"only one class: all {y.size} samples are {only}", int(y.size))
    ranks = _average_ranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return _defined(name, u / (n_pos * n_neg), int(y.size))


def mean_by_label(
    values: Sequence[float] | np.ndarray, labels: Sequence[str], prefix: str = "step/entropy"
) -> dict[str, Metric]:
    """Mean of ``values`` over correct and over wrong items (``{prefix}_correct``, ``_wrong``).

    Used for the mean entropy of correct vs wrong steps: a useful confidence signal has
    lower entropy on correct steps. Labels other than correct/wrong are ignored.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size != len(labels):
        raise ValueError(f"{prefix}: {v.size} values but {len(labels)} labels")
    lab = np.asarray(labels, dtype=object)
    out = {}
    for which in (STEP_CORRECT, STEP_WRONG):
        name = f"{prefix}_{which}"
        sel = v[lab == which] if v.size else v
        out[name] = mean(name, sel) if sel.size else undefined(name, f"no {which} steps")
    return out


def usable_steps(labels: Sequence[str]) -> int:
    """How many leading steps count: up to and including the first wrong one (docs/design.md §1.3)."""
    for i, lab in enumerate(labels):
        if lab == STEP_WRONG:
            return i + 1
    return len(labels)


# -- selective answering (risk-coverage; issue #16) ---------------------------------------------


def risk_coverage(
    confidences: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, risk) after answering the k most confident of n, k = 1..n.

    Tied confidences are answered together: within a run of ties the expected risk under a
    random order is used (linear between the run's ends), so a map that merges scores into
    one value (isotonic) is neither rewarded nor punished by an arbitrary tie order.
    """
    s = np.asarray(confidences, dtype=np.float64).reshape(-1)
    y = np.asarray(correct, dtype=bool).reshape(-1)
    n = s.size
    if n == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, wrong = s[order], (~y[order]).astype(np.float64)
    errors = np.empty(n, dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    ends = np.r_[starts[1:], n]
    before = 0.0
    for a, b in zip(starts, ends, strict=True):
        rate = wrong[a:b].mean()
        errors[a:b] = before + rate * np.arange(1, b - a + 1)
        before += wrong[a:b].sum()
    k = np.arange(1, n + 1, dtype=np.float64)
    return k / n, errors / k


def aurc(
    confidences: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, name: str = "select/aurc"
) -> Metric:
    """Area under the risk-coverage curve: mean risk over coverages k/n (lower is better)."""
    checked = _arrays(name, confidences, correct)
    if isinstance(checked, Metric):
        return checked
    _, risk = risk_coverage(*checked)
    return _defined(name, risk.mean(), int(risk.size))


def accuracy_at_coverage(
    confidences: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    coverage: float,
    name: str = "select/acc_at_50",
) -> Metric:
    """Accuracy on the most confident ``coverage`` share of answers (at least one answer)."""
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"{name}: coverage must be in (0, 1], got {coverage}")
    checked = _arrays(name, confidences, correct)
    if isinstance(checked, Metric):
        return checked
    _, risk = risk_coverage(*checked)
    k = max(1, int(math.ceil(coverage * risk.size - 1e-9)))
    return _defined(name, 1.0 - risk[k - 1], int(risk.size))
