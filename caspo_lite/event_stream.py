"""The machine protocol of ``train --json`` and ``export --json``: one JSON object per line.

Why a protocol: a program driving the CLI (the TUI, a notebook, a scheduler) should read what
happened, not parse sentences written for people, which change whenever the wording improves.
With ``--json`` the command writes events to stdout and keeps everything for people (logs,
warnings, the one-line ``error:``) on stderr. Every event is ``{"event": NAME, ...fields}``:

- ``stage_started`` / ``stage_finished`` / ``stage_skipped``: ``round``, ``stage`` (and the
  stage's ``info``, e.g. its time, once finished or skipped);
- ``progress``: ``round``, ``stage``, ``done``, ``total`` (0 when unknown);
- ``round_finished``: ``round``, ``summary`` (the round's summary.json);
- ``early_stop``: ``round``, ``reason``;
- ``file`` (export): ``path``, ``quant``, ``bytes``, ``seconds``, ``types``;
- ``finished``: the command's result (train: ``rounds``, ``out``; export: ``result``);
- ``error``: ``code`` (the exit code: 2 a config or data mistake, 130 interrupted, ...),
  ``kind`` (the error class) and ``message`` (the same line stderr shows).

A reader must skip a last line that is not yet complete: `read_events` does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

PROTOCOL = 1
EVENTS_FILE = "events.jsonl"  # where the TUI keeps a trainer's stream, beside train.log
TRAIN_KINDS = {
    "stage": "stage_started",
    "done": "stage_finished",
    "skip": "stage_skipped",
    "progress": "progress",
    "round": "round_finished",
    "stop": "early_stop",
}


class EventStream:
    """Writes events as JSON lines, each flushed at once (a reader polls the file or the pipe)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self._out = out or sys.stdout

    def emit(self, event: str, **fields: Any) -> None:
        self._out.write(json.dumps({"event": event, **fields}, default=str) + "\n")
        self._out.flush()

    def train_event(self, ev: Any) -> None:
        """One `caspo_lite.train.rounds.TrainEvent` as its protocol event."""
        name = TRAIN_KINDS.get(ev.kind)
        if name is None:
            return
        fields: dict[str, Any] = {"round": ev.round}
        if name == "round_finished":
            fields["summary"] = ev.info
        elif name == "early_stop":
            fields["reason"] = ev.info.get("reason")
        else:
            fields["stage"] = ev.stage
            if name == "progress":
                fields.update(done=ev.done, total=ev.total or 0)
            elif ev.info:
                fields["info"] = ev.info
        self.emit(name, **fields)

    def error(self, code: int, kind: str, message: str) -> None:
        self.emit("error", code=code, kind=kind, message=message)


def parse_events(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The events among ``lines``; anything else (a partial line, stray text) is skipped."""
    out = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("event"), str):
            out.append(obj)
    return out


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete event of a stream file (none when it does not exist yet)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    return parse_events(complete.splitlines())


def last_error(events: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest ``error`` event, unless the command ran again and finished after it."""
    error = None
    for ev in events:
        if ev["event"] == "error":
            error = ev
        elif ev["event"] in ("started", "finished"):
            error = None
    return error
