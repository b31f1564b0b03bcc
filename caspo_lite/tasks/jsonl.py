"""Any JSONL file of question/answer rows, with configurable field names.

Options: ``question_field`` ("question"), ``answer_field`` ("answer"), ``steps_field``
(optional: a list of step strings or one newline-separated string), ``grader``
("numeric" or "math"). ``path`` is the file; a ``{split}`` in it is replaced by the split
name (``data/{split}.jsonl``), otherwise the one file serves every split. An answer in
GSM8K form ("...\\n#### 72") yields the steps and the final number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caspo_lite.errors import DataError
from caspo_lite.numbers import normalize_number_text
from caspo_lite.tasks import data
from caspo_lite.tasks.answers import extract_math_answer, grade_math
from caspo_lite.tasks.base import Problem
from caspo_lite.tasks.common import WordProblemTask
from caspo_lite.tasks.gsm8k import parse_gold

GRADERS = ("numeric", "math")


@dataclass
class JsonlTask(WordProblemTask):
    name: str = "jsonl"
    question_field: str = "question"
    answer_field: str = "answer"
    steps_field: str | None = None
    grader: str = "numeric"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.grader not in GRADERS:
            raise ValueError(f"grader must be one of {GRADERS}, got {self.grader!r}")

    def load(self, n: int | None = None, seed: int = 0, split: str = "test") -> list[Problem]:
        if not self.path:
            raise DataError("task 'jsonl' needs a file: pass --data PATH.jsonl (or task.path in the recipe)")
        file = Path(self.path.replace("{split}", split)).expanduser()
        if not file.is_file():
            raise DataError(f"{file}: file not found; pass --data PATH to a JSONL file")
        problems = [
            self._problem(file, lineno, row, i) for i, (lineno, row) in enumerate(data.read_jsonl(file))
        ]
        return data.select(problems, n, seed)

    def _problem(self, file: Path, lineno: int, row: dict[str, Any], index: int) -> Problem:
        question = str(data.field(row, self.question_field, file, lineno)).strip()
        raw = data.field(row, self.answer_field, file, lineno)
        steps: tuple[str, ...] = ()
        gold = parse_gold(raw) if isinstance(raw, str) and "####" in raw else None
        if gold is not None:
            steps, answer = gold
        elif self.grader == "numeric":
            answer = normalize_number_text(raw)
        else:
            answer = str(raw).strip()
        if self.steps_field and row.get(self.steps_field):
            value = row[self.steps_field]
            lines = value if isinstance(value, list) else str(value).splitlines()
            steps = tuple(str(s).strip() for s in lines if str(s).strip())
        return Problem(f"{file.stem}-{index}", question, answer, steps, {"line": lineno})

    def extract_answer(self, text: str) -> str | None:
        return super().extract_answer(text) if self.grader == "numeric" else extract_math_answer(text)

    def grade(self, predicted: str | None, gold: str) -> bool:
        return super().grade(predicted, gold) if self.grader == "numeric" else grade_math(predicted, gold)
