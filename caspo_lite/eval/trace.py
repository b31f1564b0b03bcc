"""Rebuild each finished path's steps, with every confidence signal, from a search's events.

The search streams tokens (with `TokenStats` when it records all signals) and closes steps
with `StepDone`; a forked branch (CaT) continues its parent's path, so its steps are the
parent's steps at the fork plus its own. This module replays that stream into one list of
`StepTrace` per finished branch, from which evaluation scores each signal at step level
(DESIGN §1.2: step confidence = geometric mean of the step's token confidences).

Each closed step carries its tree node (``node``: the branch that wrote it and its index), so a
step two finished paths share through a fork is one node: step metrics count it once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from caspo_lite.confidence import SIGNALS, TokenStats, geometric_mean
from caspo_lite.search.events import BranchFinished, BranchStarted, StepDone, TokenGenerated

STEP_SIGNALS: tuple[str, ...] = (*SIGNALS, "logprob")  # logprob = mean log-prob of the step's tokens


@dataclass
class StepTrace:
    """One step of one path: its text, the confidence the search used and its tokens' stats."""

    text: str
    confidence: float | None = None  # StepDone.step_confidence (None for a trailing unclosed step)
    stats: list[TokenStats] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)  # kept even when stats are absent
    node: str | None = None  # "branch:step" of the branch that wrote it (None: an unclosed tail)

    def signals(self) -> dict[str, float | None]:
        """Step confidence for every signal (None when the search did not record stats)."""
        if not self.stats:
            out: dict[str, float | None] = {s: None for s in SIGNALS}
            out["logprob"] = float(np.mean(self.logprobs)) if self.logprobs else None
            return out
        out = {s: geometric_mean([t.confidence(s) for t in self.stats]) for s in SIGNALS}
        out["logprob"] = float(np.mean([t.logprob for t in self.stats]))
        return out

    def mean_entropy(self) -> float | None:
        """Mean token entropy of the step in nats (None without stats)."""
        return float(np.mean([t.entropy for t in self.stats])) if self.stats else None

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "confidence": self.confidence,
            "n_tokens": max(len(self.stats), len(self.logprobs)),
            "signals": self.signals(),
            "entropy_nats": self.mean_entropy(),
            "node": self.node,
        }


@dataclass
class _Branch:
    steps: list[StepTrace] = field(default_factory=list)
    open: StepTrace = field(default_factory=lambda: StepTrace(text=""))
    open_text: list[str] = field(default_factory=list)


def _copy_step(step: StepTrace) -> StepTrace:
    return StepTrace(step.text, step.confidence, list(step.stats), list(step.logprobs), step.node)


def rebuild_paths(events: Iterable[Any]) -> dict[int, list[StepTrace]]:
    """Branch id -> its full path's steps, for every branch that finished.

    A trailing run of tokens not closed by a StepDone becomes a last step when it has any
    non-whitespace text. Branches never started explicitly are treated as roots.
    """
    live: dict[int, _Branch] = {}
    finished: dict[int, list[StepTrace]] = {}
    for ev in events:
        if isinstance(ev, BranchStarted):
            parent = live.get(ev.parent) if ev.parent is not None else None
            child = _Branch()
            if parent is not None:  # forked: inherit the parent's path so far
                child.steps = [_copy_step(s) for s in parent.steps]
                child.open = _copy_step(parent.open)
                child.open_text = list(parent.open_text)
            live[ev.branch] = child
        elif isinstance(ev, TokenGenerated):
            br = live.setdefault(ev.branch, _Branch())
            if ev.stats is not None:
                br.open.stats.append(ev.stats)
            br.open.logprobs.append(ev.logprob)
            br.open_text.append(ev.text)
        elif isinstance(ev, StepDone):
            br = live.setdefault(ev.branch, _Branch())
            br.open.text = ev.text
            br.open.confidence = ev.step_confidence
            br.open.node = f"{ev.branch}:{ev.step_index}"
            br.steps.append(br.open)
            br.open, br.open_text = StepTrace(text=""), []
        elif isinstance(ev, BranchFinished):
            br = live.get(ev.branch, _Branch())
            steps = [_copy_step(s) for s in br.steps]
            tail = "".join(br.open_text).strip()
            if tail:
                last = _copy_step(br.open)
                last.text = tail
                steps.append(last)
            finished[ev.branch] = steps
    return finished
