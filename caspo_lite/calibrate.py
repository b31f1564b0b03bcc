"""`caspo-lite calibrate`: evaluate a model on dev problems, fit its answer calibration, store it.

The dev answers come from the ordinary eval loop (`caspo_lite.eval.runner.iter_eval`), so they
are resumable and carry every answer signal; ``--from DIR`` fits from an eval folder that
already exists (no sampling at all). The fitted map goes where `load_answer_calibration` looks
first for this model (`calibration_file.model_calibration_path`): beside a training round, or
in the data dir keyed by the GGUF's sha256.

Fitting on ``heldout`` is refused: that split is for reporting, and a map fitted on it would
make the held-out calibration figures meaningless.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caspo_lite.answer_signals import signals_from_record
from caspo_lite.calibration import AnswerCalibration, fit_answer_calibration, save_answer_calibration
from caspo_lite.calibration_file import model_calibration_path, round_dir_of
from caspo_lite.config import ConfidenceSection, SearchSection, StepsSection
from caspo_lite.errors import ConfigError, DataError
from caspo_lite.eval.plots import model_slug
from caspo_lite.eval.runner import CONFIG_FILE, RECORDS_FILE, EvalSpec, iter_eval, read_records
from caspo_lite.paths import data_dir

REFUSED_SPLITS = ("heldout",)


@dataclass
class CalibrateResult:
    path: Path  # the calibration file written
    calibrations: list[AnswerCalibration] = field(default_factory=list)
    records_dir: Path | None = None  # the eval folder the dev answers are in


def fit_from_records(
    records: Iterable[dict[str, Any]], strategy: str, fit_info: dict[str, Any] | None = None
) -> AnswerCalibration:
    """Fit ``strategy``'s map from eval records (answers only; no answer is P = 0 by definition)."""
    rows = [r for r in records if r.get("strategy") == strategy]
    if not rows:
        raise DataError(f"calibrate: no {strategy!r} answers in the eval records; run it with --strategy")
    answered = [r for r in rows if r.get("answer") is not None]
    info = {**(fit_info or {}), "problems": len(rows), "no_answer": len(rows) - len(answered)}
    return fit_answer_calibration(
        [signals_from_record(r) for r in answered], [bool(r["correct"]) for r in answered], strategy, info
    )


def default_records_dir(model: str, task: str, split: str, seed: int) -> Path:
    return data_dir() / "calibrations" / "evals" / f"{model_slug(model)}-{task}-{split}-s{seed}"


def calibrate(
    model: str,
    task: str = "arith",
    split: str = "dev",
    n: int = 200,
    strategies: Sequence[str] = ("cat",),
    k: int = 8,
    seed: int = 0,
    from_dir: Path | None = None,
    out: Path | None = None,
    task_path: str | None = None,
    engine_kind: str = "llama_cpp",
    search: Any = None,
    confidence: Any = None,
    steps: Any = None,
    on_event: Callable[[Any], None] | None = None,
    engine_loader: Callable[[str], Any] | None = None,
) -> CalibrateResult:
    """Evaluate (or read) dev answers, fit one map per strategy, write the model's calibration."""
    if split in REFUSED_SPLITS:
        raise ConfigError(f"calibrate: --split {split} is for reporting only; fit on dev (or train)")
    if from_dir is not None:
        records_dir = Path(from_dir)
        if not (records_dir / RECORDS_FILE).exists():
            raise DataError(f"{records_dir / RECORDS_FILE}: not found; give an eval folder (--from)")
        cfg_file = records_dir / CONFIG_FILE
        meta = json.loads(cfg_file.read_text(encoding="utf-8")) if cfg_file.exists() else {}
        if meta.get("split") in REFUSED_SPLITS:
            raise ConfigError(f"calibrate: {records_dir} is a {meta['split']} eval; fit on dev (or train)")
        split, task, seed = meta.get("split", split), meta.get("task", task), meta.get("seed", seed)
    else:
        records_dir = Path(out) if out is not None else default_records_dir(model, task, split, seed)
        spec = EvalSpec(
            models=[model],
            task=task,
            task_path=task_path,
            strategies=list(strategies),
            out=records_dir,
            k=k,
            n=n,
            seed=seed,
            split=split,
            engine_kind=engine_kind,
            search=search or SearchSection(),
            confidence=confidence or ConfidenceSection(),
            steps=steps or StepsSection(),
            label_steps=False,  # the fit needs answers only
        )
        for ev in iter_eval(spec, engine_loader):
            if on_event is not None:
                on_event(ev)
    records = read_records(records_dir / RECORDS_FILE)
    mine = [r for r in records if r.get("model") == model]
    if not mine:
        models = sorted({str(r.get("model")) for r in records})
        raise DataError(f"calibrate: {records_dir} has no answers of {model!r} (it has: {', '.join(models)})")
    info = {"task": task, "split": split, "seed": seed, "model": model, "records": str(records_dir)}
    cals = [fit_from_records(mine, s, info) for s in strategies]
    path = model_calibration_path(model)

    ident = {"name": model} if round_dir_of(model) is not None else {"name": model, "sha256": path.stem}
    for cal in cals:
        save_answer_calibration(path, cal, model=ident)
    return CalibrateResult(path, cals, records_dir)
