"""Where caspo-lite keeps its caches and user data.

One overridable home (`CASPO_LITE_HOME`), as simonw/llm does: tests point it at a temp dir so
they never touch the real user directories.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir, user_data_dir


def home() -> Path | None:
    value = os.environ.get("CASPO_LITE_HOME")
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """Model cache (tiny model, SmolLM2 HF view). Created on demand."""
    base = home()
    path = base / "cache" if base else Path(user_cache_dir("caspo-lite"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """User data (chat history). Created on demand."""
    base = home()
    path = base / "data" if base else Path(user_data_dir("caspo-lite"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Default folder for training runs and evals (relative to the working directory)."""
    value = os.environ.get("CASPO_LITE_RUNS")
    return Path(value) if value else Path("runs")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file + rename so a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
