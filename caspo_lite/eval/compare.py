"""How sure can we be that model B beats model A? Intervals for accuracy and its differences.

Why this exists: at the scale we can run (100-200 problems), a 3-point accuracy change is
often one or two problems. RESULTS.md therefore prints every accuracy with a Wilson 95%
interval, and every change against the base model as a *paired* difference (the same
problems answered by both) with a bootstrap interval, so a reader can tell a real effect
from noise. Pure functions of booleans; nothing here reads files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with a [low, high] interval and the sample count behind it."""

    value: float
    low: float
    high: float
    n: int

    def fmt(self, digits: int = 3, signed: bool = False) -> str:
        sign = "+" if signed else ""
        return f"{self.value:{sign}.{digits}f} [{self.low:{sign}.{digits}f}, {self.high:{sign}.{digits}f}]"


def wilson_interval(correct: Sequence[bool], z: float = Z95) -> Interval:
    """Accuracy with its Wilson score interval (well-behaved near 0 and 1, unlike p ± 2se)."""
    n = len(correct)
    if n == 0:
        raise ValueError("wilson_interval: no samples")
    p = sum(bool(c) for c in correct) / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if p == 0.0 else max(0.0, centre - half)  # exact at the edges, not 1e-17
    high = 1.0 if p == 1.0 else min(1.0, centre + half)
    return Interval(p, low, high, n)


def paired_outcomes(base: Mapping[str, bool], other: Mapping[str, bool]) -> tuple[list[bool], list[bool]]:
    """The two models' outcomes on the problems both answered, in one order."""
    shared = sorted(set(base) & set(other))
    if not shared:
        raise ValueError("paired_outcomes: the two runs share no problem id")
    return [bool(base[k]) for k in shared], [bool(other[k]) for k in shared]


def paired_difference(
    base: Sequence[bool], other: Sequence[bool], n_boot: int = 10_000, seed: int = 0
) -> Interval:
    """Accuracy(other) - accuracy(base) on the same problems, percentile-bootstrap 95% interval.

    Resampling problems (not the two runs independently) keeps the pairing: a problem both
    models solve, or both miss, moves neither side, which is why paired intervals are much
    narrower than two separate Wilson intervals.
    """
    a = np.asarray(base, dtype=np.float64)
    b = np.asarray(other, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("paired_difference: need two equally long, non-empty outcome lists")
    diff = b - a
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diff.size, size=(n_boot, diff.size))
    boots = diff[idx].mean(axis=1)
    low, high = np.quantile(boots, [0.025, 0.975])
    return Interval(float(diff.mean()), float(low), float(high), int(diff.size))


def discordant_counts(base: Sequence[bool], other: Sequence[bool]) -> tuple[int, int]:
    """(problems only `other` solves, problems only `base` solves): what a difference is made of."""
    gained = sum(1 for a, b in zip(base, other, strict=True) if b and not a)
    lost = sum(1 for a, b in zip(base, other, strict=True) if a and not b)
    return gained, lost
