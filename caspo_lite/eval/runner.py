"""Run an evaluation: every model x strategy x problem, one JSONL line per finished problem.

The loop is a generator of small events (planned, model loaded, problem evaluated) so the
CLI can draw a progress bar and tests can count; `run_eval` consumes it and writes the
summary, report and plots. Each finished problem is appended to ``problems.jsonl`` as one
full line, flushed and fsynced, so an interrupted eval resumes by skipping the (model,
strategy, problem id) keys already there; a trailing partial line (the crash happened mid-
write) is dropped, a corrupt line in the middle is an error naming it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from caspo_lite.answer_confidence import find_calibration
from caspo_lite.answer_signals import answer_token_confidence, branch_pieces
from caspo_lite.config import ConfidenceSection, SearchSection, StepsSection
from caspo_lite.engines import load_engine
from caspo_lite.errors import ConfigError, DataError
from caspo_lite.eval.plots import write_plots
from caspo_lite.eval.report import render_markdown, summarize, summary_json
from caspo_lite.eval.trace import StepTrace, rebuild_paths
from caspo_lite.labelers import label_solution
from caspo_lite.paths import atomic_write_text
from caspo_lite.search import STRATEGY_NAMES, get_strategy, run_search
from caspo_lite.search.events import AnswerChosen, BranchStarted
from caspo_lite.tasks import configured_task
from caspo_lite.tasks.base import Problem, Task

log = logging.getLogger(__name__)

RECORDS_FILE = "problems.jsonl"
CONFIG_FILE = "eval_config.json"
# Settings that must match for a resumed eval to continue the same experiment.
_RESUME_KEYS = (
    "task",
    "task_path",
    "level",
    "prompt_style",
    "k",
    "n",
    "seed",
    "split",
    "engine",
    "search",
    "confidence",
    "steps",
)


@dataclass
class EvalSpec:
    """What to evaluate and where to write it (the CLI's flags, one field each)."""

    models: list[str]
    task: str
    strategies: list[str]
    out: Path
    task_path: str | None = None
    level: str | None = None  # arith only; None: the default level
    prompt_style: str | None = None  # None: the task's own prompt format
    k: int = 8
    n: int | None = 200
    seed: int = 0
    split: str = "test"
    engine_kind: str = "llama_cpp"
    search: SearchSection = field(default_factory=SearchSection)
    confidence: ConfidenceSection = field(default_factory=ConfidenceSection)
    steps: StepsSection = field(default_factory=StepsSection)
    label_steps: bool = True  # run the step labeler (needed for step reliability and step AUROC)
    abstain_below: float | None = None  # report coverage/accuracy when answers below it say "not sure"
    record_all_signals: bool = True  # every signal per token (step AUROC); off for latency runs

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("eval: give at least one --model")
        unknown = [s for s in self.strategies if s not in STRATEGY_NAMES]
        if unknown or not self.strategies:
            raise ConfigError(
                f"eval: unknown strategy {', '.join(unknown) or '(none)'}; "
                f"choose from {', '.join(STRATEGY_NAMES)}"
            )
        if self.k < 1:
            raise ConfigError(f"eval: --k must be >= 1, got {self.k}")
        replace(self.search, k=self.k).validate("search")  # every search knob, before any model loads
        if self.n is not None and self.n < 1:
            raise ConfigError(f"eval: --n must be >= 1, got {self.n}")
        self.out = Path(self.out)

    def meta(self) -> dict[str, Any]:
        """The settings recorded next to the results (and compared on resume)."""
        return {
            "task": self.task,
            "task_path": self.task_path,
            "level": self.level,
            "prompt_style": self.prompt_style,
            "k": self.k,
            "n": self.n,
            "seed": self.seed,
            "split": self.split,
            "models": list(self.models),
            "strategies": list(self.strategies),
            "engine": self.engine_kind,
            "search": asdict(self.search),
            "confidence": asdict(self.confidence),
            "steps": asdict(self.steps),
            "abstain_below": self.abstain_below,
        }


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvalPlanned:
    total: int  # model x strategy x problem runs in this eval
    done: int  # of which already in problems.jsonl (resumed)


@dataclass(frozen=True, slots=True)
class ModelLoaded:
    model: str
    load_s: float


@dataclass(frozen=True, slots=True)
class ProblemEvaluated:
    model: str
    strategy: str
    problem_id: str
    correct: bool
    n_tokens: int
    latency_s: float


EvalEvent = EvalPlanned | ModelLoaded | ProblemEvaluated


# -- the records file --------------------------------------------------------------------------


def record_key(rec: dict[str, Any]) -> tuple[str, str, str]:
    return (str(rec["model"]), str(rec["strategy"]), str(rec["problem_id"]))


def read_records(path: Path) -> list[dict[str, Any]]:
    """All complete records of ``problems.jsonl`` (missing file = none).

    A last line without its newline is a write cut short by an interruption: it is dropped
    (and truncated away by `open_records`). Any other undecodable line is a DataError.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    if tail.strip():
        log.warning("%s: dropping a partial last line (%d bytes) left by an interruption", path, len(tail))
    records = []
    for lineno, raw in enumerate(complete, start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
            record_key(rec)
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(
                f"{path}:{lineno}: not a problem record ({type(exc).__name__}); "
                "delete the line or use a new --out"
            ) from None
        records.append(rec)
    return records


def open_records(path: Path) -> Any:
    """Open ``problems.jsonl`` for appending, first cutting off a partial last line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep < len(data):
            with open(path, "r+b") as fh:
                fh.truncate(keep)
    return open(path, "a", encoding="utf-8")


def _strict(value: Any) -> Any:
    """NaN/inf -> None, recursively, so every line is strict JSON (readers never see NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def append_record(fh: Any, rec: dict[str, Any]) -> None:
    """One full line, flushed and fsynced: a crash loses at most the problem in flight."""
    fh.write(json.dumps(_strict(rec), ensure_ascii=False, allow_nan=False) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def check_resume(out: Path, meta: dict[str, Any]) -> None:
    """Refuse to mix results of different settings in one folder; record the settings."""
    cfg = out / CONFIG_FILE
    if cfg.exists():
        try:
            old = json.loads(cfg.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise DataError(f"{cfg}: unreadable; delete it or use a new --out") from None
        diff = []
        for key in _RESUME_KEYS:
            was, now = old.get(key), meta.get(key)
            if isinstance(was, dict) and isinstance(now, dict):  # a config section: name the field
                diff += [
                    (f"{key}.{f}", was.get(f), now.get(f)) for f in sorted(now) if was.get(f) != now.get(f)
                ]
            elif was != now:
                diff.append((key, was, now))
        if diff:
            detail = ", ".join(f"{k}={a!r} there vs {b!r} now" for k, a, b in diff)
            raise ConfigError(f"{out} holds an eval with other settings ({detail}); use a new --out")
    atomic_write_text(cfg, json.dumps(meta, indent=2) + "\n")


# -- one problem -------------------------------------------------------------------------------


def _label_text(label: Any) -> str:
    """A labeler's label as 'correct' / 'wrong' / 'unknown' (enum, dataclass or str)."""
    for attr in ("value", "label", "name"):
        if hasattr(label, attr) and not isinstance(label, str):
            return _label_text(getattr(label, attr))
    return str(label).lower()


def label_steps(
    steps: list[StepTrace], problem: Problem, task: Task, labeler: Callable[..., list[Any]] | None
) -> list[str]:
    if labeler is None or not steps:
        return ["unknown"] * len(steps)
    texts = [s.text for s in steps]
    if labeler is _label_solution():  # verify reads the problem too: operands, a path to gold
        raw = labeler(texts, problem.answer, task, problem=problem)
    else:
        raw = labeler(texts, problem.answer, task)
    labels = [_label_text(lab) for lab in raw]
    if len(labels) != len(steps):
        raise DataError(
            f"labeler returned {len(labels)} labels for {len(steps)} steps (problem {problem.id})"
        )
    return labels


def _chosen_index(result: Any, paths: list[dict[str, Any]]) -> int | None:
    chosen = next(
        (e for e in reversed(getattr(result, "events", []) or []) if isinstance(e, AnswerChosen)), None
    )
    if chosen is not None and chosen.branch is not None:
        for i, p in enumerate(paths):
            if p["branch"] == chosen.branch:
                return i
    same = [i for i, p in enumerate(paths) if p["answer"] == result.answer]
    return max(same, key=lambda i: paths[i]["path_confidence"]) if same else None


def problem_record(
    model: str,
    strategy: str,
    problem: Problem,
    task: Task,
    result: Any,
    latency_s: float,
    labeler: Callable[..., list[Any]] | None,
) -> dict[str, Any]:
    """The JSONL record of one problem: answer, grade, cost, every path with labelled steps."""
    events = getattr(result, "events", []) or []
    traces = rebuild_paths(events)
    pieces = branch_pieces(events)  # for each path's answer-token confidence (answer_signals)
    parents = {e.branch: e.parent for e in events if isinstance(e, BranchStarted)}
    paths = []
    for fin in result.paths:
        steps = traces.get(fin.branch, [])
        labels = label_steps(steps, problem, task, labeler)
        paths.append(
            {
                "branch": fin.branch,
                "parent": parents.get(fin.branch),  # the branch it forked from (CaT), None for a root
                "text": fin.text,
                "answer": fin.answer,
                "correct": bool(task.grade(fin.answer, problem.answer)),
                "path_confidence": fin.path_confidence,
                "answer_confidence": answer_token_confidence(
                    pieces.get(fin.branch, []), fin.text, fin.answer
                ),
                "n_tokens": fin.n_tokens,
                "stop_reason": fin.stop_reason,
                "steps": [{**s.to_json(), "label": lab} for s, lab in zip(steps, labels, strict=True)],
            }
        )
    n_tokens = int(result.n_tokens)
    return {
        "model": model,
        "strategy": strategy,
        "problem_id": problem.id,
        "question": problem.question,
        "gold": problem.answer,
        "answer": result.answer,
        "correct": bool(task.grade(result.answer, problem.answer)),
        "confidence": result.confidence,
        "n_tokens": n_tokens,
        "latency_s": latency_s,
        "tokens_per_s": n_tokens / latency_s if latency_s > 0 else None,
        "n_branches": result.n_branches,
        "n_pruned": result.n_pruned,
        "chosen_path": _chosen_index(result, paths),
        "counters": _counters(result),
        "paths": paths,
    }


def _counters(result: Any) -> dict[str, Any]:
    """The search's counters from its AnswerChosen (decode calls, prunes by reason, ...)."""
    chosen = next(
        (e for e in reversed(getattr(result, "events", []) or []) if isinstance(e, AnswerChosen)), None
    )
    return dict(chosen.counters) if chosen is not None else {}


# -- the loop ----------------------------------------------------------------------------------


def _label_solution() -> Callable[..., list[Any]]:
    return label_solution


def _default_labeler() -> Callable[..., list[Any]]:
    return label_solution


def _default_loader(kind: str) -> Callable[[str], Any]:
    return lambda ref: load_engine(ref, kind=kind)


def iter_eval(
    spec: EvalSpec,
    engine_loader: Callable[[str], Any] | None = None,
    labeler: Callable[..., list[Any]] | None = None,
) -> Iterator[EvalEvent]:
    """Evaluate every model x strategy x problem not yet in ``problems.jsonl``; yield progress."""
    task = configured_task(
        spec.task, spec.task_path or None, level=spec.level, prompt_style=spec.prompt_style
    )
    problems = task.load(n=spec.n, seed=spec.seed, split=spec.split)
    if not problems:
        raise DataError(f"task {spec.task!r} has no problems in split {spec.split!r}")
    spec.out.mkdir(parents=True, exist_ok=True)
    check_resume(spec.out, spec.meta())
    path = spec.out / RECORDS_FILE
    done = {record_key(r) for r in read_records(path)}
    todo = {
        m: {s: [p for p in problems if (m, s, p.id) not in done] for s in spec.strategies}
        for m in spec.models
    }
    total = len(spec.models) * len(spec.strategies) * len(problems)
    yield EvalPlanned(total=total, done=total - sum(len(v) for d in todo.values() for v in d.values()))
    loader = engine_loader or _default_loader(spec.engine_kind)
    label_fn = (labeler or _default_labeler()) if spec.label_steps else None
    search = replace(spec.search, k=spec.k, seed=spec.seed)
    with open_records(path) as fh:
        for model in spec.models:
            if not any(todo[model].values()):
                continue
            t0 = time.perf_counter()
            engine = loader(model)
            yield ModelLoaded(model, time.perf_counter() - t0)
            try:
                for name in spec.strategies:
                    strategy = get_strategy(
                        name,
                        replace(search, strategy=name),
                        spec.confidence,
                        spec.steps,
                        record_all_signals=spec.record_all_signals,
                    )
                    for problem in todo[model][name]:
                        t1 = time.perf_counter()
                        result = run_search(engine, task.prompt(problem), strategy, task.extract_answer)
                        latency = time.perf_counter() - t1
                        rec = problem_record(model, name, problem, task, result, latency, label_fn)
                        append_record(fh, rec)
                        yield ProblemEvaluated(
                            model, name, problem.id, rec["correct"], rec["n_tokens"], latency
                        )
            finally:
                engine.close()


def load_calibrations(records: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """(model, strategy) -> the model's answer calibration for that strategy, where one exists."""
    keys = {(str(r["model"]), str(r["strategy"])) for r in records}
    found = {key: find_calibration(*key) for key in keys}
    return {key: cal for key, cal in found.items() if cal is not None}


def write_outputs(out: Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """summary.json, report.md and the plots from ``problems.jsonl`` (pure of the records)."""
    if meta is None:
        cfg = out / CONFIG_FILE
        meta = json.loads(cfg.read_text(encoding="utf-8")) if cfg.exists() else {}
    records = read_records(out / RECORDS_FILE)
    groups = summarize(records, load_calibrations(records), meta.get("abstain_below"))
    plots = write_plots(groups, records, out)
    summary = summary_json(groups, meta)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    rel = [p.name for p in plots]
    atomic_write_text(out / "report.md", render_markdown(groups, meta, rel))
    return summary


def run_eval(
    spec: EvalSpec,
    on_event: Callable[[EvalEvent], None] | None = None,
    engine_loader: Callable[[str], Any] | None = None,
    labeler: Callable[..., list[Any]] | None = None,
) -> dict[str, Any]:
    """The whole eval (resuming if ``spec.out`` has records); returns the summary dict."""
    for ev in iter_eval(spec, engine_loader, labeler):
        if on_event is not None:
            on_event(ev)
    return write_outputs(spec.out, spec.meta())
