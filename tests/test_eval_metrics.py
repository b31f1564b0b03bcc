"""Evaluation metrics against hand-computed cases and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest

from caspo_lite.eval import metrics as M


def test_accuracy_hand_and_empty() -> None:
    assert M.accuracy([True, False, True, True]).value == 0.75
    m = M.accuracy([])
    assert m.value is None and "no problems" in m.reason
    assert m.to_json() == {"value": None, "n": 0, "reason": "no problems"}


def test_ece_hand_computed() -> None:
    # Bins of width 1/15: 0.95 and 0.97 share the last bin (acc 0.5, conf 0.96);
    # 0.1 is alone (acc 0 vs conf 0.1). ECE = 2/3 * 0.46 + 1/3 * 0.1 = 0.34.
    m = M.ece([0.95, 0.97, 0.1], [True, False, False])
    assert m.value == pytest.approx(2 / 3 * 0.46 + 1 / 3 * 0.1)
    assert m.n == 3
    assert M.ece([1.0, 1.0], [True, True]).value == pytest.approx(0.0)  # 1.0 lands in the last bin
    assert M.ece([0.0], [False]).value == pytest.approx(0.0)


def test_ece_undefined_cases() -> None:
    assert M.ece([], []).value is None
    bad = M.ece([1.5, 0.2], [True, False])
    assert bad.value is None and "outside [0, 1]" in bad.reason
    nan = M.ece([float("nan"), 0.2], [True, False])
    assert nan.value is None and "non-finite" in nan.reason


def test_reliability_bins_match_ece() -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(size=200)
    y = rng.uniform(size=200) < conf
    bins = M.reliability_bins(conf, y)
    assert len(bins) == M.N_BINS and sum(b.count for b in bins) == 200
    ece = sum(b.count / 200 * abs(b.accuracy - b.confidence) for b in bins if b.count)
    assert M.ece(conf, y).value == pytest.approx(ece)
    empty = M.reliability_bins([], [])
    assert all(b.count == 0 and b.accuracy is None for b in empty)
    with pytest.raises(ValueError, match="outside"):
        M.reliability_bins([2.0], [True])


def test_brier_against_hand_and_sklearn() -> None:
    from sklearn.metrics import brier_score_loss

    assert M.brier([0.8, 0.3], [True, False]).value == pytest.approx((0.04 + 0.09) / 2)
    rng = np.random.default_rng(1)
    conf = rng.uniform(size=97)
    y = rng.uniform(size=97) < 0.4
    assert M.brier(conf, y).value == pytest.approx(brier_score_loss(y, conf))
    assert M.brier([0.1, -0.2], [True, False]).value is None


def test_auroc_hand_computed_with_ties() -> None:
    # pos scores {0.9, 0.5}, neg {0.5, 0.1}: pairs (0.9>0.5)(0.9>0.1)(0.5=0.5 -> 1/2)(0.5>0.1) -> 3.5/4
    assert M.auroc([0.9, 0.5, 0.5, 0.1], [True, True, False, False]).value == pytest.approx(0.875)
    assert M.auroc([0.2, 0.8], [True, False]).value == pytest.approx(0.0)
    assert M.auroc([0.3, 0.3, 0.3], [True, False, True]).value == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_matches_sklearn_with_heavy_ties(seed: int) -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, size=150) / 4.0  # five distinct values: many ties
    labels = rng.uniform(size=150) < 0.3 + 0.1 * scores
    assert M.auroc(scores, labels).value == pytest.approx(roc_auc_score(labels, scores))
    # Not probabilities: AUROC is rank-based, so any real score works.
    assert M.auroc(scores * 40 - 7, labels).value == pytest.approx(roc_auc_score(labels, scores))


def test_auroc_one_class_is_null_with_reason() -> None:
    m = M.auroc([0.1, 0.9], [True, True])
    assert m.value is None and "only one class" in m.reason and m.n == 2
    assert M.auroc([], []).value is None
    with pytest.raises(ValueError, match="2 scores but 1 labels"):
        M.auroc([0.1, 0.2], [True])


def test_step_reliability() -> None:
    answers = [True, True, True, False]
    labels = [["correct", "correct"], ["correct", "wrong"], ["correct", "unknown"], ["correct"]]
    m = M.step_reliability(answers, labels)
    assert m.value == pytest.approx(1 / 3) and m.n == 3
    none = M.step_reliability([False], [["correct"]])
    assert none.value is None and "no correct answers" in none.reason
    assert M.step_reliability([True], [[]]).value == 0.0  # no steps: nothing was found correct


def test_mean_by_label_and_usable_steps() -> None:
    out = M.mean_by_label([0.2, 0.4, 1.0, 5.0], ["correct", "correct", "wrong", "unknown"])
    assert out["step/entropy_correct"].value == pytest.approx(0.3)
    assert out["step/entropy_wrong"].value == pytest.approx(1.0)
    only = M.mean_by_label([0.1], ["correct"])
    assert only["step/entropy_wrong"].value is None and "no wrong steps" in only["step/entropy_wrong"].reason
    assert M.usable_steps(["correct", "wrong", "correct"]) == 2
    assert M.usable_steps(["correct", "unknown"]) == 2
    assert M.usable_steps([]) == 0


def test_never_nan() -> None:
    for m in (M.mean("x", [float("nan")]), M.mean("x", [])):
        assert m.value is None
    assert not math.isnan(M.mean("x", [1.0, float("nan"), 3.0]).value or math.nan)
