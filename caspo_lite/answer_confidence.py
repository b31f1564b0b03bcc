"""The answer confidence a user reads: calibrated P(correct) where a calibration exists, the raw
score labelled "uncalibrated" where not, and "not sure" below an abstention threshold.

One place decides what solve, chat and eval show, so the three never disagree. The library
returns an `AnswerConfidence`; the CLI and TUI only format it (``label()``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from caspo_lite.answer_signals import signals_from_result
from caspo_lite.calibration import AnswerCalibration, load_answer_calibration
from caspo_lite.errors import CaspoError, ConfigError
from caspo_lite.search.events import BranchFinished

log = logging.getLogger(__name__)


def check_abstain(value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ConfigError(f"--abstain-below = {value!r} is invalid: give a probability in [0, 1], e.g. 0.5")
    return value


@dataclass(frozen=True)
class AnswerConfidence:
    """What to show beside an answer.

    ``probability`` is the calibrated P(correct) (None when the model has no calibration for
    this strategy); ``raw`` the search's own confidence. ``abstained`` is True when the shown
    confidence is below ``abstain_below``: the answer is reported as "not sure" and the best
    guess is kept in ``answer`` for whoever asks for it (``--json``).
    """

    answer: str | None
    raw: float
    probability: float | None
    signal: str | None = None
    calibration: str = "uncalibrated"
    abstain_below: float | None = None

    @property
    def calibrated(self) -> bool:
        return self.probability is not None

    @property
    def shown(self) -> float:
        """The number a user sees: the probability, else the raw score."""
        return self.probability if self.probability is not None else self.raw

    @property
    def abstained(self) -> bool:
        return self.abstain_below is not None and self.shown < self.abstain_below

    def label(self) -> str:
        """'31% likely right (raw 0.68)' or '0.68 (uncalibrated)'."""
        if self.probability is None:
            return f"confidence {self.raw:.2f} (uncalibrated)"
        return f"{self.probability:.0%} likely right (raw {self.raw:.2f})"

    def to_json(self) -> dict[str, Any]:
        return {
            "probability": None if self.probability is None else round(self.probability, 4),
            "raw": round(self.raw, 4),
            "calibrated": self.calibrated,
            "signal": self.signal,
            "calibration": self.calibration,
            "abstain_below": self.abstain_below,
            "abstained": self.abstained,
        }


def answer_confidence(
    result: Any, calibration: AnswerCalibration | None, abstain_below: float | None = None
) -> AnswerConfidence:
    """The confidence to show for a `SearchResult` (or anything with answer/confidence/paths/events)."""
    raw = float(result.confidence)
    if calibration is None:
        return AnswerConfidence(result.answer, raw, None, abstain_below=abstain_below)
    prob = calibration.prob_of(signals_from_result(result), result.answer)
    return AnswerConfidence(
        result.answer,
        raw,
        prob,
        calibration.signal,
        calibration.describe() if prob is not None else "uncalibrated",
        abstain_below,
    )


def find_calibration(model_ref: str, strategy: str) -> AnswerCalibration | None:
    """`load_answer_calibration`, but None (logged) when the reference cannot be looked up at
    all (a test double, a hub id, a malformed file): showing an answer must never fail because
    of a calibration lookup; it then says "uncalibrated"."""
    try:
        return load_answer_calibration(model_ref, strategy)
    except CaspoError as exc:
        log.warning("no answer calibration for %s (%s): showing the raw score", model_ref, exc)
        return None


@lru_cache(maxsize=32)
def cached_calibration(model_ref: str, strategy: str) -> AnswerCalibration | None:
    """`find_calibration`, memoised per process (chat looks it up once per answer)."""
    return find_calibration(model_ref, strategy)


def confidence_from_events(
    model_ref: str | None, events: list[Any], chosen: Any, abstain_below: float | None = None
) -> AnswerConfidence:
    """The shown confidence of a search known only by its event stream (the chat screen).

    ``chosen`` is the stream's `AnswerChosen`; the calibration is the model's for the strategy
    that ran (memoised), so each answer costs one lookup per process at most.
    """
    from types import SimpleNamespace

    result = SimpleNamespace(
        answer=chosen.answer,
        confidence=chosen.confidence,
        paths=[e for e in events if isinstance(e, BranchFinished)],
        events=events,
    )
    cal = cached_calibration(model_ref, chosen.strategy) if model_ref else None
    return answer_confidence(result, cal, abstain_below)
