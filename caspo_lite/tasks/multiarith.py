"""MultiArith (Roy & Roth, 2015): two-step arithmetic word problems.

Rows: ``{"input": question, "target": 39}``. No gold steps. Test split only (599 rows).
"""

from __future__ import annotations

from dataclasses import dataclass

from caspo_lite.numbers import normalize_number_text
from caspo_lite.tasks.base import Problem
from caspo_lite.tasks.common import WordProblemTask, rows_of
from caspo_lite.tasks.data import field


@dataclass
class MultiArithTask(WordProblemTask):
    name: str = "multiarith"
    # Chosen on ASDiv (dev task) for SmolLM2-135M greedy: chat 0/100, fewshot 2/100, fewshot-train 5/100.
    prompt_style: str = "fewshot-train"

    def _read(self, split: str) -> list[Problem]:
        file, rows = rows_of("benchmarks/multiarith/test.jsonl", self.path)
        return [
            Problem(
                f"multiarith-{index}",
                str(field(row, "input", file, lineno)).strip(),
                normalize_number_text(field(row, "target", file, lineno)),
                (),
                {"line": lineno},
            )
            for index, (lineno, row) in enumerate(rows)
        ]
