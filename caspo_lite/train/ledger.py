"""Crash-safe bookkeeping: the per-round stage ledger and append-only JSONL files.

Why: ``caspo-lite train`` must survive Ctrl-C or ``kill -9`` at any instant and, rerun with
the same command, continue at the first unfinished stage, producing byte-identical files.
- The ledger is rewritten atomically (temp file + rename); a stage is marked done only
  after its outputs are complete on disk.
- Per-problem outputs are appended one JSON line at a time with flush + fsync. On reopen a
  trailing partial line (the kill landed mid-write) is cut off, and the ids already written
  are skipped, so the resumed file equals an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from caspo_lite.errors import DataError
from caspo_lite.paths import atomic_write_text


class Ledger:
    """``{"stages": {name: {"done": bool, "time_s": float, ...}}}`` in ``ledger.json``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.data: dict[str, Any] = {"stages": {}}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise DataError(f"{self.path}: corrupt stage ledger; delete it to redo this round") from None

    def done(self, stage: str) -> bool:
        return bool(self.data["stages"].get(stage, {}).get("done"))

    def info(self, stage: str) -> dict[str, Any]:
        return dict(self.data["stages"].get(stage, {}))

    def mark(self, stage: str, **info: Any) -> None:
        self.data["stages"][stage] = {"done": True, "finished_at": time.time(), **info}
        atomic_write_text(self.path, json.dumps(self.data, indent=1, sort_keys=True))


FAULT_ENV = "CASPO_LITE_FAULT"


def fault_point(stage: str, count: int) -> None:
    """Test hook: ``CASPO_LITE_FAULT=sample:3`` SIGKILLs this process right after the 3rd sampled
    problem is on disk (``dpo:3``: at the end of optimizer step 3), so the resume tests kill at an
    exact, reproducible point instead of racing a timer. Does nothing unless the variable is set.
    """
    if os.environ.get(FAULT_ENV) == f"{stage}:{count}":
        os.kill(os.getpid(), signal.SIGKILL)


def dumps(record: dict[str, Any]) -> str:
    """The one serialisation of a JSONL record (stable bytes: resumed files must be identical)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def read_jsonl(path: Path, key: str | None = None) -> list[dict[str, Any]]:
    """All records; a non-UTF-8 file or a bad line is a DataError naming file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text") from None
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(rec, dict) or (key and key not in rec):
            raise DataError(f"{path}:{lineno}: expected an object with '{key}'")
        out.append(rec)
    return out


class JsonlAppender:
    """Append-only JSONL keyed by ``key``; reopening resumes after the last complete line."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = Path(path)
        self.key = key
        self.done: set[str] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._recover()
        self._fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()

    def _recover(self) -> None:
        raw = self.path.read_bytes()
        end = raw.rfind(b"\n") + 1  # everything after the last newline is a partial write
        if end < len(raw):
            with open(self.path, "r+b") as fh:
                fh.truncate(end)
                fh.flush()
                os.fsync(fh.fileno())
        for rec in read_jsonl(self.path, self.key):
            self.done.add(str(rec[self.key]))

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write((dumps(record) + "\n").encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.done.add(str(record[self.key]))

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_records(path: Path, key: str) -> Iterator[dict[str, Any]]:
    yield from read_jsonl(path, key)
