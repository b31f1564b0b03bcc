"""`caspo-lite label`: label solutions a user brings, end to end, and its bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from caspo_lite.cli import app
from caspo_lite.errors import DataError
from caspo_lite.label_file import explainer, label_file, read_rows
from caspo_lite.tasks import get_task

runner = CliRunner()

NATALIA_Q = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)
NATALIA_A = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
)
ROWS = [
    {
        "question": "What is 8 - 8 + 5?",
        "answer": "5",
        "solution": "Step 1: 8 + 5 = 13\nStep 2: 13 - 8 = 5\nAnswer: 5",
    },
    {
        "question": "What is 8 - 8 + 5?",
        "answer": 5,
        "steps": ["Step 1: 8 + 5 = 13", "Step 2: 13 - 5 = 8", "Answer: 8"],
    },
    {
        "question": NATALIA_Q,
        "answer": NATALIA_A,
        "steps": ["48 * 2 = 96 in May.", "96 + 48 = 144", "Answer: 144"],
    },
    {
        "question": NATALIA_Q,
        "answer": NATALIA_A,
        "solution": "In May: 48 * 0.5 = 24\n24 + 48 = 72\nAnswer: 72",
        "id": "x",
    },
]


def _write(path: Path, rows: list) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_label_end_to_end(tmp_path: Path) -> None:
    src, out = _write(tmp_path / "solutions.jsonl", ROWS), tmp_path / "labelled.jsonl"
    res = runner.invoke(app, ["label", "--task", "arith", "--input", str(src), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["rows"] == 4
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k != "steps"} for r in rows[:1]] == [
        {k: v for k, v in ROWS[0].items()}
    ]  # the input row comes back unchanged, plus its steps
    got = [[(s["label"], s["reason"]) for s in r["steps"]] for r in rows]
    assert got[0] == [("correct", "checked"), ("correct", "checked"), ("correct", "solution_right")]
    assert got[1] == [("correct", "checked"), ("wrong", "operation"), ("wrong", "final_answer")]
    # GSM8K-style answers carry their annotations: the gold structure is known
    assert got[2][0] == ("wrong", "operation")
    assert got[3] == [("correct", "checked"), ("correct", "checked"), ("correct", "solution_right")]
    assert [s["text"] for s in rows[3]["steps"]] == ["In May: 48 * 0.5 = 24", "24 + 48 = 72", "Answer: 72"]
    assert not (tmp_path / "labelled.jsonl.partial").exists()
    text = runner.invoke(app, ["label", "--task", "arith", "--input", str(src), "--out", str(out)])
    assert text.exit_code == 0 and "labelled 4 solutions" in text.output and "operation 3" in text.output


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('{"question": "q"}', "sol.jsonl:2: missing field 'answer'"),
        ('{"question": "q", "answer": "5"}', "sol.jsonl:2: needs a field 'solution' (text) or 'steps'"),
        (
            '{"question": "q", "answer": "5", "steps": "1 + 4 = 5"}',
            "sol.jsonl:2: field 'steps' must be a list",
        ),
        (
            '{"question": "q", "answer": "x #### ", "solution": "1 + 4 = 5"}',
            "sol.jsonl:2: field 'answer' has '####'",
        ),
        ('{"question": "", "answer": "5", "solution": "a"}', "sol.jsonl:2: field 'question' is empty"),
        ('{"question": "q", "answer": [5], "solution": "a"}', "sol.jsonl:2: field 'answer' must be text"),
        ('{"question": "q", "answer": "5", "solution": "\\n\\n"}', "sol.jsonl:2: the solution has no steps"),
        ("not json", "sol.jsonl:2: invalid JSON"),
    ],
)
def test_label_bad_rows_are_one_line_errors_naming_the_line(tmp_path: Path, row: str, message: str) -> None:
    src = _write(tmp_path / "sol.jsonl", [ROWS[0], row])
    out = tmp_path / "out.jsonl"
    res = runner.invoke(app, ["label", "--task", "arith", "--input", str(src), "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert message in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert "Traceback" not in res.output and not out.exists()


def test_label_unknown_labeler_and_missing_file(tmp_path: Path) -> None:
    src = _write(tmp_path / "sol.jsonl", ROWS[:1])
    res = runner.invoke(
        app, ["label", "--task", "arith", "--input", str(src), "--out", "o", "--labeler", "oracle"]
    )
    assert res.exit_code == 2 and "unknown labeler 'oracle'" in res.output
    res = runner.invoke(
        app, ["label", "--task", "arith", "--input", str(tmp_path / "none.jsonl"), "--out", "o"]
    )
    assert res.exit_code == 2 and "none.jsonl: cannot read" in res.output


def test_label_file_resumes_from_partial(tmp_path: Path) -> None:
    """A stopped run keeps finished rows in OUT.partial; the rerun labels only the rest."""
    src, out = _write(tmp_path / "s.jsonl", ROWS), tmp_path / "o.jsonl"
    task = get_task("arith")
    items = read_rows(src)
    seen: list[str] = []

    def counting(problem, steps, task_):  # noqa: ANN001, ANN202
        seen.append(problem.id)
        return explainer("verify")(problem, steps, task_)

    first = {
        "line": items[0].line,
        "row": {**ROWS[0], "steps": [{"text": "kept", "label": "correct", "reason": "x"}]},
    }
    (tmp_path / "o.jsonl.partial").write_text(json.dumps(first) + "\n" + '{"line": 2, "ro', encoding="utf-8")
    label_file(task, src, out, counting)
    assert len(seen) == 3  # row 1 came from the partial file, the cut line was dropped
    assert json.loads(out.read_text().splitlines()[0])["steps"][0]["text"] == "kept"
    with pytest.raises(DataError, match="needs a model"):
        explainer("rollout")
