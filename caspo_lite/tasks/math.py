"""Competition maths with LaTeX answers: MATH-500, AIME 2024, AMC 2023.

Files (test split only) and their fields:
- ``benchmarks/math500/test.jsonl``: problem, solution (ends in \\boxed{...}), answer,
  subject, level, unique_id (500 rows).
- ``benchmarks/aime24/test.jsonl``: problem, solution, answer (a string, e.g. "025"), id.
- ``benchmarks/amc23/test.jsonl``: problem (= question), answer (a float, e.g. 27.0), id.

Answers keep their LaTeX; grading normalises both sides (`answers.normalize_math`) and also
compares values when both parse as numbers, so "025" equals "25" and "27.0" equals "27".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from caspo_lite.tasks.answers import extract_math_answer, grade_math
from caspo_lite.tasks.base import Problem, Prompt
from caspo_lite.tasks.common import FEWSHOT_STOP, WordProblemTask, fewshot_text, rows_of
from caspo_lite.tasks.data import field

MATH_INSTRUCTION = (
    "Solve the problem step by step, one step per line. "
    "End with a last line 'Answer: <final answer>' (LaTeX is fine, e.g. Answer: \\frac{1}{2})."
)
MATH_FEWSHOT = (
    (
        "What is $\\frac{1}{2} + \\frac{1}{3}$?",
        "$\\frac{1}{2} + \\frac{1}{3} = \\frac{3}{6} + \\frac{2}{6}$\n$= \\frac{5}{6}$\nAnswer: \\frac{5}{6}",
    ),
    ("Solve $2x + 3 = 11$ for $x$.", "$2x = 11 - 3 = 8$\n$x = 8 / 2 = 4$\nAnswer: 4"),
)


@dataclass
class MathTask(WordProblemTask):
    """One of math500 / aime24 / amc23 (set by `name`)."""

    name: str = "math500"
    files: ClassVar[dict[str, str]] = {
        "math500": "benchmarks/math500/test.jsonl",
        "aime24": "benchmarks/aime24/test.jsonl",
        "amc23": "benchmarks/amc23/test.jsonl",
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.name not in self.files:
            raise ValueError(f"MathTask name must be one of {sorted(self.files)}, got {self.name!r}")

    def _read(self, split: str) -> list[Problem]:
        file, rows = rows_of(self.files[self.name], self.path)
        problems = []
        for index, (lineno, row) in enumerate(rows):
            question = str(row.get("problem") or field(row, "question", file, lineno)).strip()
            answer = field(row, "answer", file, lineno)
            if isinstance(answer, float) and answer.is_integer():
                answer = int(answer)
            meta = {"line": lineno, "solution": row.get("solution", "")}
            for key in ("subject", "level", "unique_id", "id", "url"):
                if key in row:
                    meta[key] = row[key]
            problems.append(Problem(f"{self.name}-{index}", question, str(answer).strip(), (), meta))
        return problems

    def prompt(self, problem: Problem) -> Prompt:
        if self.prompt_style == "fewshot":
            return Prompt(text=fewshot_text(list(MATH_FEWSHOT), problem.question), stop=FEWSHOT_STOP)
        content = f"{MATH_INSTRUCTION}\n\n{problem.question}"
        return Prompt(messages=({"role": "user", "content": content},))

    def extract_answer(self, text: str) -> str | None:
        return extract_math_answer(text)

    def grade(self, predicted: str | None, gold: str) -> bool:
        return grade_math(predicted, gold)
