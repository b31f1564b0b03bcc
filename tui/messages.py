"""Messages: the search worker to the chat screen, and one screen to another (small dataclasses).

The worker runs in a thread; `post_message` is thread-safe, and per-token events arrive
already batched by time (see `caspo_lite.tui.inference.EventBatcher`), so the UI sees a few messages a
second however fast the model decodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from caspo_lite.search.events import SearchEvent


@dataclass
class SearchStarted(Message):
    """The model is loaded and the first token is on its way (the clock starts here)."""

    run_id: int


@dataclass
class SearchProgressed(Message):
    """A batch of search events, in stream order."""

    run_id: int
    events: list[SearchEvent]


@dataclass
class SearchEnded(Message):
    """The search stopped: finished, cancelled, or failed with ``error`` (one line)."""

    run_id: int
    cancelled: bool = False
    error: str | None = None


# -- between screens: one screen asks another to show something (sent by `CaspoApp.open_*`) ----


@dataclass
class ShowRound(Message):
    """The export screen should preselect this round folder."""

    round_dir: Path


@dataclass
class AttachRun(Message):
    """The train screen should show (and attach to) this run folder."""

    run_dir: Path


@dataclass
class ModelChosen(Message):
    """The chat settings now name another model: the chat screen shows it from the next question."""

    model: str
