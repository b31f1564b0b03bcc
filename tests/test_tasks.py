"""Task families: loading, data errors, answer extraction and graders for each data family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caspo_lite.errors import ConfigError, DataError
from caspo_lite.numbers import format_number, parse_number
from caspo_lite.tasks import TASK_NAMES, Task, get_task
from caspo_lite.tasks.answers import extract_numeric_answer, grade_math, normalize_math
from caspo_lite.tasks.arith import SPLIT_BASE, ArithTask, format_solution, generate, get_level
from caspo_lite.tasks.data import ENV_VAR

# --- numbers and graders ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["$1,200.00", "1200 dollars", "\\boxed{1200}", "1200", "1,200", "Answer: 1200"]
)
def test_gsm8k_grader_accepts_dressed_1200(text: str) -> None:
    task = get_task("gsm8k", path="unused")
    assert task.grade(task.extract_answer(text), "1200")


@pytest.mark.parametrize("text", ["120", "12000", "1,2000", "1200.5", "$12.00", ""])
def test_gsm8k_grader_rejects_other_numbers(text: str) -> None:
    task = get_task("gsm8k", path="unused")
    assert not task.grade(task.extract_answer(text), "1200")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Step 1: 3 + 4 = 7\nAnswer: 7", "7"),
        ("so 5 + 5 = 10\n#### 10", "10"),
        ("thus $\\boxed{\\frac{3}{4}}$.", "0.75"),
        ("Answer: \\frac{1}{3}", "1/3"),
        ("The answer is 42.", "42"),
        ("I think 3 and then 8", "8"),  # fallback: the last number
        ("Answer: $1,234.50", "1234.5"),
        ("Answer: 12 apples, because 5 + 7 = 12", "12"),
        ("The answer is -3", "-3"),
        ("no numbers here", None),
    ],
)
def test_extract_numeric_answer(text: str, expected: str | None) -> None:
    assert extract_numeric_answer(text) == expected


def test_answer_line_beats_earlier_numbers_and_boxed() -> None:
    assert extract_numeric_answer("\\boxed{5}\n3 + 4 = 7\nAnswer: 9\n10 more") == "9"


def test_parse_number_exact_rationals() -> None:
    assert parse_number("0.1") + parse_number("0.2") == parse_number("0.3")
    assert parse_number("3/4") == parse_number("0.75") == parse_number("\\frac{3}{4}")
    assert parse_number("2 1/2") == parse_number("2.5")
    assert parse_number("50%") == 50
    assert parse_number("3 and 4") is None
    assert format_number(parse_number("1/3")) == "1/3"
    assert format_number(parse_number("-2.50")) == "-2.5"


def test_svamp_float_answers_grade_as_integers(shared_data: Path) -> None:
    task = get_task("svamp", path=str(shared_data))
    problems = task.load()
    assert len(problems) == 1000
    first = problems[0]
    assert first.answer == "145"  # the file stores 145.0
    assert task.grade("145.0", first.answer) and task.grade("145", first.answer)
    assert not task.grade("14.5", first.answer)
    assert first.gold_steps == ("290 / 2 = 145",)


def test_asdiv_unit_in_parentheses(shared_data: Path) -> None:
    task = get_task("asdiv", path=str(shared_data))
    problems = task.load()
    assert len(problems) == 2215
    assert problems[0].answer == "9"  # "9 (apples)"
    for text in ("9 (apples)", "Answer: 9 apples", "There are 9 apples.\nAnswer: 9"):
        assert task.grade(task.extract_answer(text), "9 (apples)")
    assert not task.grade(task.extract_answer("Answer: 90"), "9 (apples)")
    yes = next(p for p in problems if p.answer == "Yes")  # non-numeric answers compare as text
    assert task.grade(task.extract_answer("Answer: yes"), yes.answer)
    assert not task.grade(task.extract_answer("Answer: No"), yes.answer)


def test_multiarith_and_amc23_load(shared_data: Path) -> None:
    multi = get_task("multiarith", path=str(shared_data)).load()
    assert len(multi) == 600 and multi[0].answer == "39"
    amc = get_task("amc23", path=str(shared_data))
    rows = amc.load()
    assert len(rows) == 40 and rows[0].answer == "27"  # file: 27.0
    assert amc.grade("\\boxed{27}", rows[0].answer) and not amc.grade("28", rows[0].answer)


def test_aime_leading_zero_answers(shared_data: Path) -> None:
    task = get_task("aime24", path=str(shared_data))
    problems = task.load()
    zero = next(p for p in problems if p.answer.startswith("0"))
    assert task.grade(zero.answer.lstrip("0"), zero.answer)


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("\\dfrac{1}{2}", "\\frac12", True),
        ("\\frac{1}{2}", "0.5", True),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", True),
        ("10^\\circ", "10", True),
        ("\\text{(C)}", "(C)", True),
        ("x = 5", "5", True),
        ("5.0", "5", True),
        ("\\$18.90", "18.90", True),
        ("\\frac{1}{2}", "\\frac{1}{3}", False),
        ("5", "6", False),
        ("(1,2)", "(2,1)", False),
    ],
)
def test_math_grader(a: str, b: str, equal: bool) -> None:
    assert grade_math(a, b) is equal


def test_math500_boxed_solution_equals_answer_on_all_rows(shared_data: Path) -> None:
    """The \\boxed{} in each row's solution grades equal to its answer field (no exceptions)."""
    task = get_task("math500", path=str(shared_data))
    problems = task.load()
    assert len(problems) == 500
    predicted = [task.extract_answer(p.meta["solution"]) for p in problems]
    failures = [
        i
        for i, (pred, p) in enumerate(zip(predicted, problems, strict=True))
        if not task.grade(pred, p.answer)
    ]
    assert failures == []
    # The answer fields are the boxed contents verbatim, so this guards extraction: nested
    # braces must balance (\boxed{\frac{1}{2}}) on the many rows that have them.
    assert sum("{" in p.answer for p in problems) > 100
    # ...and the grader is not lenient: a neighbour's answer only passes when the golds agree.
    for i in range(len(problems) - 1):
        if task.grade(predicted[i], problems[i + 1].answer):
            assert normalize_math(problems[i].answer) == normalize_math(problems[i + 1].answer)


# --- loading and data errors ---------------------------------------------------------------------


def test_gsm8k_splits_are_disjoint_and_steps_stripped(shared_data: Path) -> None:
    task = get_task("gsm8k", path=str(shared_data))
    train, dev, test = (task.load(split=s) for s in ("train", "dev", "test"))
    assert len(train) + len(dev) == 7473 and len(dev) == 500 and len(test) == 1319
    assert not {p.id for p in train} & {p.id for p in dev}
    first = train[0]
    assert first.answer == "72"
    assert first.gold_steps[0] == "Natalia sold 48/2 = 24 clips in May."
    assert all("<<" not in s for p in train[:200] for s in p.gold_steps)
    assert task.format_solution(first).endswith("\nAnswer: 72")


def test_load_selection_is_seeded(shared_data: Path) -> None:
    task = get_task("svamp", path=str(shared_data))
    a, b, c = task.load(10, seed=1), task.load(10, seed=1), task.load(10, seed=2)
    assert [p.id for p in a] == [p.id for p in b] != [p.id for p in c]
    assert [p.id for p in task.load(5, seed=1)] == [p.id for p in a[:5]]


def test_env_var_and_missing_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="--data"):
        get_task("gsm8k").load()
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "q", "answer": "1 + 1 = 2\\n#### 2"}\n')
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    (problem,) = get_task("gsm8k").load()
    assert problem.answer == "2" and problem.gold_steps == ("1 + 1 = 2",)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b'{"question": "q", "answer": "1"}\n{"question": "q2"}\n', ":2: missing field 'answer'"),
        (b'{"question": "q", "answer": "1"}\n{not json}\n', ":2: invalid JSON"),
        (b'{"question": "caf\xe9", "answer": "1"}\n', ":1: not valid UTF-8"),
        (b"[1, 2]\n", ":1: expected a JSON object"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    file = tmp_path / "bad.jsonl"
    file.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        get_task("jsonl", path=str(file)).load()
    assert str(file) in str(info.value)


def test_jsonl_custom_fields_and_split_placeholder(tmp_path: Path) -> None:
    for split, answer in (("train", 3), ("test", 4.0)):
        row = {"q": f"{split} question", "a": answer, "why": ["1 + 2 = 3"]}
        (tmp_path / f"{split}.jsonl").write_text(json.dumps(row) + "\n")
    task = get_task(
        "jsonl", path=str(tmp_path / "{split}.jsonl"), question_field="q", answer_field="a", steps_field="why"
    )
    (train,), (test,) = task.load(split="train"), task.load(split="test")
    assert (train.question, train.answer, train.gold_steps) == ("train question", "3", ("1 + 2 = 3",))
    assert test.answer == "4"


def test_registry() -> None:
    assert set(TASK_NAMES) >= {
        "arith",
        "gsm8k",
        "math500",
        "aime24",
        "amc23",
        "svamp",
        "asdiv",
        "multiarith",
        "jsonl",
    }
    assert isinstance(get_task("arith"), Task)
    with pytest.raises(ConfigError, match="unknown task 'gsm9k'"):
        get_task("gsm9k")
    with pytest.raises(ConfigError, match="prompt_style"):
        get_task("gsm8k", prompt_style="poem")
    with pytest.raises(DataError, match="no split 'train'"):
        get_task("svamp", path="/nonexistent").load(split="train")


def test_prompts_ask_for_the_answer_line() -> None:
    task = get_task("gsm8k", path="unused")
    from caspo_lite.tasks.base import Problem

    problem = Problem("p", "How many?", "3")
    chat = task.prompt(problem)
    assert "Answer: <number>" in chat.messages[0]["content"] and chat.text is None
    few = get_task("gsm8k", path="unused", prompt_style="fewshot").prompt(problem)
    assert few.text.endswith("Q: How many?\n") and "\nQ:" in few.stop and "Answer: 10" in few.text


# --- arith -------------------------------------------------------------------------------------


def test_arith_is_deterministic_and_consistent() -> None:
    task = ArithTask()
    a, b = task.load(50, seed=3, split="train"), task.load(50, seed=3, split="train")
    assert a == b
    assert a != task.load(50, seed=4, split="train")
    for problem in a:
        text = format_solution(problem)
        assert task.grade(task.extract_answer(text), problem.answer)
        assert text.splitlines()[-1] == f"Answer: {problem.answer}"
        assert len(problem.gold_steps) == 2  # the default level has two operations


def test_arith_gold_steps_verify() -> None:
    from caspo_lite.labelers import Label, label_solution
    from caspo_lite.steps import split_steps

    for level in ("easy", "default", "medium", "hard"):
        task = ArithTask(level=level)
        for problem in task.load(40, split="dev"):
            labels = label_solution(split_steps(format_solution(problem)), problem.answer, task)
            assert labels == [Label.CORRECT] * len(labels), (level, problem)


def test_arith_splits_use_disjoint_seed_ranges() -> None:
    task = ArithTask()
    seeds = {
        split: {p.meta["problem_seed"] for p in task.load(20, seed=999, split=split)} for split in SPLIT_BASE
    }
    assert all(min(s) >= SPLIT_BASE[split] for split, s in seeds.items())
    assert all(max(s) < SPLIT_BASE[split] + 1_000_000_000 for split, s in seeds.items())
    with pytest.raises(ConfigError):
        task.load(10, seed=1000)
    with pytest.raises(ConfigError, match="no split"):
        task.load(10, split="validation")


def test_arith_levels_and_prompt() -> None:
    question, steps, answer = generate(get_level("hard"), 12345)
    assert 3 <= len(steps) <= 4 and question.endswith("now?") and answer >= 0
    task = ArithTask(level="default")
    problem = task.load(1)[0]
    prompt = task.prompt(problem)
    assert prompt.text is not None and prompt.text.endswith(f"Q: {problem.question}\n")
    assert prompt.text.count("Answer:") == task.level_spec.shots and "\nQ:" in prompt.stop
    assert "Step 1:" in prompt.text
    with pytest.raises(ConfigError, match="unknown arith level"):
        ArithTask(level="impossible")


def test_a_sentence_without_a_number_is_no_answer() -> None:
    from caspo_lite.tasks.answers import extract_numeric_answer

    assert extract_numeric_answer("The answer is not possible to calculate.") is None
    assert extract_numeric_answer("Answer: Yes") == "Yes"
