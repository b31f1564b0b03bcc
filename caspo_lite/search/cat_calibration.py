"""CaT's thresholds from a model's calibration file (section ``cat``), and how to fit them.

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
returns None for any other (CaT then falls back to warm-up paths).
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
    update_section,
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
    from caspo_lite.answer_signals import path_signals  # calibration -> answer_signals -> search
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


def fit_and_store(
    engine: Any,
    prompts: Sequence[Any],
    extract_answer: Callable[[str], str | None],
    search: Any,
    confidence: Any,
    steps: Any,
    out: Path | None = None,
    split: str = "dev",
    model: dict[str, Any] | None = None,
    on_problem: Callable[[int], None] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Sample K paths per dev prompt (as self-consistency), fit the section, write it.

    ``out`` defaults to the model's own calibration file (round folder or data dir by sha256).
    """
    from dataclasses import replace

    from caspo_lite.search import get_strategy, run_search

    strategy = get_strategy("sc", replace(search, strategy="sc"), confidence, steps)
    all_steps: list[float] = []
    all_paths: list[float] = []
    for i, prompt in enumerate(prompts):
        res = run_search(engine, prompt, strategy, extract_answer)
        s, p = boundary_confidences(res.events)
        all_steps += s
        all_paths += p
        if on_problem is not None:
            on_problem(i)
    section = fit_cat_thresholds(
        all_steps, all_paths, confidence.signal, confidence.path_mode, split, len(prompts)
    )
    target = out or model_calibration_file(engine)
    if target is None:
        raise DataError("calibrate-cat: this engine has no model file; give --out PATH/" + FILE_NAME)
    update_section(target, SECTION, section, model)
    return target, section


FIT_SPLITS = ("train", "dev")  # never heldout or test: the thresholds are defaults chosen on data


def calibrate_model(
    model: str,
    task_name: str = "arith",
    task_path: str | None = None,
    n: int = 50,
    split: str = "dev",
    seed: int = 0,
    search: Any = None,
    confidence: Any = None,
    steps: Any = None,
    out: Path | None = None,
    n_threads: int | None = None,
    on_problem: Callable[[int], None] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Load ``model``, sample K paths on ``n`` problems of ``split`` and store the ``cat`` section."""
    from caspo_lite.config import ConfidenceSection, SearchSection, StepsSection
    from caspo_lite.engines import load_engine
    from caspo_lite.errors import ConfigError
    from caspo_lite.tasks import get_task

    if split not in FIT_SPLITS:
        raise ConfigError(
            f"calibrate-cat --split {split!r}: fit on {' or '.join(FIT_SPLITS)}, never on {split}"
        )
    task = get_task(task_name, path=task_path or None)
    problems = task.load(n=n, seed=seed, split=split)
    if not problems:
        raise DataError(f"task {task_name!r} has no problems in split {split!r}")
    search = (search or SearchSection()).validate()
    engine = load_engine(model, n_threads=n_threads)
    try:
        ident = {"name": model}
        path = getattr(engine, "path", None)
        if path is not None:
            from caspo_lite.calibration_file import file_sha256

            ident["sha256"] = file_sha256(Path(path))
        return fit_and_store(
            engine,
            [task.prompt(p) for p in problems],
            task.extract_answer,
            search,
            confidence or ConfidenceSection(),
            steps or StepsSection(),
            out=out,
            split=split,
            model=ident,
            on_problem=on_problem,
        )
    finally:
        engine.close()


def confidences_from_records(records: Iterable[dict[str, Any]]) -> tuple[list[float], list[float], int]:
    """(step confidences, path confidences at each boundary, problems) from eval records.

    For an eval of ``sc`` (independent samples, nothing shared) this is what `fit_and_store`
    collects while sampling; the path confidence at a boundary is the geometric mean of the
    step confidences so far (path mode ``geomean``).
    """
    from caspo_lite.confidence import geometric_mean

    steps: list[float] = []
    paths: list[float] = []
    problems: set[str] = set()
    for rec in records:
        problems.add(str(rec.get("problem_id")))
        for path in rec.get("paths") or []:
            confs = [s["confidence"] for s in path.get("steps") or [] if s.get("confidence") is not None]
            steps += confs
            paths += [geometric_mean(confs[: j + 1]) for j in range(len(confs))]
    return steps, paths, len(problems)


def calibrate_from_eval(
    eval_dir: Path, out: Path | None, signal: str, path_mode: str, engine: Any = None
) -> tuple[Path, dict[str, Any]]:
    """Fit the ``cat`` section from an eval folder's ``sc`` records (no new sampling).

    Refuses an eval of the heldout or test split, and one whose confidence signal differs.
    """
    import json

    from caspo_lite.errors import ConfigError
    from caspo_lite.eval.runner import CONFIG_FILE, RECORDS_FILE, read_records

    cfg_file = eval_dir / CONFIG_FILE
    if not cfg_file.is_file():
        raise DataError(f"{cfg_file}: not found; give the --out folder of a caspo-lite eval or cat_vs_sc run")
    meta = json.loads(cfg_file.read_text(encoding="utf-8"))
    split = str(meta.get("split"))
    if split not in FIT_SPLITS:
        raise ConfigError(f"{cfg_file}: split {split!r}; fit on {' or '.join(FIT_SPLITS)}, never on {split}")
    conf = meta.get("confidence") or {}
    if (conf.get("signal"), conf.get("path_mode")) != (signal, path_mode):
        raise ConfigError(f"{cfg_file}: confidence {conf} was not signal={signal!r}, path_mode={path_mode!r}")
    records = [r for r in read_records(eval_dir / RECORDS_FILE) if r.get("strategy") == "sc"]
    if not records:
        raise DataError(f"{eval_dir / RECORDS_FILE}: no 'sc' records to fit on")
    steps, paths, n = confidences_from_records(records)
    section = fit_cat_thresholds(steps, paths, signal, path_mode, split, n)
    target = out or (model_calibration_file(engine) if engine is not None else None)
    if target is None:
        raise DataError("calibrate-cat --from-eval: give --out PATH/" + FILE_NAME)
    update_section(target, SECTION, section, {"name": ", ".join(meta.get("models") or [])})
    return target, section
