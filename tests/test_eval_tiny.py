"""`caspo-lite eval` end to end on the tiny Llama, the real arith task and the real labeler.

Runs through llama.cpp when llama-cpp-python is installed, else through the transformers
engine (same search code, same outputs).
"""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest
from typer.testing import CliRunner

from caspo_lite.cli import app

ENGINE = "llama_cpp" if find_spec("llama_cpp") else "hf"


@pytest.fixture(scope="module")
def tiny_ref() -> Path:
    from caspo_lite.tiny import ensure_tiny

    tiny = ensure_tiny()
    return tiny.gguf if ENGINE == "llama_cpp" else tiny.hf_dir


def test_eval_tiny_model_writes_every_output_and_resumes(tiny_ref: Path, tmp_path: Path) -> None:
    out = tmp_path / "ev"
    args = ["eval", "-m", str(tiny_ref), "--engine", ENGINE, "--task", "arith", "--n", "2", "--k", "2"]
    args += ["--strategies", "greedy,sc,bon,deepconf,cat", "--set", "search.max_tokens=24", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "step-rel" in result.output  # the table is printed at the end
    names = (
        "problems.jsonl",
        "summary.json",
        "report.md",
        f"reliability_{tiny_ref.stem}.png",
        "accuracy_vs_tokens.png",
    )
    for name in names:
        assert (out / name).stat().st_size > 0, name
    records = [json.loads(line) for line in (out / "problems.jsonl").read_text().splitlines()]
    assert len(records) == 10
    assert all(r["n_tokens"] > 0 and r["latency_s"] > 0 for r in records)
    steps = [s for r in records for p in r["paths"] for s in p["steps"]]
    assert steps and all(s["signals"]["entropy"] is not None for s in steps)  # all signals recorded
    assert all(s["label"] in ("correct", "wrong", "unknown") for s in steps)
    summary = json.loads((out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert len(summary["results"]) == 5
    for group in summary["results"]:
        for name, m in group["metrics"].items():
            assert m["value"] is not None or m["reason"], name
        assert group["metrics"]["search/tokens_per_s"]["value"] > 0

    again = CliRunner().invoke(app, args)  # everything done: resumes to the same report at once
    assert again.exit_code == 0, again.output
    assert len((out / "problems.jsonl").read_text().splitlines()) == 10
