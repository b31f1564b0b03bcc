"""The `caspo-lite train` subprocess the train screen starts, stops, resumes and attaches to.

Why a subprocess in its own session: training must outlive the UI. The process writes only
to its run folder; this module adds three files there, ``tui-train.json`` (pid and command, so
a re-opened UI finds a live run with ``os.kill(pid, 0)``), ``events.jsonl`` (the trainer runs
with ``--json``: its machine protocol, `caspo_lite.event_stream`, on stdout) and ``train.log``
(stderr: logs, warnings, the human error line). Stop is SIGINT (the CLI stops cleanly; the
trainer's ledger makes a restart of the same command continue at the first unfinished stage),
so Resume is just "start it again".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from caspo_lite.errors import CaspoError, ConfigError
from caspo_lite.event_stream import EVENTS_FILE, last_error, parse_events
from caspo_lite.paths import atomic_write_text

PID_FILE = "tui-train.json"
LOG_FILE = "train.log"
INTERRUPTED = 130  # the CLI's exit code (and error event code) for Ctrl-C, i.e. the UI's Stop
DEFAULT_COMMAND: tuple[str, ...] = (sys.executable, "-m", "caspo_lite.cli")
# the recipe fields the train screen lets you change (as --set overrides on a copy of the recipe)
MAIN_FIELDS: tuple[str, ...] = ("model.name", "rounds.n", "task.n_train", "sample.n", "dpo.max_steps")

_children: dict[int, subprocess.Popen[bytes]] = {}  # processes this UI started (reaped via poll)


def _default_sigint() -> None:
    """Let the trainer take SIGINT (Stop) as Ctrl-C even when the UI itself ignores it.

    A process started in the background of a non-interactive shell inherits SIGINT ignored,
    and Python then never installs its KeyboardInterrupt handler: Stop would do nothing.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class TrainProcessError(CaspoError):
    """A training process cannot be started, stopped or planned (the message says why)."""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None  # also reaps it, so it does not linger as a zombie
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie still answers kill(0); on Linux its state says so
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def read_pidfile(run: Path) -> dict[str, Any] | None:
    return _read_json(Path(run) / PID_FILE)


def live_pid(run: Path) -> int | None:
    """The pid of the trainer working on ``run``, if it is still alive."""
    info = read_pidfile(run)
    pid = info.get("pid") if info else None
    return pid if isinstance(pid, int) and pid > 0 and pid_alive(pid) else None


def train_command(
    recipe: Path, out: Path, sets: list[str], prefix: tuple[str, ...] = DEFAULT_COMMAND, dry_run: bool = False
) -> list[str]:
    cmd = [*prefix, "train", "--recipe", str(recipe), "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    return cmd + (["--dry-run"] if dry_run else []) + ["--json"]


# Library deprecation notices the user can do nothing about, kept out of train.log. TRL reads
# `model.is_gradient_checkpointing`, which transformers 5 deprecated with a FutureWarning.
QUIET_WARNINGS: tuple[str, ...] = ("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning",)


def _env() -> dict[str, str]:
    warn = ",".join(filter(None, (os.environ.get("PYTHONWARNINGS", ""), *QUIET_WARNINGS)))
    return {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100", "TERM": "dumb", "PYTHONWARNINGS": warn}


def dry_run(
    recipe: Path,
    out: Path,
    sets: list[str],
    prefix: tuple[str, ...] = DEFAULT_COMMAND,
    timeout_s: float = 300,
) -> dict[str, Any]:
    """``caspo-lite train --dry-run``: the plan as a dict, or a ConfigError with the CLI's message."""
    cmd = train_command(recipe, out, sets, prefix, dry_run=True)
    try:
        proc = subprocess.run(
            cmd, capture_output=True, timeout=timeout_s, env=_env(), stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TrainProcessError(f"could not run {cmd[0]}: {exc}") from None
    out_text = proc.stdout.decode("utf-8", errors="replace")
    events = parse_events(out_text.splitlines())
    error = last_error(events)
    if error is not None:
        raise ConfigError(str(error.get("message")))
    plan = next((ev.get("plan") for ev in events if ev["event"] == "plan"), None)
    if proc.returncode != 0 or plan is None:
        err = proc.stderr.decode("utf-8", errors="replace").splitlines()
        last = next((ln for ln in reversed(err) if ln.strip()), f"exit code {proc.returncode}")
        raise TrainProcessError(f"the dry run printed no plan: {last[-200:]}")
    return plan if isinstance(plan, dict) else {"plan": plan}


def start_train(cmd: list[str], out: Path) -> int:
    """Start ``cmd`` in its own session, logging to ``out/train.log``; returns its pid.

    Its own session: a Ctrl-C in the terminal or the UI exiting does not reach it.
    """
    out = Path(out)
    if live_pid(out) is not None:
        raise TrainProcessError(f"{out}: a trainer is already running there (pid {live_pid(out)})")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOG_FILE, "ab") as log, open(out / EVENTS_FILE, "ab") as events:
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(  # noqa: S603 - our own CLI, argument list
                cmd,
                stdout=events,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=_env(),
                preexec_fn=_default_sigint,
            )
        except OSError as exc:
            raise TrainProcessError(f"could not start {cmd[0]}: {exc}") from None
    _children[proc.pid] = proc
    atomic_write_text(
        out / PID_FILE, json.dumps({"pid": proc.pid, "cmd": cmd, "started": time.time()}, indent=1)
    )
    return proc.pid


def resume_train(out: Path) -> int:
    """Start the command recorded for ``out`` again (the trainer continues where it stopped)."""
    info = read_pidfile(out)
    cmd = info.get("cmd") if info else None
    if not isinstance(cmd, list) or not cmd:
        raise TrainProcessError(f"{out}: no recorded command to resume; start it from the form")
    return start_train([str(c) for c in cmd], out)


def stop_train(out: Path) -> bool:
    """SIGINT to the trainer (it stops cleanly; resuming later continues). False if none runs."""
    pid = live_pid(out)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return False
    return True


def recipe_fields(recipe: Path) -> dict[str, str]:
    """The MAIN_FIELDS of a recipe as strings ('' when the recipe leaves one to its default)."""
    try:
        data = tomllib.loads(Path(recipe).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return dict.fromkeys(MAIN_FIELDS, "")
    out = {}
    for key in MAIN_FIELDS:
        section, name = key.split(".")
        value = data.get(section, {}).get(name) if isinstance(data.get(section), dict) else None
        out[key] = "" if value is None else str(value)
    return out


def overrides(original: dict[str, str], edited: dict[str, str]) -> list[str]:
    """``--set`` values for the fields the user changed (strings are quoted for TOML)."""
    sets = []
    for key in MAIN_FIELDS:
        new = edited.get(key, "").strip()
        if new and new != original.get(key, ""):
            sets.append(f"{key}={new}" if _is_number(new) else f"{key}={json.dumps(new)}")
    return sets


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def default_recipes_root() -> Path:
    """``recipes/`` of the working directory, else the one beside this package (a source checkout)."""
    here = Path("recipes")
    return here if here.is_dir() else Path(__file__).resolve().parents[1] / "recipes"
