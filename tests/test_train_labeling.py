"""The label stage gives the verify labeler the loaded problem's gold structure."""

from __future__ import annotations

from caspo_lite.labeler_registry import get_labeler
from caspo_lite.structure import annotations
from caspo_lite.tasks.base import Problem
from caspo_lite.tasks.gsm8k import GSM8KTask
from caspo_lite.train.labeling import label_record, label_round

QUESTION = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. Total?"
)
ANSWER = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nAltogether 48+24 = <<48+24=72>>72.\n#### 72"


def _sample(steps: list[str]) -> dict:
    return {
        "problem_id": "gsm8k-train-0",
        "question": QUESTION,
        "gold": "72",
        "prompt": "Q: ...\n",
        "solutions": [{"index": 0, "steps": [{"text": s} for s in steps]}],
    }


def test_label_record_uses_the_source_problems_structure() -> None:
    source = Problem("gsm8k-train-0", QUESTION, "72", (), {"line": 1, "calculations": annotations(ANSWER)})
    sample = _sample(["In May: 48 * 2 = 96\n", "96 - 24 = 72\n", "Answer: 72"])
    task, labeler = GSM8KTask(), get_labeler("verify")
    # without the structure the wrong operation passes (48 and 2 are licensed, the answer is right)
    assert label_record(sample, labeler, task)["labels"][0][0] == "correct"
    assert label_record(sample, labeler, task, source)["labels"][0][0] == "wrong"

    class Appender:
        done: set = set()
        rows: list = []

        def append(self, rec: dict) -> None:
            self.rows.append(rec)

    out = Appender()
    assert label_round([sample], labeler, task, out, problems={source.id: source}) == 1
    assert out.rows[0]["labels"][0][0] == "wrong"
