"""GSM8K's rows as problems: gold steps, final answer and `<<a*b=c>>` annotations.

Apart from `caspo_lite.tasks.gsm8k` because the word-problem base (`caspo_lite.tasks.common`)
draws its `fewshot-train` examples from GSM8K train: both read rows here, so neither module
imports the other.
"""

from __future__ import annotations

import re

from caspo_lite.errors import DataError
from caspo_lite.numbers import normalize_number_text
from caspo_lite.structure import annotations
from caspo_lite.tasks import data
from caspo_lite.tasks.base import Problem

N_DEV = 500  # the last 500 train rows are the dev split
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


def read_gsm8k(split: str, path: str | None) -> list[Problem]:
    """One split (train / dev / test) of the GSM8K files under the data folder or ``path``."""
    source = "test" if split == "test" else "train"
    file = data.resolve_file(f"gsm8k/{source}.jsonl", path)
    problems = []
    for index, (lineno, row) in enumerate(data.read_jsonl(file)):
        question = str(data.field(row, "question", file, lineno)).strip()
        gold = parse_gold(str(data.field(row, "answer", file, lineno)))
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
