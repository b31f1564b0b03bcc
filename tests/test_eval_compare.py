"""Intervals for accuracy and paired differences (caspo_lite.eval.compare)."""

from __future__ import annotations

import pytest

from caspo_lite.eval.compare import (
    discordant_counts,
    paired_difference,
    paired_outcomes,
    wilson_interval,
)


def test_wilson_matches_the_textbook_value() -> None:
    # 20 of 100: Wilson 95% interval is [0.1333, 0.2888] (Newcombe 1998, method 3)
    iv = wilson_interval([True] * 20 + [False] * 80)
    assert iv.value == pytest.approx(0.2)
    assert iv.low == pytest.approx(0.1333, abs=1e-4) and iv.high == pytest.approx(0.2888, abs=1e-4)
    assert iv.n == 100


def test_wilson_stays_inside_zero_one_at_the_edges() -> None:
    none = wilson_interval([False] * 10)
    assert none.low == 0.0 and 0.0 < none.high < 0.35
    allr = wilson_interval([True] * 10)
    assert allr.high == 1.0 and 0.65 < allr.low < 1.0
    with pytest.raises(ValueError):
        wilson_interval([])


def test_paired_difference_is_exact_when_every_problem_moves_the_same_way() -> None:
    base = [False] * 50 + [True] * 50
    other = [True] * 100  # gains exactly the 50 misses
    d = paired_difference(base, other)
    assert d.value == pytest.approx(0.5) and d.n == 100
    assert d.low < 0.5 < d.high and d.high - d.low < 0.25
    same = paired_difference(base, base)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)


def test_paired_interval_is_narrower_than_separate_ones() -> None:
    base = [i % 4 == 0 for i in range(200)]
    other = [b or i % 20 == 1 for i, b in enumerate(base)]  # 10 gains, no losses
    d = paired_difference(base, other, seed=1)
    assert d.value == pytest.approx(0.05) and d.low > 0.0
    w_base, w_other = wilson_interval(base), wilson_interval(other)
    assert w_other.low < w_base.high  # the separate intervals overlap; the paired one excludes 0
    assert discordant_counts(base, other) == (10, 0)


def test_paired_outcomes_align_by_problem_id() -> None:
    a, b = paired_outcomes({"p2": True, "p1": False, "p3": True}, {"p1": True, "p2": True, "p9": False})
    assert a == [False, True] and b == [True, True]
    with pytest.raises(ValueError, match="share no problem"):
        paired_outcomes({"a": True}, {"b": True})
    with pytest.raises(ValueError):
        paired_difference([True], [True, False])
