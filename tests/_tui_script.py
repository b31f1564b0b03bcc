"""Scripted search streams for the TUI tests (a CaT-shaped tree without a model).

`script_events(k)` starts ``k`` root branches; branch 0 forks once after its first step,
branch 1 is pruned, and the fork wins. Every event type appears, in the order the real
runner emits them (tokens, then the step they close).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from caspo_lite.search.events import (
    AnswerChosen,
    BranchFinished,
    BranchPruned,
    BranchStarted,
    SearchEvent,
    StepDone,
    TokenGenerated,
)

MARKUP_STEP = "Let x = [bold]3[/] and [red]y[/red] = 4\n"


def _step(branch: int, index: int, pieces: list[tuple[str, float]], path: float) -> list[SearchEvent]:
    events: list[SearchEvent] = [TokenGenerated(branch, i, p, c, -0.1) for i, (p, c) in enumerate(pieces)]
    confs = tuple(c for _, c in pieces)
    step_conf = sum(confs) / len(confs)
    events.append(StepDone(branch, index, "".join(p for p, _ in pieces).strip(), step_conf, path, confs))
    return events


def script_events(k: int = 3, strategy: str = "cat", markup: bool = False) -> list[SearchEvent]:
    first = [(MARKUP_STEP, 0.9)] if markup else [("3 + 4", 0.95), (" = 7\n", 0.9)]
    ev: list[SearchEvent] = []
    for b in range(k):
        ev.append(BranchStarted(b, None, 0, "root"))
    ev += _step(0, 0, first, 0.92)
    ev += _step(1, 0, [("3 * 4", 0.3), (" = 12\n", 0.2)], 0.25)
    for b in range(2, k):
        ev += _step(b, 0, [("3 + 4 = 8", 0.5), ("\n", 0.6)], 0.55)
    ev.append(BranchPruned(1, 0.25, 0.4, "below prune threshold"))
    child = k
    ev.append(BranchStarted(child, 0, 1, "fork"))
    ev += _step(0, 1, [("7 * 2", 0.6), (" = 14\n", 0.7)], 0.78)
    ev += _step(child, 1, [("7 * 2", 0.97), (" = 14\n", 0.96)], 0.94)
    ev += _step(child, 2, [("Answer:", 0.99), (" 14\n", 0.98)], 0.95)
    ev.append(
        BranchFinished(
            child, "3 + 4 = 7\n7 * 2 = 14\nAnswer: 14\n", "14", 0.95, 24, "answer", (0.92, 0.96, 0.98)
        )
    )
    ev += _step(0, 2, [("Answer:", 0.8), (" 14\n", 0.7)], 0.76)
    ev.append(
        BranchFinished(0, "3 + 4 = 7\n7 * 2 = 14\nAnswer: 14\n", "14", 0.76, 20, "answer", (0.92, 0.65, 0.75))
    )
    for b in range(2, k):
        ev.append(BranchFinished(b, "3 + 4 = 8\n", "8", 0.55, 16, "eos", (0.55,)))
    ev.append(
        AnswerChosen("14", 0.95, child, strategy, 24 + 20 + 6 + 16 * (k - 2), k + 1, 1, 0.5, {"14": 0.95})
    )
    return ev


class ScriptedSource:
    """A `SearchSource` that replays `script_events` with K and strategy from the settings.

    ``hold_after`` events in, it waits on ``release`` (so a test can cancel mid-search);
    every call's settings are recorded in ``asked``.
    """

    def __init__(self, hold_after: int | None = None, markup: bool = False, fail: str | None = None) -> None:
        self.hold_after = hold_after
        self.markup = markup
        self.fail = fail
        self.release = threading.Event()
        self.held = threading.Event()
        self.asked: list[tuple[str, object]] = []
        self.closed = False

    def events(self, question: str, settings) -> Iterator[SearchEvent]:  # noqa: ANN001
        self.asked.append((question, settings))
        events = script_events(settings.search.k, settings.search.strategy, self.markup)
        for i, event in enumerate(events):
            if self.fail and i == 5:
                raise RuntimeError(self.fail)
            if self.hold_after is not None and i == self.hold_after:
                self.held.set()
                self.release.wait(10)
            yield event

    def close(self) -> None:
        self.closed = True
