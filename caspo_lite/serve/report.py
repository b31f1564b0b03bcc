"""The ``caspo`` extension object of a finished search, and the one confidence hook.

`reported_confidence` is the single place that decides what confidence a client sees: the
calibrated P(correct) when the served model carries a calibration for the strategy that ran
(`caspo-lite calibrate`, caspo_lite.calibration), else the search's raw answer confidence,
marked ``"calibrated": false``. It goes through the same `answer_confidence` as `solve` and chat,
so the three never disagree on a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from caspo_lite.answer_confidence import answer_confidence
from caspo_lite.calibration import AnswerCalibration
from caspo_lite.search.base import SearchResult
from caspo_lite.search.events import AnswerChosen, BranchFinished


def reported_confidence(result: Any, calibration: AnswerCalibration | None = None) -> dict[str, Any]:
    """The confidence a client sees: calibrated when a calibration is given, else raw and marked.

    ``result`` is a `SearchResult` (anything with answer, confidence, paths and events).
    """
    shown = answer_confidence(result, calibration)
    raw = round(float(shown.raw), 4)
    if shown.probability is None:
        return {"confidence": raw, "calibrated": False, "confidence_kind": "uncalibrated"}
    return {
        "confidence": round(float(shown.probability), 4),
        "calibrated": True,
        "confidence_kind": "calibrated",
        "raw_confidence": raw,
        "calibration": shown.calibration,
    }


def tokens_saved_vs_sc(paths: Sequence[BranchFinished], n_tokens: int, k: int) -> int | None:
    """Estimated tokens saved against self-consistency at the same K.

    SC decodes K whole paths; a whole path's length is estimated by the mean length of the
    paths this search finished (the TUI's status bar uses the same estimate). None when no
    path finished (nothing to estimate from).
    """
    lengths = [p.n_tokens for p in paths]
    if not lengths:
        return None
    return round(k * sum(lengths) / len(lengths) - n_tokens)


def chosen_event(result: SearchResult) -> AnswerChosen | None:
    for ev in reversed(result.events):
        if isinstance(ev, AnswerChosen):
            return ev
    return None


def winning_path(result: SearchResult) -> BranchFinished | None:
    """The finished path the answer came from (the chosen branch, else the surest with that answer)."""
    chosen = chosen_event(result)
    if chosen is not None and chosen.branch is not None:
        for p in result.paths:
            if p.branch == chosen.branch:
                return p
    same = [p for p in result.paths if result.answer is not None and p.answer == result.answer]
    return max(same, key=lambda p: p.path_confidence) if same else None


def answer_text(result: SearchResult) -> tuple[str, str]:
    """(message content, OpenAI finish_reason): the winning path's text, or the bare answer line."""
    path = winning_path(result)
    if path is not None:
        return path.text.strip(), "length" if path.stop_reason == "max tokens" else "stop"
    if result.answer is not None:
        return f"Answer: {result.answer}", "stop"
    return "", "length" if result.cancelled else "stop"


def caspo_object(
    result: SearchResult,
    k: int,
    tree: dict[int, dict[str, Any]] | None = None,
    calibration: AnswerCalibration | None = None,
) -> dict[str, Any]:
    """The ``caspo`` extension of a response (see docs/serve.md for every field)."""
    chosen = chosen_event(result)
    out: dict[str, Any] = {
        "answer": result.answer,
        **reported_confidence(result, calibration),
        "strategy": result.strategy,
        "k": k,
        "tokens": result.n_tokens,
        "tokens_saved_vs_sc": tokens_saved_vs_sc(result.paths, result.n_tokens, k),
        "branches": result.n_branches,
        "prunes": result.n_pruned,
        "finished_paths": len(result.paths),
        "votes": {a: round(v, 4) for a, v in (chosen.votes if chosen else {}).items()},
        "reason": result.reason,
        "elapsed_s": round(result.elapsed_s, 3),
        "tokens_per_s": round(result.tokens_per_s, 1),
    }
    if tree is not None:
        out["tree"] = [{"branch": b, **node} for b, node in tree.items()]
    return out
