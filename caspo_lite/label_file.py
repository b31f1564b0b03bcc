"""Label solutions a user brings: the library side of ``caspo-lite label``.

Input rows (JSONL) hold ``question``, ``answer`` (the gold: a number, or a GSM8K-style
solution ending in ``#### N``, whose ``<<a*b=c>>`` annotations then give the gold structure)
and ``solution`` (text, one step per line) or ``steps`` (a list of step texts). Each output
row is the input row plus ``steps: [{"text", "label", "reason"}]``, where ``reason`` names the
check that decided (`caspo_lite.labelers.REASONS`, or ``rollout``/``judge``).

This is also how a round's step-wise dataset is re-labelled: any JSONL with those fields.
Model labelers (rollout, judge) are slow, so finished rows are kept in ``OUT.partial`` and a
rerun resumes after them; OUT itself is written atomically at the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caspo_lite.errors import DataError
from caspo_lite.labeler_registry import get_labeler
from caspo_lite.labelers import StepVerdict, explain_solution
from caspo_lite.numbers import normalize_number_text
from caspo_lite.paths import atomic_write_text
from caspo_lite.steps import split_steps
from caspo_lite.structure import annotations
from caspo_lite.tasks.base import Problem, Task
from caspo_lite.tasks.data import read_jsonl
from caspo_lite.tasks.gsm8k import parse_gold


@dataclass(frozen=True)
class LabelRow:
    """One input row made ready to label: where it came from, its problem and its steps."""

    line: int
    row: dict[str, Any]
    problem: Problem
    steps: list[str]


def _text(value: Any, name: str, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DataError(f"{where}: field '{name}' must be text or a number, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise DataError(f"{where}: field '{name}' is empty")
    return text


def parse_row(row: dict[str, Any], file: Path, line: int) -> LabelRow:
    """A row's problem (gold answer, and gold structure from GSM8K annotations) and steps."""
    where = f"{file}:{line}"
    missing = [name for name in ("question", "answer") if name not in row]
    if missing:
        have = ", ".join(sorted(row)) or "none"
        raise DataError(f"{where}: missing field '{missing[0]}' (fields present: {have})")
    question = _text(row["question"], "question", where)
    answer_text = _text(row["answer"], "answer", where)
    gold_steps: tuple[str, ...] = ()
    meta: dict[str, Any] = {"line": line}
    if "####" in answer_text:
        gold = parse_gold(answer_text)
        if gold is None:
            raise DataError(f"{where}: field 'answer' has '####' but no number after it")
        gold_steps, answer = gold
        meta["calculations"] = annotations(answer_text)
    else:
        answer = normalize_number_text(answer_text)
    if "steps" in row:
        steps = row["steps"]
        if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
            raise DataError(f"{where}: field 'steps' must be a list of step texts")
        steps = [s for s in steps if s.strip()]
    elif "solution" in row:
        if not isinstance(row["solution"], str):
            raise DataError(f"{where}: field 'solution' must be text (one step per line)")
        steps = split_steps(row["solution"])
    else:
        raise DataError(f"{where}: needs a field 'solution' (text) or 'steps' (a list of step texts)")
    if not steps:
        raise DataError(f"{where}: the solution has no steps")
    problem = Problem(str(row.get("id", f"{file.stem}-{line}")), question, answer, gold_steps, meta)
    return LabelRow(line, row, problem, steps)


def read_rows(file: Path) -> list[LabelRow]:
    """Every row of a solutions file, checked before any is labelled (one bad line stops all)."""
    return [parse_row(row, file, line) for line, row in read_jsonl(file)]


Explain = Callable[[Problem, list[str], Task], list[StepVerdict]]


def explainer(name: str, engine_loader: Callable[[], Any] | None = None, **options: Any) -> Explain:
    """The labeler called `name` as a function giving verdicts with reasons."""
    if name == "verify":
        return explain_solution
    if engine_loader is None:
        raise DataError(f"labeler '{name}' needs a model: pass --model")
    labeler = get_labeler(name, engine=engine_loader(), **options)
    explain = getattr(labeler, "explain", None)
    if explain is not None:
        return explain
    return lambda problem, steps, task: [
        StepVerdict(label, name) for label in labeler.label(problem, steps, task)
    ]


def labelled(item: LabelRow, explain: Explain, task: Task) -> dict[str, Any]:
    verdicts = explain(item.problem, item.steps, task)
    steps = [
        {"text": text, "label": v.label.value, "reason": v.reason}
        for text, v in zip(item.steps, verdicts, strict=True)
    ]
    return {**item.row, "steps": steps}


def label_file(
    task: Task,
    input_file: Path,
    out: Path,
    explain: Explain,
    on_row: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Label every row of `input_file` into `out`; returns counts per label and reason."""
    items = read_rows(input_file)
    partial = out.with_name(out.name + ".partial")
    done = _resume(partial, {item.line: item.row for item in items})
    out.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("a", encoding="utf-8") as fh:
        for i, item in enumerate(items):
            if item.line not in done:
                done[item.line] = labelled(item, explain, task)
                fh.write(json.dumps({"line": item.line, "row": done[item.line]}, ensure_ascii=False) + "\n")
                fh.flush()
            if on_row:
                on_row(i + 1, len(items))
    rows = [done[item.line] for item in items]
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    partial.unlink()
    return summary(rows)


def _resume(partial: Path, inputs: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Rows a stopped run finished, if their input is unchanged; the file is rewritten to them
    (a line cut by the stop is dropped, so appending goes on from a whole line)."""
    done: dict[int, dict[str, Any]] = {}
    if not partial.exists():
        return done
    for text in partial.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(text)
            line, row = int(rec["line"]), rec["row"]
        except (ValueError, KeyError, TypeError):
            break
        if {k: v for k, v in row.items() if k != "steps"} == {
            k: v for k, v in inputs.get(line, {}).items() if k != "steps"
        }:
            done[line] = row
    atomic_write_text(
        partial,
        "".join(json.dumps({"line": k, "row": v}, ensure_ascii=False) + "\n" for k, v in done.items()),
    )
    return done


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    labels: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for row in rows:
        for step in row["steps"]:
            labels[step["label"]] = labels.get(step["label"], 0) + 1
            reasons[step["reason"]] = reasons.get(step["reason"], 0) + 1
    return {"rows": len(rows), "labels": labels, "reasons": reasons}
