"""Rebuild each finished path's steps, with every confidence signal, from a search's events.

The search streams tokens (with `TokenStats` when it records all signals) and closes steps
with `StepDone`; a forked branch (CaT) continues its parent's path, so its steps are the
parent's steps at the fork plus its own. This module replays that stream through the
library's one tree model (`SearchTree`) into one list of `StepTrace` per finished branch,
from which evaluation scores each signal at step level (docs/design.md §1.2: step confidence =
geometric mean of the step's token confidences).

Each closed step carries its tree node (``node``: the branch that wrote it and its index), so a
step two finished paths share through a fork is one node: step metrics count it once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from caspo_lite.confidence import SIGNALS, TokenStats, geometric_mean
from caspo_lite.search.tree import SearchTree

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


def rebuild_paths(events: Iterable[Any]) -> dict[int, list[StepTrace]]:
    """Branch id -> its full path's steps, for every branch that finished.

    Built on the library's one tree (`caspo_lite.search.tree.SearchTree`, the model the TUI and
    `solve` draw): a finished branch's path is the tree's nodes from the root to its tip, so a
    step two paths share through a fork is the same node. A trailing run of tokens not closed
    by a StepDone becomes a last step (confidence None) when it has any non-whitespace text.
    """
    tree = SearchTree()
    tree.apply_all(events)
    finished: dict[int, list[StepTrace]] = {}
    for branch in tree.finished:
        steps: list[StepTrace] = []
        for node_id in tree.path_to(tree.branch_tip(branch))[1:]:
            node = tree.nodes[node_id]
            if node.closed:
                steps.append(
                    StepTrace(
                        node.text,
                        node.step_confidence,
                        list(node.stats),
                        list(node.logprobs),
                        f"{node.branch}:{node.step_index}",
                    )
                )
            elif tail := node.display_text().strip():
                steps.append(StepTrace(tail, None, list(node.stats), list(node.logprobs)))
        finished[branch] = steps
    return finished
