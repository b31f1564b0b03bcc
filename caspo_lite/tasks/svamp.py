"""SVAMP (Patel et al., 2021): one-equation word problems with varied structure.

Rows: ``{"Body", "Question", "Equation", "Answer": 145.0, "ID", ...}``. The question is
Body + Question; the answer is a float in the file ("145.0" grades equal to "145"). The
Equation gives one gold step, e.g. "( 290.0 / 2.0 ) = 145". Test split only (1000 rows).
"""

from __future__ import annotations

from dataclasses import dataclass

from caspo_lite.numbers import format_number, normalize_number_text, parse_number
from caspo_lite.tasks.base import Problem
from caspo_lite.tasks.common import WordProblemTask, rows_of
from caspo_lite.tasks.data import field


def _clean_equation(equation: str) -> str:
    """'( 290.0 / 2.0 )' -> '290 / 2' (drop .0 and outer parentheses)."""
    text = equation.strip()
    while text.startswith("(") and text.endswith(")") and text.count("(") == 1:
        text = text[1:-1].strip()
    parts = [format_number(v) if (v := parse_number(t)) is not None else t for t in text.split()]
    return " ".join(parts)


@dataclass
class SVAMPTask(WordProblemTask):
    name: str = "svamp"
    # Chosen on ASDiv (dev task) for SmolLM2-135M greedy: chat 0/100, fewshot 2/100, fewshot-train 5/100.
    prompt_style: str = "fewshot-train"

    def _read(self, split: str) -> list[Problem]:
        file, rows = rows_of("benchmarks/svamp/test.jsonl", self.path)
        problems = []
        for index, (lineno, row) in enumerate(rows):
            body = str(row.get("Body", "")).strip()
            question = str(field(row, "Question", file, lineno)).strip()
            answer = normalize_number_text(field(row, "Answer", file, lineno))
            text = f"{body.rstrip('.')}. {question}" if body else question
            steps = (f"{_clean_equation(row['Equation'])} = {answer}",) if row.get("Equation") else ()
            problems.append(
                Problem(f"svamp-{index}", text, answer, steps, {"line": lineno, "id": row.get("ID")})
            )
        return problems
