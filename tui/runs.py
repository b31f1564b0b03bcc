"""Training runs as the TUI sees them: run folders on disk, read while a trainer writes them.

Why a separate, Textual-free module: the train, export and runs screens must never own a
run. A run is a `caspo-lite train` process started in its own session, writing to its run
folder (layout in `caspo_lite.runs`); the UI only *reads* that folder (ledgers,
``metrics.jsonl``, ``summary.json``, sample/label line counts, the DPO checkpoint's
``trainer_state.json``) plus the two files `caspo_lite.tui.train_process` keeps beside it
(``tui-train.json``: pid and command; ``train.log``). Nothing here writes, so polling a run
every second can never corrupt it; every reader tolerates a file that is being written.
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from caspo_lite.event_stream import EVENTS_FILE, last_error, read_events
from caspo_lite.runs import (
    STAGES,
    RoundDir,
    is_round_dir,
    read_early_stop,
    read_json,
    read_metrics,
    read_stages,
    read_summary,
)
from caspo_lite.tui.train_process import INTERRUPTED, LOG_FILE, PID_FILE, live_pid

_line_cache: dict[Path, tuple[int, int]] = {}  # path -> (bytes counted, newlines) for growing files


def count_lines(path: Path) -> int:
    """Complete lines of an append-only file, read incrementally (samples.jsonl can be large)."""
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    seen, n = _line_cache.get(path, (0, 0))
    if size < seen:  # truncated (a partial line cut off on resume): count again
        seen, n = 0, 0
    if size > seen:
        with open(path, "rb") as fh:
            fh.seek(seen)
            n += fh.read(size - seen).count(b"\n")
        _line_cache[path] = (size, n)
    return n


def read_config(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


@dataclass(frozen=True)
class StageState:
    name: str
    status: str  # done / running / pending
    done: int | None = None
    total: int | None = None
    time_s: float | None = None
    eta_s: float | None = None


@dataclass(frozen=True)
class RoundState:
    index: int
    root: Path
    stages: tuple[StageState, ...]
    summary: dict[str, Any] | None
    pairs: dict[str, int]  # total / A / B (from pairs_report.json)
    dev_accuracy: float | None
    dpo_log: tuple[dict[str, float], ...] = ()  # trainer log lines while DPO runs (loss, rewards/margins)
    reward_margin: float | None = None
    ggufs: tuple[Path, ...] = ()

    @property
    def finished(self) -> bool:
        return all(s.status == "done" for s in self.stages)

    @property
    def current(self) -> StageState | None:
        return next((s for s in self.stages if s.status != "done"), None)


@dataclass(frozen=True)
class RunState:
    root: Path
    config: dict[str, Any]
    rounds: tuple[RoundState, ...]
    metrics: tuple[dict[str, Any], ...]
    n_rounds: int
    pid: int | None  # the live trainer, if any
    status: str  # new / running / stopped / failed / done
    error: str | None = None
    eta_s: float | None = None
    started: float | None = None  # when the run was started (epoch seconds), if known
    base: Path | None = None  # round-0/: the starting policy, when the run had to write it

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def rounds_done(self) -> int:
        return sum(r.finished for r in self.rounds)


def _stage_names(config: dict[str, Any]) -> tuple[str, ...]:
    rounds = config.get("rounds", {})
    dev = rounds.get("dev_eval", True) and config.get("task", {}).get("n_dev", 1) != 0
    return STAGES if dev else tuple(s for s in STAGES if s != "dev")


def eta(done: int | None, total: int | None, elapsed_s: float) -> float | None:
    """Seconds left at the rate so far; None until there is a rate."""
    if not done or not total or done >= total or elapsed_s <= 0:
        return None
    return elapsed_s / done * (total - done)


def _dpo_log(root: Path) -> tuple[tuple[dict[str, float], ...], int | None, int | None]:
    """(log lines, global step, max steps) of a round's DPO stage.

    The trainer appends every log line to ``dpo_log.jsonl``; older runs only have the newest
    complete checkpoint's ``trainer_state.json``, which is the fallback.
    """
    log_file = root / "dpo_log.jsonl"
    if log_file.is_file():
        by_step: dict[float, dict[str, float]] = {}  # a resumed DPO logs its redone steps again
        for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written right now
            if isinstance(rec, dict) and "loss" in rec:
                row = {k: float(v) for k, v in rec.items() if isinstance(v, int | float)}
                by_step[row.get("step", float(len(by_step)))] = row
        rows = [by_step[k] for k in sorted(by_step)]
        if rows:
            last = rows[-1]
            max_steps = int(last["max_steps"]) if "max_steps" in last else None
            return tuple(rows), int(last.get("step", len(rows))), max_steps
    best: tuple[int, Path] | None = None
    for ck in (root / "dpo").glob("checkpoint-*"):
        try:
            step = int(ck.name.split("-")[-1])
        except ValueError:
            continue
        if (ck / "trainer_state.json").is_file() and (best is None or step > best[0]):
            best = (step, ck)
    if best is None:
        return (), None, None
    state = read_json(best[1] / "trainer_state.json") or {}
    log = tuple(
        {k: float(v) for k, v in rec.items() if isinstance(v, int | float)}
        for rec in state.get("log_history", [])
        if isinstance(rec, dict) and "loss" in rec
    )
    return log, state.get("global_step"), state.get("max_steps")


def read_round(root: Path, config: dict[str, Any], now: float | None = None) -> RoundState:
    """A round folder as stages with counts and ETAs (tolerates files being written)."""
    now = time.time() if now is None else now
    ledger = read_stages(root)
    rd = RoundDir(root)
    task, dpo = config.get("task", {}), config.get("dpo", {})
    dpo_log, dpo_step, dpo_max = _dpo_log(root)
    counts: dict[str, tuple[int | None, int | None]] = {
        "sample": (count_lines(rd.samples), task.get("n_train")),
        "label": (count_lines(rd.labels), task.get("n_train")),
        "dpo": (dpo_step, dpo_max or dpo.get("max_steps")),
        "dev": (count_lines(rd.dev), task.get("n_dev")),
    }
    started = [info.get("finished_at") for info in ledger.values()]
    try:  # the round's config.toml is (re)written when a process starts (or resumes) the round
        t_start = max([t for t in started if isinstance(t, int | float)] + [rd.config.stat().st_mtime])
    except OSError:
        t_start = now
    stages, running_seen = [], False
    for name in _stage_names(config):
        info = ledger.get(name, {})
        done, total = counts.get(name, (None, None))
        if isinstance(info, dict) and info.get("done"):
            stages.append(StageState(name, "done", total if total else None, total, info.get("time_s")))
            continue
        status = "pending" if running_seen else "running"
        running_seen = True
        stages.append(StageState(name, status, done, total, eta_s=eta(done, total, now - t_start)))
    report = read_json(rd.pairs_report) or {}
    pairs = {
        k: int(report[f"pairs/{k}"]) for k in ("total", "A", "B") if isinstance(report.get(f"pairs/{k}"), int)
    }
    summary = read_summary(root)
    dev = ledger.get("dev", {}).get("accuracy") if isinstance(ledger.get("dev"), dict) else None
    margin = ledger.get("dpo", {}).get("reward_margin") if isinstance(ledger.get("dpo"), dict) else None
    if margin is None and dpo_log:
        margin = dpo_log[-1].get("rewards/margins")
    return RoundState(
        index=int(root.name.split("-")[-1]),
        root=root,
        stages=tuple(stages),
        summary=summary,
        pairs=pairs,
        dev_accuracy=dev if dev is not None else (summary or {}).get("eval/dev_accuracy"),
        dpo_log=dpo_log,
        reward_margin=margin,
        ggufs=tuple(sorted(root.glob("*.gguf")) + sorted(root.glob("export/*.gguf"))),
    )


class ProgressRates:
    """Stage ETAs from the progress this UI has *seen*, not from the stage's whole history.

    Why: after a resume a stage's count already includes the work done before the stop, so
    "count / time since the (re)start" is far too fast ("60/80, ETA 0s"). The first time a
    running stage is seen sets its baseline; its ETA is None until it has moved past that.
    A run that is not running forgets its baselines, so the next resume starts afresh.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[Path, str], tuple[float, int]] = {}  # (round, stage) -> (time, count)

    def stage_eta(self, round_root: Path, stage: StageState, now: float) -> float | None:
        if stage.status != "running" or stage.done is None or not stage.total:
            return None
        key = (round_root, stage.name)
        t0, d0 = self._seen.get(key, (now, stage.done))
        if stage.done < d0:  # the file was cut back (a partial line dropped on resume)
            t0, d0 = now, stage.done
        self._seen[key] = (t0, d0)
        return eta(stage.done - d0, stage.total - d0, now - t0)

    def apply(self, run: RunState, now: float | None = None) -> RunState:
        """``run`` with every running stage's ETA measured since this UI first saw it."""
        now = time.time() if now is None else now
        if run.status != "running":
            for key in [k for k in self._seen if k[0].parent == run.root]:
                del self._seen[key]
        rounds = tuple(
            replace(rd, stages=tuple(replace(st, eta_s=self.stage_eta(rd.root, st, now)) for st in rd.stages))
            for rd in run.rounds
        )
        return replace(run, rounds=rounds)


def _round_dirs(root: Path) -> list[Path]:
    found = []
    for p in root.glob("round-*"):
        suffix = p.name.split("-", 1)[-1]
        if p.is_dir() and suffix.isdigit() and int(suffix) >= 1:
            found.append(p)
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def read_run(root: Path, now: float | None = None) -> RunState:
    """Everything the screens show about one run folder."""
    root = Path(root)
    now = time.time() if now is None else now
    config = read_config(root / "config.toml")
    rounds = tuple(read_round(p, config, now) for p in _round_dirs(root))
    metrics = tuple(read_metrics(root))
    n_rounds = int(config.get("rounds", {}).get("n", len(rounds)) or len(rounds))
    pid = live_pid(root)
    error = None
    finished = bool(rounds) and all(r.finished for r in rounds)
    if pid is not None:
        status = "running"
    elif finished and (len(metrics) >= n_rounds or read_early_stop(root) is not None):
        status = "done"
    elif not rounds and not (root / PID_FILE).exists():
        status = "new"
    else:
        error, stopped = run_error(root)
        status = "stopped" if stopped or not error else "failed"
        if stopped:
            error = None  # a Stop, not a failure: the screens say how to resume in their own words
    base = root / "round-0"
    return RunState(
        root,
        config,
        rounds,
        metrics,
        n_rounds,
        pid,
        status,
        error,
        run_eta(rounds, n_rounds, now),
        started=started_at(root),
        base=base if base.is_dir() else None,
    )


def started_at(root: Path) -> float | None:
    """When a run began: the UI's pid file says so; else its config.toml (written at start)."""
    info = read_json(root / PID_FILE) or {}
    if isinstance(info.get("started"), int | float):
        return float(info["started"])
    for path in (root / "config.toml", root):
        try:
            return path.stat().st_mtime
        except OSError:
            continue
    return None


def round_seconds(rd: RoundState) -> float | None:
    """How long a finished round took: first to last stage stamp, plus the first stage's own time."""
    infos = [v for v in read_stages(rd.root).values() if isinstance(v.get("finished_at"), int | float)]
    if not infos:
        return None
    first = min(infos, key=lambda v: v["finished_at"])
    span = max(v["finished_at"] for v in infos) - first["finished_at"]
    return span + float(first.get("time_s") or 0.0)


def run_eta(rounds: tuple[RoundState, ...], n_rounds: int, now: float | None = None) -> float | None:
    """Rounds left times the mean duration of the finished ones, less the time the round under
    way has run since it was (re)started; None before a round finishes, or once the current
    round has run longer than the mean (then nobody knows)."""
    took = [t for t in (round_seconds(r) for r in rounds if r.finished) if t is not None]
    if not took:
        return None
    mean, left = sum(took) / len(took), n_rounds - len(took)
    current = next((r for r in rounds if not r.finished), None)
    if current is None or left <= 0:
        return max(0.0, mean * left)
    now = time.time() if now is None else now
    try:  # the round's config.toml is rewritten whenever a process starts or resumes the round
        spent = max(0.0, now - (current.root / "config.toml").stat().st_mtime)
    except OSError:
        spent = 0.0
    if spent >= mean:
        return None
    return mean * left - spent


def list_runs(runs_root: Path) -> list[RunState]:
    """Every run folder (a config.toml, a pid file or a round-0/) under ``runs_root``, newest first."""
    runs_root = Path(runs_root)
    if not runs_root.is_dir():
        return []
    found = [
        p
        for p in runs_root.iterdir()
        if p.is_dir() and any((p / name).exists() for name in ("config.toml", PID_FILE, "round-0"))
    ]
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return [read_run(p) for p in found]


def finished_rounds(runs_root: Path) -> list[Path]:
    """Round folders with a policy (merged weights or a policy GGUF), round 0 included: what can
    be exported."""
    out = []
    for run in list_runs(runs_root):
        rounds = ([run.base] if run.base is not None else []) + [r.root for r in run.rounds]
        out += [p for p in rounds if is_round_dir(p)]
    return out


def run_error(root: Path) -> tuple[str | None, bool]:
    """(why the trainer in ``root`` ended, whether that was a Stop), from its event stream.

    The trainer runs with ``--json``: its ``error`` event carries the message and the exit
    code (130: interrupted, i.e. Stop). A crash writes no event; then the last line of a
    traceback in train.log is the best message there is.
    """
    error = last_error(read_events(Path(root) / EVENTS_FILE))
    if error is not None:
        return str(error.get("message") or f"exit code {error.get('code')}"), error.get("code") == INTERRUPTED
    return crash_line(Path(root) / LOG_FILE), False


def crash_line(log: Path, tail_bytes: int = 16_384) -> str | None:
    """The last line of a Python traceback at the end of a log (an uncaught exception), or None."""
    lines = tail(log, tail_bytes)
    if any(line.startswith("Traceback") for line in lines):
        return lines[-1] if lines else None
    return None


def tail(path: Path, n_bytes: int = 4096) -> list[str]:
    """The last lines of a log (carriage-return progress redraws become lines)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - n_bytes))
            raw = fh.read()
    except OSError:
        return []
    text = raw.decode("utf-8", errors="replace").replace("\r", "\n")
    return [line.rstrip() for line in text.splitlines() if line.strip()]
