"""Fitting CaT's thresholds: collect step and path confidences on dev, write the ``cat`` section.

Two sources: sample K paths per dev problem as self-consistency does (`calibrate_model`), or
read an existing eval's ``sc`` records (`calibrate_from_eval`, no new sampling). Never heldout or
test: the thresholds become defaults. The section's format and its reader live in
`caspo_lite.search.cat_calibration`; this module runs searches, so it sits above the search.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from caspo_lite.calibration_file import FILE_NAME, file_sha256, update_section
from caspo_lite.confidence import geometric_mean
from caspo_lite.config import ConfidenceSection, SearchSection, StepsSection
from caspo_lite.engines import load_engine
from caspo_lite.errors import ConfigError, DataError
from caspo_lite.eval.runner import CONFIG_FILE, RECORDS_FILE, read_records
from caspo_lite.search import get_strategy, run_search
from caspo_lite.search.cat_calibration import (
    SECTION,
    boundary_confidences,
    fit_cat_thresholds,
    model_calibration_file,
)
from caspo_lite.tasks import get_task


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
