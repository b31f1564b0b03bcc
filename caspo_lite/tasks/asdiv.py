"""ASDiv (Miao et al., 2020): diverse elementary word problems.

Rows: ``{"body", "question", "answer": "9 (apples)", "formula": "7+2=9", ...}``. The unit
in parentheses is dropped ("9 (apples)" grades equal to "9"). About 3% of answers are not
numbers ("Yes", "3:30 p.m.", "2:3", names); those grade as normalised strings. The formula
is kept as the single gold step when it is a plain equation. Test split only (2215 rows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from caspo_lite.numbers import normalize_number_text
from caspo_lite.tasks.base import Problem
from caspo_lite.tasks.common import WordProblemTask, rows_of
from caspo_lite.tasks.data import field

_PLAIN_FORMULA = re.compile(r"^[\d.+\-*/() ]+=[\d. ]+$")


@dataclass
class ASDivTask(WordProblemTask):
    name: str = "asdiv"
    # ASDiv is the dev task that chose the word-problem format (SmolLM2-135M greedy, 100 problems:
    # chat 0, fewshot 2, fewshot-train 5 right), so its own figures with it are not unbiased.
    prompt_style: str = "fewshot-train"

    def _read(self, split: str) -> list[Problem]:
        file, rows = rows_of("benchmarks/asdiv/test.jsonl", self.path)
        problems = []
        for index, (lineno, row) in enumerate(rows):
            body = str(row.get("body", "")).strip()
            question = str(field(row, "question", file, lineno)).strip()
            answer = normalize_number_text(str(field(row, "answer", file, lineno)))
            formula = str(row.get("formula", "")).strip()
            steps = (formula,) if _PLAIN_FORMULA.match(formula) else ()
            text = f"{body} {question}".strip()
            meta = {"line": lineno, "type": row.get("solution_type")}
            problems.append(Problem(f"asdiv-{index}", text, answer, steps, meta))
        return problems
