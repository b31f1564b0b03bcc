"""Worker threads, one engine each, behind one bounded queue.

Why threads with one engine each: a llama.cpp context runs one search at a time (the engine
keeps one live session), so N concurrent searches need N contexts. llama.cpp releases the GIL
while it decodes, so N workers do run in parallel. Why a bounded queue: a request that cannot
be queued is answered at once with a 503 (and ``Retry-After``) instead of waiting without end.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from caspo_lite.engines.base import Engine
from caspo_lite.search.base import SearchResult
from caspo_lite.serve.errors import ApiError
from caspo_lite.serve.jobs import SearchJob, execute

log = logging.getLogger(__name__)


@dataclass
class Ticket:
    """A queued job and its two futures: accepted (prompt fits, search starting) and done."""

    job: SearchJob
    accepted: Future[None] = field(default_factory=Future)
    done: Future[SearchResult] = field(default_factory=Future)


class WorkerPool:
    """``len(engines)`` worker threads draining a queue of at most ``queue_size`` waiting jobs."""

    def __init__(self, engines: list[Engine], queue_size: int = 16) -> None:
        if not engines:
            raise ValueError("a worker pool needs at least one engine")
        self.engines = engines
        self.queue: queue.Queue[Ticket | None] = queue.Queue(maxsize=max(1, queue_size))
        self.busy = 0
        self.served = 0
        self.cancelled = 0  # searches stopped early because their client went away
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, args=(e,), name=f"caspo-serve-worker-{i}", daemon=True)
            for i, e in enumerate(engines)
        ]
        for t in self._threads:
            t.start()

    @classmethod
    def load(cls, factory: Callable[[int], Engine], n_workers: int, queue_size: int = 16) -> WorkerPool:
        """Load ``n_workers`` engines (before serving, so a bad model fails at start-up)."""
        engines: list[Engine] = []
        try:
            for i in range(n_workers):
                engines.append(factory(i))
        except BaseException:
            for e in engines:
                e.close()
            raise
        return cls(engines, queue_size)

    def submit(self, job: SearchJob) -> Ticket:
        """Queue a job, or a 503 ApiError at once when the queue is full."""
        ticket = Ticket(job)
        try:
            self.queue.put_nowait(ticket)
        except queue.Full:
            raise ApiError(
                503,
                f"server busy: {len(self.engines)} workers busy and {self.queue.maxsize} requests queued; "
                "retry shortly",
                code="queue_full",
                type="server_error",
                headers={"Retry-After": "1"},
            ) from None
        return ticket

    def status(self) -> dict[str, Any]:
        return {
            "workers": len(self.engines),
            "busy": self.busy,
            "queued": self.queue.qsize(),
            "queue_size": self.queue.maxsize,
            "served": self.served,
            "cancelled": self.cancelled,
        }

    def _work(self, engine: Engine) -> None:
        while True:
            ticket = self.queue.get()
            if ticket is None:
                return
            if ticket.job.cancel.is_set():  # the client left while it waited
                ticket.accepted.cancel()
                ticket.done.cancel()
                continue
            with self._lock:
                self.busy += 1
            result: SearchResult | None = None
            error: BaseException | None = None
            try:
                result = execute(engine, ticket.job, accepted=lambda t=ticket: t.accepted.set_result(None))
            except BaseException as exc:  # handed to the request; the worker keeps serving
                if not isinstance(exc, ApiError):
                    log.exception("search failed")
                error = exc
            with self._lock:  # counted before the request sees its answer
                self.busy -= 1
                self.served += 1
                self.cancelled += bool(result is not None and result.cancelled)
            if error is not None:
                if not ticket.accepted.done():
                    ticket.accepted.set_exception(error)
                ticket.done.set_exception(error)
            else:
                ticket.done.set_result(result)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop the workers after the jobs in hand, then free the engines."""
        for _ in self._threads:
            self.queue.put(None)
        for t in self._threads:
            t.join(timeout=30)
        for e in self.engines:
            e.close()
