"""Run one round's DPO in a child process, and the child's entry point.

Why a process per round:
- Unsloth patches transformers' model classes for the whole process on import, and its fast
  decode path keeps one KV buffer per layer; a sampler in the same process would read
  another sequence's keys from round 2 on. The child imports Unsloth before anything else
  (`import_training_stack` is its first heavy import), and the parent never imports it.
- The trainer, its optimizer state and TRL's bound-method reference cycles die with the
  child: the card is empty again for the next round's sampling, whatever leaked.

The round's files are the protocol: the parent writes ``dpo_job.json`` (policy folder, DPO
section, backend decision); the child reads the round's ``pairs.jsonl`` and writes
``adapter/``, ``merged/`` and ``dpo_result.json`` (or ``dpo_error.json`` for a one-line
user error); checkpoints under ``dpo/`` make a rerun continue where a killed child stopped.
Progress comes back as JSON lines on a pipe; the child's own output goes to
``dpo_worker.log``. If the parent is killed the child gets SIGKILL too (Linux), so no
orphan keeps training.

Run by hand (what the parent does): ``python -m caspo_lite.train.dpo_process ROUND_DIR``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from caspo_lite import errors
from caspo_lite.backend import Backend, import_training_stack
from caspo_lite.pairs import Pair
from caspo_lite.paths import atomic_write_text
from caspo_lite.quiet import quiet_library_warnings
from caspo_lite.runs import RoundDir
from caspo_lite.train.config import DpoSection
from caspo_lite.train.dpo import train_dpo
from caspo_lite.train.ledger import FAULT_ENV, read_jsonl

JOB = "dpo_job.json"
RESULT = "dpo_result.json"
ERROR = "dpo_error.json"
LOG = "dpo_worker.log"

ProgressFn = Callable[[int, int, dict[str, float]], None]


def write_job(round_dir: Path, policy_dir: Path, cfg: DpoSection, backend: Backend) -> Path:
    job = {
        "policy_dir": str(policy_dir),
        "dpo": dataclasses.asdict(cfg),
        "backend": dataclasses.asdict(backend),
    }
    path = round_dir / JOB
    atomic_write_text(path, json.dumps(job, indent=1))
    return path


def _die_with_parent(parent_pid: int | None) -> None:
    """Linux: ask the kernel to SIGKILL this process when its parent dies (kill -9 of `train`).

    Done in the child itself (not as a ``preexec_fn``, unsafe when the parent has threads); a
    parent that died before the call is caught by comparing ``getppid``.
    """
    if parent_pid is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def run_dpo_process(
    round_dir: Path,
    policy_dir: Path,
    cfg: DpoSection,
    backend: Backend,
    on_progress: ProgressFn | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Train the round in a child process; return ``dpo_result.json`` as a dict.

    Raises:
        CaspoError: the child's one-line error (same class), or `TrainingFailed` when the child
            crashed or was killed (the message names its log; a rerun resumes from the last
            checkpoint).
    """
    round_dir = Path(round_dir)
    write_job(round_dir, policy_dir, cfg, backend)
    for name in (RESULT, ERROR):
        (round_dir / name).unlink(missing_ok=True)
    read_fd, write_fd = os.pipe()
    log_path = round_dir / LOG
    cmd = [
        sys.executable,
        "-m",
        "caspo_lite.train.dpo_process",
        str(round_dir),
        "--progress-fd",
        str(write_fd),
        "--parent-pid",
        str(os.getpid()),
    ]
    # the child imports the very caspo_lite this process runs, installed or not
    child_env = dict(os.environ if env is None else env)
    root = str(Path(__file__).resolve().parents[2])
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, child_env.get("PYTHONPATH", "")) if p)
    with open(log_path, "ab") as log_fh:
        proc = subprocess.Popen(  # noqa: S603 - our own module, argument list
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            env=child_env,
        )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "r", encoding="utf-8") as pipe:
            for line in pipe:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if on_progress:
                    on_progress(int(msg["step"]), int(msg["total"]), msg.get("logs", {}))
        code = proc.wait()
    except BaseException:  # Ctrl-C or an error in a callback: stop the child, keep its checkpoints
        _stop(proc)
        raise
    return _outcome(round_dir, code, log_path)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _outcome(round_dir: Path, code: int, log_path: Path) -> dict[str, Any]:
    if code == 0 and (round_dir / RESULT).is_file():
        return json.loads((round_dir / RESULT).read_text(encoding="utf-8"))
    if (round_dir / ERROR).is_file():
        err = json.loads((round_dir / ERROR).read_text(encoding="utf-8"))
        cls = getattr(errors, err.get("class", ""), None)
        if not (isinstance(cls, type) and issubclass(cls, errors.CaspoError)):
            cls = errors.TrainingFailed
        raise cls(err["message"])
    if code == -signal.SIGKILL and os.environ.get(FAULT_ENV, "").startswith("dpo:"):
        # the test hook stands for `kill -9` of the whole `train` command mid-DPO: die with the child
        os.kill(os.getpid(), signal.SIGKILL)
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        raise errors.TrainingFailed(
            f"the DPO process of {round_dir.name} was killed by {name}{hint}; "
            f"rerun the same command to resume from its last checkpoint (log: {log_path})"
        )
    raise errors.TrainingFailed(
        f"the DPO process of {round_dir.name} failed with exit code {code}: {_last_line(log_path)} "
        f"(full log: {log_path}); rerun the same command to resume"
    )


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return "no log"
    lines = [ln for ln in lines if ln]
    return lines[-1][:300] if lines else "no output"


def child_main(round_dir: Path, progress_fd: int | None) -> int:
    """The child: import the training stack first (Unsloth before transformers), train, report."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    job = json.loads((round_dir / JOB).read_text(encoding="utf-8"))
    backend = Backend(**job["backend"])
    out = os.fdopen(progress_fd, "w", encoding="utf-8", buffering=1) if progress_fd is not None else None
    try:
        import_training_stack(backend)  # before pairs/dpo pull in transformers
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        rd = RoundDir(round_dir)
        pairs = (
            [Pair.from_record(rec) for rec in read_jsonl(rd.pairs, "chosen")]
            if rd.pairs.is_file() and rd.pairs.stat().st_size
            else []
        )

        def report(step: int, total: int, logs: dict[str, float]) -> None:
            if out is not None:
                out.write(json.dumps({"step": step, "total": total, "logs": logs}) + "\n")

        train_dpo(Path(job["policy_dir"]), pairs, round_dir, DpoSection(**job["dpo"]), backend, report)
    except errors.CaspoError as exc:
        atomic_write_text(round_dir / ERROR, json.dumps({"class": type(exc).__name__, "message": str(exc)}))
        return 3
    finally:
        if out is not None:
            out.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="one round of DPO (started by caspo-lite train)")
    parser.add_argument("round_dir", type=Path)
    parser.add_argument("--progress-fd", type=int, default=None)
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    _die_with_parent(args.parent_pid)
    quiet_library_warnings()
    return child_main(args.round_dir, args.progress_fd)


if __name__ == "__main__":
    sys.exit(main())
