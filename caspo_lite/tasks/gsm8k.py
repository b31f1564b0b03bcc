"""GSM8K (Cobbe et al., 2021): grade-school word problems with worked solutions.

Rows are ``{"question", "answer"}``; the answer is step lines with calculator annotations
``<<48/2=24>>`` and a last line ``#### 72``. Gold steps are the step lines with the
annotations stripped (the visible text a model would write); the gold answer is the number
after ``####``.

Splits: ``train`` = train.jsonl minus its last 500 rows, ``dev`` = those 500 rows (held out
from training for model selection), ``test`` = test.jsonl (1319 rows). Problem ids carry the
0-based row index in the file: ``gsm8k-train-17`` is line 18 of train.jsonl, for both the
train and dev splits. ``meta["calculations"]`` keeps the annotations ("48/2=24"): the verify
labeler reads the gold structure from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from caspo_lite.errors import DataError
from caspo_lite.numbers import normalize_number_text
from caspo_lite.structure import annotations
from caspo_lite.tasks.base import Problem
from caspo_lite.tasks.common import WordProblemTask, rows_of
from caspo_lite.tasks.data import field

N_DEV = 500
_ANNOTATION = re.compile(r"<<[^<>]*>>")


def strip_annotations(text: str) -> str:
    """'48/2 = <<48/2=24>>24' -> '48/2 = 24'."""
    return _ANNOTATION.sub("", text)


def parse_gold(answer: str) -> tuple[tuple[str, ...], str] | None:
    """(gold steps, final answer) from a GSM8K answer field; None when '####' is missing."""
    body, sep, final = answer.rpartition("####")
    if not sep or not final.strip():
        return None
    steps = tuple(line.strip() for line in strip_annotations(body).splitlines() if line.strip())
    return steps, normalize_number_text(final.strip())


@dataclass
class GSM8KTask(WordProblemTask):
    name: str = "gsm8k"
    splits: ClassVar[tuple[str, ...]] = ("train", "dev", "test")

    def _read(self, split: str) -> list[Problem]:
        source = "test" if split == "test" else "train"
        file, rows = rows_of(f"gsm8k/{source}.jsonl", self.path)
        problems = []
        for index, (lineno, row) in enumerate(rows):
            question = str(field(row, "question", file, lineno)).strip()
            gold = parse_gold(str(field(row, "answer", file, lineno)))
            if gold is None:
                raise DataError(f"{file}:{lineno}: field 'answer' has no '#### <number>' final line")
            steps, answer = gold
            meta = {"line": lineno, "calculations": annotations(str(row["answer"]))}
            problems.append(Problem(f"gsm8k-{source}-{index}", question, answer, steps, meta))
        if split == "train":
            return problems[:-N_DEV]
        if split == "dev":
            return problems[-N_DEV:]
        return problems
