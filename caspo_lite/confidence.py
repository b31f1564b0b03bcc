"""Token, step and path confidence from next-token logits (docs/design.md §1.2).

Everything here is pure numpy on float32 and O(V) per logits row: one max, one exp into a
reused buffer, one sum and, for entropy, one dot product. The vocabulary is never sorted
(`np.partition` is introselect, O(V), and only runs for the signals that need a top-k).

Signals (token confidence, higher = surer):
- ``entropy``  exp(-H), H = -sum p log p  (the paper's signal; in (0, 1])
- ``margin``   p(1) - p(2)                  (CoT-decoding's top-2 margin; in [0, 1])
- ``maxprob``  p(1)                          (in (0, 1])
- ``deepconf`` -(1/k) sum_{j<=k} log p(j)    (DeepConf's token confidence, k = 20; >= 0)
The mean log-prob of the chosen tokens ("perplexity" signal) is kept beside them.

A step's confidence is the geometric mean of its token confidences (for entropy that is
exp(-mean H)); a path's is the geometric mean of its step confidences (or ``min``/``tail``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SIGNALS: tuple[str, ...] = ("entropy", "margin", "maxprob", "deepconf")
PATH_MODES: tuple[str, ...] = ("geomean", "min", "tail")
DEEPCONF_K = 20
_TINY = 1e-12  # floor before log so a zero margin does not give -inf


def check_signal(signal: str) -> str:
    if signal not in SIGNALS:
        raise ValueError(f"unknown confidence signal {signal!r}; choose one of {', '.join(SIGNALS)}")
    return signal


@dataclass(frozen=True, slots=True)
class TokenStats:
    """All signals for one logits row, plus the chosen token's log-prob."""

    entropy: float  # nats
    margin: float
    maxprob: float
    deepconf: float
    logprob: float  # log p(chosen token)

    def confidence(self, signal: str) -> float:
        if signal == "entropy":
            return float(np.exp(-self.entropy))
        return float(getattr(self, check_signal(signal)))


class ConfidenceScorer:
    """Scores logits rows for one signal with a reused float32 buffer (no per-token allocation).

    Why a class: the decode loop calls this once per token per branch, so the exp buffer is
    allocated once per vocabulary size instead of on every call.
    """

    def __init__(self, signal: str = "entropy", k: int = DEEPCONF_K) -> None:
        self.signal = check_signal(signal)
        self.k = k
        self._buf = np.empty(0, dtype=np.float32)

    def _exp(self, z: np.ndarray) -> tuple[np.ndarray, float, float]:
        """exp(z - max) into the buffer; returns (buffer, max, sum)."""
        if self._buf.shape != z.shape:
            self._buf = np.empty(z.shape, dtype=np.float32)
        m = float(z.max())
        np.subtract(z, m, out=self._buf)
        np.exp(self._buf, out=self._buf)
        return self._buf, m, float(self._buf.sum(dtype=np.float32))

    def score(self, logits: np.ndarray, chosen: int | None = None) -> tuple[float, float]:
        """Token confidence of ``logits`` (V,) and log p(chosen) (0.0 when chosen is None)."""
        z = logits if logits.dtype == np.float32 else logits.astype(np.float32)
        e, m, s = self._exp(z)
        log_z = m + float(np.log(s))  # log partition function
        logprob = float(z[chosen]) - log_z if chosen is not None else 0.0
        sig = self.signal
        if sig == "entropy":
            # H = log Z - E_p[z]: one dot product instead of p * log p over V entries.
            h = log_z - float(np.dot(e, z)) / s
            return float(np.exp(-max(h, 0.0))), logprob
        if sig == "maxprob":
            return 1.0 / s, logprob  # p(1) = exp(m - log Z) = 1 / s
        if sig == "margin":
            second = float(np.partition(z, z.shape[0] - 2)[-2])
            return (1.0 - float(np.exp(second - m))) / s, logprob
        top = np.partition(z, z.shape[0] - self.k)[-self.k :]
        return float(log_z - top.mean(dtype=np.float32)), logprob

    def stats(self, logits: np.ndarray, chosen: int | None = None) -> TokenStats:
        """Every signal at once (for evaluation across signals); still O(V)."""
        z = logits if logits.dtype == np.float32 else logits.astype(np.float32)
        e, m, s = self._exp(z)
        log_z = m + float(np.log(s))
        entropy = max(log_z - float(np.dot(e, z)) / s, 0.0)
        top = np.partition(z, z.shape[0] - self.k)[-self.k :]
        second = float(np.partition(top, self.k - 2)[-2]) if self.k >= 2 else m
        return TokenStats(
            entropy=entropy,
            margin=(1.0 - float(np.exp(second - m))) / s,
            maxprob=1.0 / s,
            deepconf=float(log_z - top.mean(dtype=np.float32)),
            logprob=float(z[chosen]) - log_z if chosen is not None else 0.0,
        )


def token_confidence(logits: np.ndarray, signal: str = "entropy") -> float:
    """Convenience wrapper for one row (allocates; use ConfidenceScorer in loops)."""
    return ConfidenceScorer(signal).score(np.asarray(logits, dtype=np.float32))[0]


def geometric_mean(values: Sequence[float] | np.ndarray) -> float:
    """exp(mean log v); an empty sequence has confidence 1.0 (nothing uncertain seen yet)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return 1.0
    return float(np.exp(np.log(np.maximum(arr, _TINY)).mean()))


def step_confidence(token_confidences: Sequence[float] | np.ndarray) -> float:
    """Geometric mean of a step's token confidences."""
    return geometric_mean(token_confidences)


def path_confidence(step_confidences: Sequence[float], mode: str = "geomean", tail: int = 2) -> float:
    """Aggregate step confidences into one path confidence.

    ``geomean`` (default) treats the path as the product of its steps, normalised for length;
    ``min`` is the weakest step (one bad step sinks the path); ``tail`` the geometric mean of
    the last ``tail`` steps (DeepConf's observation that the end of a trace is most telling).
    """
    if mode == "geomean":
        return geometric_mean(step_confidences)
    if mode == "min":
        return float(min(step_confidences)) if len(step_confidences) else 1.0
    if mode == "tail":
        return geometric_mean(list(step_confidences)[-tail:])
    raise ValueError(f"unknown path confidence mode {mode!r}; choose one of {', '.join(PATH_MODES)}")


def mean_logprob(logprobs: Sequence[float]) -> float:
    """Mean log-prob of the chosen tokens (negative log-perplexity); 0.0 for no tokens."""
    return float(np.mean(logprobs)) if len(logprobs) else 0.0
