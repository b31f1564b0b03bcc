"""Finding and reading task data files (JSONL), with errors that name file and line.

Where data lives, first hit wins: the ``path`` a caller passes (``--data``), the
``CASPO_LITE_DATA`` environment variable, then ``../shared/data`` relative to the current
directory or to the repository. The benchmark files are never copied into the project.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from caspo_lite.errors import DataError

ENV_VAR = "CASPO_LITE_DATA"
_REPO = Path(__file__).resolve().parents[2]


def data_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The data folder (or file) to read from; DataError when none exists."""
    candidates: list[Path] = []
    if path:
        candidates.append(Path(path).expanduser())
    elif os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]).expanduser())
    else:
        candidates += [Path.cwd().parent / "shared" / "data", _REPO.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    where = ", ".join(str(c) for c in candidates)
    raise DataError(f"task data not found at {where}; pass --data PATH or set {ENV_VAR} to the data folder")


def resolve_file(relative: str, path: str | os.PathLike[str] | None = None) -> Path:
    """A data file: `path` itself when it is a file, else `relative` under the data root."""
    root = data_root(path)
    if root.is_file():
        return root
    for candidate in (root / relative, root / Path(relative).name):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"{root / relative}: file not found; pass --data PATH or set {ENV_VAR} to the data folder"
    )


def read_jsonl(file: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) for every non-blank line; DataError names the file and line."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise DataError(f"{file}: cannot read ({exc.strerror})") from None
    rows: list[tuple[int, dict[str, Any]]] = []
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{file}:{lineno}: not valid UTF-8; re-encode the file as UTF-8") from None
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{file}:{lineno}: invalid JSON ({exc.msg}); each line must be one JSON object"
            ) from None
        if not isinstance(row, dict):
            raise DataError(f"{file}:{lineno}: expected a JSON object per line, got {type(row).__name__}")
        rows.append((lineno, row))
    if not rows:
        raise DataError(f"{file}: empty file; expected one JSON object per line")
    return rows


def field(row: dict[str, Any], name: str, file: Path, lineno: int) -> Any:
    """row[name], or DataError naming the file, line and field."""
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        have = ", ".join(sorted(row)) or "none"
        raise DataError(f"{file}:{lineno}: missing field '{name}' (fields present: {have})")
    return value


def select(items: list[Any], n: int | None, seed: int) -> list[Any]:
    """All items in file order (n=None), else n of them by a seeded shuffle.

    The shuffle is a fixed permutation per seed, so a larger n extends a smaller one.
    """
    if n is None or n >= len(items):
        return list(items) if n is None else _shuffled(items, seed)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return _shuffled(items, seed)[:n]


def _shuffled(items: list[Any], seed: int) -> list[Any]:
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[i] for i in order]
