"""The verify labeler: exact arithmetic checks, solution labels, and GSM8K as a regression set."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from caspo_lite.errors import ConfigError
from caspo_lite.labeler_registry import LABELERS, get_labeler
from caspo_lite.labelers import (
    Label,
    StepVerdict,
    check_step,
    cut_at_first_wrong,
    explain_solution,
    first_wrong,
    label_next_step,
    label_solution,
    verify_step,
)
from caspo_lite.steps import split_steps
from caspo_lite.structure import annotations
from caspo_lite.tasks import get_task
from caspo_lite.tasks.arith import ArithTask
from caspo_lite.tasks.base import Problem
from caspo_lite.tasks.gsm8k import GSM8KTask

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
    problem = Problem("p", "What is 2 + 3?", "5")
    assert labeler.label(problem, ["2 + 3 = 5", "Answer: 5"], ArithTask()) == [C, C]
    # the labeler reads the question: numbers it does not have are not licensed
    assert labeler.label(Problem("p", "q", "5"), ["2 + 3 = 5", "Answer: 5"], ArithTask()) == [U, C]
    with pytest.raises(ConfigError, match="unknown labeler 'oracle'"):
        get_labeler("oracle")

    # every labeler a recipe or `caspo-lite label` may name is in the one registry, without
    # importing the training code first
    assert LABELERS.names == ("verify", "rollout", "verify+rollout", "judge")
    with pytest.raises(TypeError):
        get_labeler("rollout")  # model labelers need an engine


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
    """Problem-aware verify on every gold solution: only the known dataset errors are flagged."""
    task = get_task("gsm8k", path=str(shared_data))
    problems = task.load(split="train") + task.load(split="dev")
    assert len(problems) == 7473
    expected = {int(k) for k in json.loads(EXCEPTIONS.read_text())}
    labeler = get_labeler("verify")

    flagged: set[int] = set()
    altered_total = altered_caught = 0
    for problem in problems:
        index = int(problem.id.rsplit("-", 1)[1])
        steps = split_steps(task.format_solution(problem))
        labels = labeler.label(problem, steps, task)
        if W in labels:
            flagged.add(index)
            continue
        for k, step in enumerate(steps):
            changed = _alter(step) if labels[k] is C and verify_step(step) is C else None
            if changed is not None:
                altered = [*steps[:k], changed, *steps[k + 1 :]]
                altered_total += 1
                altered_caught += first_wrong(labeler.label(problem, altered, task)) == k
                break

    assert len(flagged) <= 0.01 * len(problems)  # >= 99% of rows fully correct
    assert flagged == expected, (
        f"newly flagged: {sorted(flagged - expected)}; no longer flagged: {sorted(expected - flagged)}"
    )
    assert altered_total >= 0.95 * (len(problems) - len(flagged))
    assert altered_caught == altered_total


# --- problem-aware verify: operands, operations, a path to the gold answer --------------------

MIRA = "Mira starts with 21 shells. Then Mira gets 14 more. Then the collection doubles. How many now?"


def _mira_gsm8k() -> tuple[Problem, GSM8KTask]:
    """The issue's word problem in another wording, with GSM8K-style gold annotations."""
    answer = "Mira has 21+14=<<21+14=35>>35 shells.\nIt doubles: 35*2=<<35*2=70>>70.\n#### 70"
    problem = Problem("mira", MIRA, "70", ("Mira has 21+14=35 shells.", "It doubles: 35*2=70."),
                      {"calculations": annotations(answer)})  # fmt: skip
    return problem, GSM8KTask()


def _verdicts(problem: Problem, steps: list[str], task) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(v.label.value, v.reason) for v in explain_solution(problem, steps, task)]


def _first_wrong_reason(problem: Problem, steps: list[str], task) -> tuple[int | None, str | None]:  # noqa: ANN001
    verdicts = explain_solution(problem, steps, task)
    i = first_wrong([v.label for v in verdicts])
    return i, (verdicts[i].reason if i is not None else None)


@pytest.mark.parametrize("family", ["arith", "gsm8k"])
@pytest.mark.parametrize(
    ("steps", "at", "reason"),
    [
        (["21 + 15 = 36", "36 * 2 = 72", "Answer: 72"], 0, "operand"),  # operand copied wrong
        (["21 - 14 = 7", "7 * 2 = 14", "Answer: 14"], 0, "operation"),  # the wrong operation
        (["21 + 14 = 35", "45 * 2 = 90", "Answer: 90"], 1, "operand"),  # a wrong carried result
        (["21 + 14 = 36", "36 * 2 = 72", "Answer: 72"], 0, "arithmetic"),
        (["21 + 14 = 35", "35 * 2 = 70", "Answer: 71"], 2, "final_answer"),
        (["35 * 2 = 70", "Answer: 70"], 0, "operand"),  # skipped step: 35 was never worked out
        (["21 + 14 = 35", "35 + 2 = 37", "Answer: 37"], 1, "operation"),
        (["21 + 14 = 35", "35 * 2 = 70", "Answer: 70"], None, None),
        (["14 + 21 = 35", "2 * 35 = 70", "Answer: 70"], None, None),  # operands in another order
        (
            ["Mira has 21 shells.", "21 + 14 = 35", "So she has 35 shells.", "35 * 2 = 70", "Answer: 70"],
            None,
            None,
        ),
    ],
)
def test_each_error_kind_at_its_step_in_another_wording(
    family: str, steps: list[str], at: int | None, reason: str | None
) -> None:
    if family == "arith":  # the exact chain, given as gold steps
        problem, task = Problem("mira", MIRA, "70", ("21 + 14 = 35", "35 * 2 = 70")), ArithTask()
    else:
        problem, task = _mira_gsm8k()
    assert _first_wrong_reason(problem, steps, task) == (at, reason)
    if at is None:
        assert all(label is C for label in get_labeler("verify").label(problem, steps, task))


@pytest.mark.parametrize(
    ("question", "answer", "steps", "at", "reason"),
    [
        # the cases: a reordering is fine, subtracting the term already added is not
        ("What is 8 - 8 + 5?", "5", ["Step 1: 8 + 5 = 13", "Step 2: 13 - 8 = 5", "Answer: 5"], None, None),
        (
            "What is 8 - 8 + 5?",
            "5",
            ["Step 1: 8 + 5 = 13", "Step 2: 13 - 5 = 8", "Answer: 8"],
            1,
            "operation",
        ),
        (
            "What is 8 + 10 - 6?",
            "12",
            ["Step 1: 8 + 10 = 18", "Step 2: 18 + 6 = 24", "Answer: 24"],
            1,
            "operation",
        ),
        (
            "What is 7 - 5 + 2?",
            "4",
            ["Step 1: 7 + 5 = 12", "Step 2: 12 + 2 = 14", "Answer: 14"],
            0,
            "operation",
        ),
        ("What is 7 - 5 + 2?", "4", ["Step 1: 2 - 5 = -3", "Step 2: -3 + 7 = 4", "Answer: 4"], None, None),
        ("What is 7 - 5 + 2?", "4", ["Step 1: 7 - 6 = 1", "Step 2: 1 + 2 = 3", "Answer: 3"], 0, "operand"),
        (
            "What is (12 + 5) * 3?",
            "51",
            ["Step 1: 12 + 5 = 17", "Step 2: 3 * 17 = 51", "Answer: 51"],
            None,
            None,
        ),
        (
            "What is (12 + 5) * 3?",
            "51",
            ["Step 1: 5 * 3 = 15", "Step 2: 15 + 12 = 27", "Answer: 27"],
            0,
            "operation",
        ),
        (
            "What is (12 + 5) * 3?",
            "51",
            ["Step 1: 12 + 5 = 17", "Step 2: 17 * 3 = 50", "Answer: 51"],
            1,
            "arithmetic",
        ),
        ("What is 20 - 3 - 5?", "12", ["Step 1: 3 + 5 = 8", "Step 2: 20 - 8 = 12", "Answer: 12"], None, None),
        (
            "What is 20 - 3 - 5?",
            "12",
            ["Step 1: 20 - 3 = 17", "Step 2: 17 + 5 = 22", "Answer: 22"],
            1,
            "operation",
        ),
    ],
)
def test_arith_from_the_question_alone(question: str, answer: str, steps: list[str], at, reason) -> None:  # noqa: ANN001
    """A round's samples carry only question and answer: arith reads its chain back from the question."""
    problem = Problem("q", question, answer)
    assert _first_wrong_reason(problem, steps, ArithTask()) == (at, reason)


def test_arith_words_question_read_back_matches_its_gold_steps() -> None:
    for level in ("easy", "default", "medium", "hard"):
        task = ArithTask(level=level)
        for problem in task.load(30, split="train"):
            bare = Problem(problem.id, problem.question, problem.answer)
            solution = [*problem.gold_steps, f"Answer: {problem.answer}"]
            assert [v.reason for v in explain_solution(bare, solution, task)][:-1] == ["checked"] * len(
                problem.gold_steps
            ), problem.question


def test_gsm8k_row_planted_errors_and_reorderings() -> None:
    question = (
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?"
    )
    answer = (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
    )
    problem = Problem("n", question, "72", (), {"calculations": annotations(answer)})
    task = GSM8KTask()
    cases = [
        (["Natalia sold 48/2 = 24 clips in May.", "48+24 = 72", "Answer: 72"], None),
        (["In May she sold 48 * 0.5 = 24.", "24 + 48 = 72", "Answer: 72"], None),  # "half" as * 0.5
        (["In May she sold 24 clips.", "48 + 24 = 72", "Answer: 72"], None),  # a gold quantity, stated
        (["49/2 = 24.5 clips in May.", "48+24 = 72", "Answer: 72"], 0),  # operand copied wrong
        (["48*2 = 96 clips in May.", "48+96 = 144", "Answer: 144"], 0),  # wrong operation
        (["48/2 = 24 clips in May.", "48+25 = 73", "Answer: 73"], 1),  # wrong carried result
        (["48/2 = 24 clips in May.", "48 - 24 = 24", "Answer: 24"], 1),  # wrong operation
        (["48/2 = 24 clips in May.", "48 + 24 = 72", "Answer: 70"], 2),  # final line
    ]
    for steps, at in cases:
        labels = get_labeler("verify").label(problem, steps, task)
        assert first_wrong(labels) == at, (steps, labels)
    # 24 stated nowhere before: only a task constant (hours in a day), on no path to the answer
    assert _first_wrong_reason(problem, ["48 + 24 = 72", "Answer: 72"], task) == (0, "operation")


def test_percentages_number_words_and_constants() -> None:
    task = GSM8KTask()
    shirt = Problem("s", "A $50 shirt is 20% off. How much is the discount?", "10", (),
                    {"calculations": ("50*20/100=10",)})  # fmt: skip
    for step in ("20% of 50 = 10", "0.2 * 50 = 10", "50 * 20 / 100 = 10", "50 * 0.20 = $10"):
        assert get_labeler("verify").label(shirt, [step, "Answer: 10"], task) == [C, C], step
    assert _first_wrong_reason(shirt, ["0.3 * 50 = 15", "Answer: 15"], task)[0] == 0
    twice = Problem("t", "Ann has 6 pens and Ben has twice as many. How many does Ben have?", "12")
    assert _verdicts(twice, ["Ben has 6 * 2 = 12 pens.", "Answer: 12"], task) == [
        ("correct", "checked"),
        ("correct", "solution_right"),
    ]
    hours = Problem("h", "Weng earns $12 an hour. She works 50 minutes. How much does she earn?", "10")
    assert _verdicts(hours, ["12/60 = $0.2 per minute.", "0.2 x 50 = $10.", "Answer: 10"], task)[:2] == [
        ("correct", "checked"),
        ("correct", "checked"),
    ]  # 60 minutes an hour: a task constant
    assert _verdicts(hours, ["12/60 = $0.2 per minute.", "0.2 x 50 = $10."], ArithTask())[0] == (
        "unknown",
        "operand",
    )  # arith allows no constants, and with no gold structure the step is unknown, not wrong


def test_unknown_structure_makes_unlicensed_operands_unknown_not_correct() -> None:
    task = GSM8KTask()
    problem = Problem("p", "Ann has 3 bags with 4 apples in each bag. How many apples?", "12")
    assert _verdicts(problem, ["3 * 4 = 12", "Answer: 12"], task) == [
        ("correct", "checked"),
        ("correct", "solution_right"),
    ]
    assert _verdicts(problem, ["3 * 5 = 15", "15 - 3 = 12", "Answer: 12"], task) == [
        ("unknown", "operand"),
        ("correct", "checked"),
        ("correct", "solution_right"),
    ]
    assert label_solution(["3 * 5 = 15", "Answer: 15"], "12", task) == [C, W]  # no problem: arithmetic only


def test_restatements_are_not_wrong() -> None:
    problem, task = _mira_gsm8k()
    steps = ["Mira starts with 21 shells.", "She gets 14 more: 21 + 14 = 35.", "Now she has 35.",
             "35 * 2 = 70", "Answer: 70"]  # fmt: skip
    assert [v.label for v in explain_solution(problem, steps, task)] == [C] * 5


def test_label_next_step_judges_an_alternative_in_its_prefix() -> None:
    """DPO alternatives are judged as a partial solution: in context, with no final-answer rule."""
    problem, task = Problem("q", "What is 8 + 10 - 6?", "12"), ArithTask()
    prefix = ["Step 1: 8 + 10 = 18"]
    assert label_next_step(problem, prefix, "Step 2: 18 - 6 = 12", task) == StepVerdict(C, "checked")
    assert label_next_step(problem, prefix, "Step 2: 18 + 6 = 24", task).reason == "operation"
    assert label_next_step(problem, prefix, "Step 2: 20 - 6 = 14", task).reason == "operand"
    assert label_next_step(problem, prefix, "So far so good.", task) == StepVerdict(U, "no_check")
