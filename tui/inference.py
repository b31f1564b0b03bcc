"""The one place the TUI calls the search library: (engine, question, settings) -> events.

If the search API moves, only this adapter changes. It also holds the time-based batcher that
keeps per-token traffic from flooding the widgets: the worker thread collects events and hands
them to the UI at most every ``interval_s`` (structural events such as a pruned branch or the
chosen answer go out at once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from caspo_lite.engines import load_engine
from caspo_lite.errors import CaspoError
from caspo_lite.search import get_strategy
from caspo_lite.search.events import SearchEvent, TokenGenerated
from caspo_lite.solve import question_prompt
from caspo_lite.tasks.base import Prompt
from caspo_lite.tui.settings import ChatSettings

log = logging.getLogger(__name__)

Clock = Callable[[], float]
ExtractAnswer = Callable[[str], str | None]


class SearchSource(Protocol):
    """Anything that turns a question and settings into a stream of search events."""

    def events(self, question: str, settings: ChatSettings) -> Iterator[SearchEvent]: ...

    def close(self) -> None: ...


def prepare(source: SearchSource, settings: ChatSettings) -> None:
    """Let a source do its slow setup (load the model) before the search clock starts."""
    hook = getattr(source, "prepare", None)
    if hook is not None:
        hook(settings)


def chat_prompt(question: str, task_name: str = "") -> tuple[Prompt, ExtractAnswer]:
    """The prompt and answer extractor `caspo-lite solve` builds for the same question.

    One builder (`caspo_lite.solve.question_prompt`) for both front ends, so a question asked in
    chat and on the command line is the same search. No task (the default) means solve's choice:
    the arith prompt for a bare sum, the word-problem few-shot prompt otherwise. A task the
    registry does not know falls back to that choice rather than failing the chat.
    """
    try:
        prompt, extract, _ = question_prompt(question, task_name or None)
    except CaspoError as exc:
        if not task_name:
            raise
        log.info("task %r unavailable for chat (%s); using solve's default prompt", task_name, exc)
        prompt, extract, _ = question_prompt(question, None)
    return prompt, extract


def run_strategy(engine: object, question: str, settings: ChatSettings) -> Iterator[SearchEvent]:
    """Build the configured strategy and run it on ``engine`` (a generator of events)."""
    prompt, extract = chat_prompt(question, settings.task)
    strategy = get_strategy(settings.search.strategy, settings.search, settings.confidence, settings.steps)
    return strategy.run(engine, prompt, extract)


class LibrarySource:
    """Loads models through the library (cached per reference) and runs the real search."""

    def __init__(self, loader: Callable[[str], object] | None = None) -> None:
        self._loader = loader
        self._engines: dict[str, object] = {}
        self._lock = threading.Lock()  # a worker loads while the UI may close

    def engine(self, ref: str) -> object:
        with self._lock:
            if ref not in self._engines:
                if self._loader is not None:
                    self._engines[ref] = self._loader(ref)
                else:
                    self._engines[ref] = load_engine(ref, kind="llama_cpp")
            return self._engines[ref]

    def prepare(self, settings: ChatSettings) -> None:
        self.engine(settings.model)

    def events(self, question: str, settings: ChatSettings) -> Iterator[SearchEvent]:
        return run_strategy(self.engine(settings.model), question, settings)

    def close(self) -> None:
        """Drop the cached engines (they free their model when the last reference goes).

        Not `engine.close()`: at app exit a cancelled worker thread may still be inside one
        decode call, and freeing the model under it would crash; dropping our reference lets
        the worker finish its call and release the engine itself.
        """
        with self._lock:
            self._engines.clear()


class EventBatcher:
    """Groups events by time: token events wait up to ``interval_s``; others flush at once."""

    def __init__(self, interval_s: float = 0.066, clock: Clock = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.pending: list[SearchEvent] = []
        self._last = clock()

    def push(self, event: SearchEvent) -> list[SearchEvent] | None:
        """Add one event; returns a batch when it is time to hand one to the UI."""
        self.pending.append(event)
        now = self.clock()
        if not isinstance(event, TokenGenerated) or now - self._last >= self.interval_s:
            self._last = now
            return self.flush()
        return None

    def flush(self) -> list[SearchEvent] | None:
        batch, self.pending = self.pending, []
        return batch or None


def batched(events: Iterator[SearchEvent], batcher: EventBatcher) -> Iterator[list[SearchEvent]]:
    """Re-yield an event stream as time-batched lists (the last partial batch included)."""
    for event in events:
        batch = batcher.push(event)
        if batch:
            yield batch
    tail = batcher.flush()
    if tail:
        yield tail
