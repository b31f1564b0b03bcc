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

from dataclasses import dataclass
from typing import ClassVar

from caspo_lite.tasks.base import Problem
from caspo_lite.tasks.common import WordProblemTask
from caspo_lite.tasks.gsm8k_rows import N_DEV, parse_gold, read_gsm8k, strip_annotations


@dataclass
class GSM8KTask(WordProblemTask):
    name: str = "gsm8k"
    splits: ClassVar[tuple[str, ...]] = ("train", "dev", "test")

    def _read(self, split: str) -> list[Problem]:
        return read_gsm8k(split, self.path)


__all__ = ["N_DEV", "GSM8KTask", "parse_gold", "strip_annotations"]
