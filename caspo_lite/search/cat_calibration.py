"""CaT's thresholds from a model's calibration file (section ``cat``), and the fit itself.

Why: a percentile of the confidences of *this* problem's warm-up paths only exists once several
paths closed a step, and always prunes the same share of paths whatever the problem. Percentiles
of step and path confidences measured once on dev problems (sampled as self-consistency does)
give an absolute threshold at the very first step boundary: an easy problem whose paths are all
sure prunes none, a hard one prunes many.

Section layout (inside `caspo_lite.calibration_file`'s calibration.json)::

    "cat": {"signal": "entropy", "path_mode": "geomean", "split": "dev", "n_problems": 50,
            "n_steps": 1234, "n_boundaries": 1234,
            "step": {"5": 0.61, "10": 0.66, ..., "95": 0.97},   # step confidence percentiles
            "path": {"5": 0.64, ...}}                           # path confidence at each boundary

The thresholds hold only for the signal and path mode they were fitted with: `threshold_for`
returns None for any other (CaT then falls back to warm-up paths). Collecting the confidences
(sampling dev problems, or reading an eval's records) is `caspo_lite.cat_fit`'s job: it runs
searches, so it sits above this module, which the search reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from caspo_lite.calibration_file import (
    FILE_NAME,
    calibration_path,
    read_calibration,
    read_gguf_calibration,
)
from caspo_lite.errors import DataError, ModelError
from caspo_lite.search.events import BranchFinished, StepDone

log = logging.getLogger(__name__)
SECTION = "cat"
PERCENTILES: tuple[int, ...] = tuple(range(5, 100, 5))
_cache: dict[tuple[str, float, int], dict[str, Any] | None] = {}
_where: dict[tuple[str, float, int], Path | None] = {}


def boundary_confidences(events: Iterable[Any]) -> tuple[list[float], list[float]]:
    """(step confidences, path confidences) of every closed step in one search's events.

    Each StepDone is one unique step: a forked branch never re-emits the steps it inherited.
    """
    steps: list[float] = []
    paths: list[float] = []
    for ev in events:
        if isinstance(ev, StepDone):
            steps.append(float(ev.step_confidence))
            paths.append(float(ev.path_confidence))
    return steps, paths


def fit_cat_thresholds(
    step_confs: Sequence[float],
    path_confs: Sequence[float],
    signal: str,
    path_mode: str,
    split: str = "dev",
    n_problems: int = 0,
) -> dict[str, Any]:
    """The ``cat`` section: percentiles 5..95 of step and path confidences (pure)."""
    if len(step_confs) == 0 or len(path_confs) == 0:
        raise DataError("calibrate-cat: no closed step on the dev problems; give more problems or tokens")
    s = np.asarray(step_confs, dtype=np.float64)
    p = np.asarray(path_confs, dtype=np.float64)
    return {
        "signal": signal,
        "path_mode": path_mode,
        "split": split,
        "n_problems": int(n_problems),
        "n_steps": int(s.size),
        "n_boundaries": int(p.size),
        "step": {str(q): float(np.percentile(s, q)) for q in PERCENTILES},
        "path": {str(q): float(np.percentile(p, q)) for q in PERCENTILES},
    }


def threshold_for(
    section: dict[str, Any] | None, percentile: float, signal: str, path_mode: str, kind: str = "path"
) -> float | None:
    """The calibrated ``kind`` confidence at ``percentile`` (linear between stored percentiles).

    None when there is no section, or it was fitted for another signal or path mode.
    """
    if not section or section.get("signal") != signal or section.get("path_mode") != path_mode:
        return None
    table = section.get(kind)
    if not isinstance(table, dict) or not table:
        return None
    qs = sorted((float(q), float(v)) for q, v in table.items())
    return float(np.interp(percentile, [q for q, _ in qs], [v for _, v in qs]))


def model_calibration_file(engine: Any) -> Path | None:
    """Where the calibration of the engine's model file lives (None for a model without a file)."""
    path = getattr(engine, "path", None)
    return calibration_file_for(Path(path)) if path is not None else None


def calibration_file_for(path: Path) -> Path | None:
    """The calibration file of a model file: beside it in a round folder, else by its sha256.

    Cached by (path, mtime, size): hashing a GGUF once per search would cost more than decoding.
    """
    try:
        st = path.stat()
    except OSError:
        st = None
    key = (str(path), st.st_mtime if st else 0.0, st.st_size if st else -1)
    if key not in _where:
        _where[key] = _calibration_file_for(path)
    return _where[key]


def _calibration_file_for(path: Path) -> Path | None:
    round_dir = path.parent if path.parent.name.startswith("round-") else None
    if round_dir is None and not path.is_file():
        return None
    return calibration_path(path, round_dir)


def load_calibration(engine: Any, explicit: str = "") -> dict[str, Any] | None:
    """The whole calibration for this engine's model (or the ``explicit`` file), cached by mtime.

    Looked up as everywhere else: the round's or the sha256-keyed calibration file, else the
    ``caspo.calibration.*`` metadata that `export` wrote into the GGUF itself.
    """
    where = Path(explicit) if explicit else model_calibration_file(engine)
    st = _stat(where) if where is not None else None
    if st is None:
        if explicit:
            raise DataError(
                f"search.calibration = {explicit!r}: no such file; run caspo-lite calibrate-cat"
            ) from None
        return _gguf_calibration(getattr(engine, "path", None))
    key = (str(where), st.st_mtime, st.st_size)
    if key not in _cache:
        _cache[key] = read_calibration(where)
    return _cache[key]


def _stat(path: Path) -> Any:
    try:
        return path.stat()
    except OSError:
        return None


def _gguf_calibration(path: Any) -> dict[str, Any] | None:
    """The calibration carried in a GGUF's metadata, or None (not a GGUF, none written, unreadable)."""
    if path is None or Path(path).suffix.lower() != ".gguf":
        return None
    st = _stat(Path(path))
    if st is None:
        return None
    key = (f"gguf:{path}", st.st_mtime, st.st_size)
    if key not in _cache:
        try:
            _cache[key] = read_gguf_calibration(Path(path))
        except ModelError as exc:
            log.warning("ignoring the calibration in %s: %s", path, exc)
            _cache[key] = None
    return _cache[key]


SINGLE_PATH_SIGNALS = ("path", "min_step", "tail")  # defined for one finished path on its own


def answer_probability(
    calibration: dict[str, Any] | None, where: str = FILE_NAME, strategy: str = "cat"
) -> Callable[[BranchFinished], float] | None:
    """P(correct) of one finished path via the ``answer`` section's map for ``strategy``.

    The accept test judges a path the moment it finishes, before any vote exists, so only a map
    on a signal that one path defines on its own (`SINGLE_PATH_SIGNALS`) can serve; any other
    signal, or no map, gives None and the accept test reads the raw path confidence. A malformed
    section is logged and ignored here: a search never fails over its stopping rule.
    """
    # imported here: answer_signals reads search.events, and importing any search module runs
    # the search package, which imports this one (a circle through the package's __init__)
    from caspo_lite.answer_signals import path_signals
    from caspo_lite.calibration import read_answer_section

    try:
        cal = read_answer_section(calibration, where).get(strategy)
    except ModelError as exc:
        log.warning("ignoring the answer calibration for CaT's accept test: %s", exc)
        return None
    if cal is None or cal.signal not in SINGLE_PATH_SIGNALS:
        return None

    def prob(finished: BranchFinished) -> float:
        p = cal.prob_of(path_signals(finished, []), finished.answer)
        return float(finished.path_confidence) if p is None else p

    return prob
