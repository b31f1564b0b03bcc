"""The verify labeler: exact arithmetic checks, solution labels, and GSM8K as a regression set."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from caspo_lite.errors import ConfigError
from caspo_lite.labelers import (
    LABELERS,
    Label,
    check_step,
    cut_at_first_wrong,
    first_wrong,
    get_labeler,
    label_solution,
    register_labeler,
    verify_step,
)
from caspo_lite.steps import split_steps
from caspo_lite.tasks import get_task
from caspo_lite.tasks.arith import ArithTask
from caspo_lite.tasks.base import Problem

C, W, U = Label.CORRECT, Label.WRONG, Label.UNKNOWN
EXCEPTIONS = Path(__file__).parent / "data" / "gsm8k_verify_exceptions.json"


@pytest.mark.parametrize(
    "step",
    [
        "12 + 5 = 17",
        "Step 2: 17 - 3 = 14",
        "Natalia sold 48/2 = 24 clips in May.",
        "Working 50 minutes, she earned 0.2 x 50 = $10.",
        "3 × 4 = 12 and 12 ÷ 4 = 3",
        "The total is $1,200 * 2 = $2,400.",
        "20% * 50 = 10",
        "So 10 / 50 * 100 = 20%",
        "5 apples + 3 apples = 8 apples",
        "2 hours * 60 minutes/hour = 120 minutes",
        "(3 + 4) * 2 = 14",
        "3/4 * 8 = 6",
        "2 + 3 = 4 + 1 = 5",
        "Each gets 100/3 = 33.33 dollars",
        "2/3 = 0.67",
        "That is about 10/3 = 3 cups",
        "8 x 1 1/2 = 12 rolls",
        "2^3 = 8",
        "5 - 8 = -3",
        "0.1 + 0.2 = 0.3",
    ],
)
def test_verify_correct(step: str) -> None:
    assert verify_step(step) is C, check_step(step)


@pytest.mark.parametrize(
    "step",
    [
        "12 + 5 = 18",
        "Natalia sold 48/2 = 25 clips in May.",
        "2 + 3 = 5 + 1 = 6",  # a running total written as a chain is a false statement
        "1,200 + 1 = 1,203",
        "10/3 = 3",  # rounds without saying so
        "10 / 4 = 2.6",
        "5 apples + 3 apples = 9 apples",
        "0.2 x 50 = $100",
        "(3 + 4) * 2 = 10",
        "Step 1: 7 - 6 = 1\nStep 2: 1 + 5 = 7",
    ],
)
def test_verify_wrong(step: str) -> None:
    assert verify_step(step) is W, check_step(step)


@pytest.mark.parametrize(
    "step",
    [
        "She has 5 apples.",
        "2x + 3 = 11",
        "x = 5",
        "Answer: 17",
        "7 = 7",
        "Let B be the books. Then 79 - B - 26 = 8.",
        "",
    ],
)
def test_verify_unknown(step: str) -> None:
    assert verify_step(step) is U, check_step(step)


def test_label_solution_rules() -> None:
    task = ArithTask()
    right = ["Step 1: 2 + 3 = 5", "So she is happy.", "Answer: 5"]
    assert label_solution(right, "5", task) == [C, C, C]  # whole solution right: unknowns become correct
    assert label_solution(right, "6", task) == [C, U, W]  # the final answer step disagrees with gold
    slip = ["Step 1: 2 + 3 = 6", "Step 2: 6 + 1 = 7", "Answer: 7"]
    labels = label_solution(slip, "7", task)
    assert labels == [W, C, U] and first_wrong(labels) == 0 and cut_at_first_wrong(labels) == [W]
    assert label_solution(["2 + 3 = 5"], "9", task) == [W]  # fallback answer 5 is wrong
    assert label_solution([], "9", task) == []
    assert cut_at_first_wrong([C, U, C]) == [C, U, C] and first_wrong([C, U]) is None


def test_registry() -> None:
    labeler = get_labeler("verify")
    problem = Problem("p", "q", "5")
    assert labeler.label(problem, ["2 + 3 = 5", "Answer: 5"], ArithTask()) == [C, C]
    with pytest.raises(ConfigError, match="unknown labeler 'oracle'"):
        get_labeler("oracle")

    class Constant:
        name = "constant"

        def label(self, problem, steps, task):  # noqa: ANN001, ANN201
            return [U] * len(steps)

    register_labeler("constant", Constant)
    try:
        assert get_labeler("constant").label(problem, ["a", "b"], ArithTask()) == [U, U]
    finally:
        del LABELERS["constant"]


# --- GSM8K train as a regression set ----------------------------------------------------------

_RESULT = re.compile(r"\$?(\d[\d,]*(?:\.\d+)?)")


def _alter(step: str) -> str | None:
    """The step with the displayed result of its last checked '=' changed by +7, or None."""
    checks = [c for c in check_step(step) if c.ok]
    if not checks or not _RESULT.fullmatch(checks[-1].right):
        return None
    right = checks[-1].right
    matches = list(re.finditer(r"=\s*" + re.escape(right), step))
    if not matches:
        return None
    m = matches[-1]
    number = _RESULT.fullmatch(right).group(1)
    whole, _, frac = number.replace(",", "").partition(".")
    new = str(int(whole) + 7) + (f".{frac}" if frac else "")
    return step[: m.start()] + m.group(0).replace(number, new) + step[m.end() :]


def test_gsm8k_train_verifies_and_catches_altered_results(shared_data: Path) -> None:
    task = get_task("gsm8k", path=str(shared_data))
    problems = task.load(split="train") + task.load(split="dev")
    assert len(problems) == 7473
    expected = {int(k) for k in json.loads(EXCEPTIONS.read_text())}

    flagged: set[int] = set()
    altered_total = altered_caught = 0
    for problem in problems:
        index = int(problem.id.rsplit("-", 1)[1])
        steps = split_steps(task.format_solution(problem))
        labels = label_solution(steps, problem.answer, task)
        if W in labels:
            flagged.add(index)
            continue
        for k, step in enumerate(steps):
            changed = _alter(step) if labels[k] is C and verify_step(step) is C else None
            if changed is not None:
                altered = [*steps[:k], changed, *steps[k + 1 :]]
                altered_total += 1
                altered_caught += first_wrong(label_solution(altered, problem.answer, task)) == k
                break

    assert len(flagged) <= 0.01 * len(problems)  # >= 99% of rows fully correct
    assert flagged == expected, (
        f"newly flagged: {sorted(flagged - expected)}; no longer flagged: {sorted(expected - flagged)}"
    )
    assert altered_total >= 0.95 * (len(problems) - len(flagged))
    assert altered_caught == altered_total
