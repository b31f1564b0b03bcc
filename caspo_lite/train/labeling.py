"""The label stage and the bridge from JSONL records to the pure pair builder.

``labels.jsonl`` holds, per problem, one label list per sampled solution (same order as in
``samples.jsonl``). Keeping labels apart from samples lets a user relabel a round with another
labeler (``--set labels.labeler=rollout``) without resampling.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from caspo_lite.errors import DataError
from caspo_lite.pairs import LABELS, ProblemSamples, Solution, Step, used_steps
from caspo_lite.tasks.base import Problem, Task


def label_record(
    sample: dict[str, Any], labeler: Any, task: Task, source: Problem | None = None
) -> dict[str, Any]:
    """Labels for every solution of one samples record.

    `source` is the loaded problem the record was sampled from: its gold steps and meta (GSM8K
    annotations) give the verify labeler the gold structure a samples record does not keep.
    """
    problem = Problem(
        sample["problem_id"], sample["question"], sample["gold"], meta={"prompt_text": sample["prompt"]}
    )
    if source is not None and source.id == problem.id:
        problem = replace(problem, gold_steps=source.gold_steps, meta={**source.meta, **problem.meta})
    out = []
    for sol in sample["solutions"]:
        steps = [st["text"] for st in sol["steps"]]
        labels = [str(label) for label in labeler.label(problem, steps, task)] if steps else []
        out.append(labels)
    return {"problem_id": sample["problem_id"], "labels": out}


def label_round(
    samples: Sequence[dict[str, Any]],
    labeler: Any,
    task: Task,
    appender: Any,
    on_problem: Callable[[int, int], None] | None = None,
    problems: Mapping[str, Problem] | None = None,
) -> int:
    new = 0
    for i, sample in enumerate(samples):
        if sample["problem_id"] not in appender.done:
            source = (problems or {}).get(sample["problem_id"])
            appender.append(label_record(sample, labeler, task, source))
            new += 1
        if on_problem:
            on_problem(i + 1, len(samples))
    return new


def to_problem_samples(
    sample: dict[str, Any], labels: dict[str, Any], where: str = "labels.jsonl"
) -> ProblemSamples:
    """Join one samples record with its labels record into the pair builder's input."""
    if len(labels["labels"]) != len(sample["solutions"]):
        raise DataError(
            f"{where}: problem {sample['problem_id']} has labels for {len(labels['labels'])} solutions, "
            f"samples for {len(sample['solutions'])}; delete labels.jsonl to relabel"
        )
    solutions = []
    for sol, sol_labels in zip(sample["solutions"], labels["labels"], strict=True):
        if len(sol_labels) != len(sol["steps"]) or any(lb not in LABELS for lb in sol_labels):
            raise DataError(
                f"{where}: problem {sample['problem_id']} solution {sol['index']}: labels do not match steps"
            )
        steps = tuple(
            Step(
                st["text"],
                float(st["confidence"]),
                tuple(st["token_confidences"]),
                lb,
                token_ids=tuple(int(t) for t in st.get("token_ids", ())),
            )
            for st, lb in zip(sol["steps"], sol_labels, strict=True)
        )
        solutions.append(Solution(index=int(sol["index"]), steps=steps, correct=bool(sol["correct"])))
    return ProblemSamples(sample["problem_id"], sample["prompt"], solutions)


def step_confidence_by_label(problems: Sequence[ProblemSamples]) -> dict[str, float]:
    """Mean step confidence of correct vs wrong steps (used steps only): the calibration gap."""
    sums: dict[str, list[float]] = {"correct": [], "wrong": []}
    for ps in problems:
        for sol in ps.solutions:
            for st in used_steps(sol.steps):
                if st.label in sums:
                    sums[st.label].append(st.confidence)
    return {f"steps/mean_conf_{k}": (sum(v) / len(v) if v else float("nan")) for k, v in sums.items()} | {
        f"steps/n_{k}": len(v) for k, v in sums.items()
    }
