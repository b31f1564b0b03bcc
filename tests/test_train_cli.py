"""`caspo-lite train` / `data export` from the command line: plans and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from caspo_lite.cli import app

REPO = Path(__file__).resolve().parents[1]
RECIPE = str(REPO / "recipes" / "tiny-ci.toml")


def _invoke(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def _error_line(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, output
    return lines[0]


def test_bad_recipe_key_and_value() -> None:
    code, out = _invoke("train", "--recipe", RECIPE, "--set", "dpo.bta=0.2", "--dry-run")
    assert code == 2 and "unknown key 'bta'" in _error_line(out) and "tiny-ci.toml.dpo" in out
    code, out = _invoke("train", "--recipe", RECIPE, "--set", "sample.n=-1", "--dry-run")
    assert code == 2 and "sample.n must be > 0" in _error_line(out)
    code, out = _invoke("train", "--recipe", "no/such.toml", "--dry-run")
    assert code == 2 and "recipe not found" in _error_line(out)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"question": "1+1?", "answer": "2"}\n{"question": "2+2?"}\n', ":2: missing field 'answer'"),
        (b"", "empty file"),
        (b'{"question": "1+1?", "answer": "\xff"}\n', ":1: not valid UTF-8"),
    ],
    ids=["missing-answer", "empty", "non-utf8"],
)
def test_bad_task_data_names_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    data = tmp_path / "mine.jsonl"
    data.write_bytes(content)
    sets = ["task.name='jsonl'", f"task.path='{data}'", "task.n_train=1", "task.n_dev=0"]
    code, out = _invoke("train", "--recipe", RECIPE, *[a for s in sets for a in ("--set", s)], "--dry-run")
    line = _error_line(out)
    assert code != 0 and str(data) in line and message in line


def test_dry_run_prints_plan_and_memory(tmp_path: Path) -> None:
    code, out = _invoke("train", "--recipe", RECIPE, "--dry-run", "--out", str(tmp_path / "r"))
    assert code == 0, out
    plan = json.loads(out[out.index("{") :])
    assert plan["train_problems"] == 12 and plan["samples_per_round"] == 96
    assert plan["backend"].startswith("trl on cpu")
    assert plan["memory_estimate_gb"] is None or plan["memory_estimate_gb"] > 0  # known once tiny is built
    assert not (tmp_path / "r").exists()  # a dry run writes nothing


def test_data_export_errors(tmp_path: Path) -> None:
    code, out = _invoke("data", "export", str(tmp_path))
    assert code == 2 and "no pairs file" in _error_line(out)
    rd = tmp_path / "round-1"
    rd.mkdir()
    (rd / "pairs.jsonl").write_bytes(b'{"chosen": "a"}\n{"chosen": "\xff"}\n')
    code, out = _invoke("data", "export", str(rd))
    assert code == 2 and "pairs.jsonl:2: not UTF-8" in _error_line(out)
    code, out = _invoke("data", "export", str(rd), "--format", "parquet")
    assert code == 2 and "--format 'parquet'" in _error_line(out)


def test_round_line_leaves_out_what_the_round_did_not_measure() -> None:
    from caspo_lite.cli import round_line

    line = round_line(0, {"pairs/total": 19, "pairs/A": 4, "pairs/B": 15, "steps/mean_conf_correct": 0.71})
    assert "None" not in line
    assert "dev accuracy" not in line and "DPO" not in line
    assert "pairs 19 (A 4, B 15)" in line and "step conf correct 0.710" in line
    full = round_line(
        1,
        {
            "pairs/total": 3,
            "pairs/A": 1,
            "pairs/B": 2,
            "dpo/reward_margin": 0.25,
            "eval/dev_accuracy": 0.4,
            "steps/mean_conf_correct": 0.7,
            "steps/mean_conf_wrong": 0.5,
        },
    )
    assert "dev accuracy 0.400" in full and "step conf correct 0.700 vs wrong 0.500" in full


def test_json_is_a_stream_of_events_with_the_error_as_data(tmp_path: Path) -> None:
    """--json: stdout holds JSON lines only; a mistake is an ``error`` event with its exit code."""
    res = CliRunner().invoke(
        app, ["train", "--recipe", RECIPE, "--set", "dpo.bta=0.2", "--dry-run", "--json"]
    )
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.exit_code == 2 and [e["event"] for e in events] == ["started", "error"]
    error = events[-1]
    assert error["code"] == 2 and error["kind"] == "ConfigError" and "unknown key 'bta'" in error["message"]
    assert res.stderr.strip() == f"error: {error['message']}"  # people still get their one line
    res = CliRunner().invoke(
        app, ["train", "--recipe", RECIPE, "--dry-run", "--json", "--out", str(tmp_path / "r")]
    )
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.exit_code == 0 and events[-1]["event"] == "plan" and events[-1]["plan"]["train_problems"] == 12
