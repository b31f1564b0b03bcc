"""bench/results_tables.py: RESULTS.md's tables come from eval records, with paired deltas."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

from caspo_lite.eval.trace import STEP_SIGNALS

BENCH = Path(__file__).resolve().parents[1] / "bench" / "results_tables.py"


def _step(label: str, conf: float, h: float) -> dict:
    return {"text": "s", "label": label, "signals": {s: conf for s in STEP_SIGNALS}, "entropy_nats": h}


def _record(model: str, strategy: str, pid: int, correct: bool, tokens: int) -> dict:
    step = _step("correct", 0.9, 0.1) if correct else _step("wrong", 0.4, 1.1)
    return {
        "model": model, "strategy": strategy, "problem_id": f"p{pid}", "correct": correct,
        "confidence": 0.8 if correct else 0.5, "n_tokens": tokens, "latency_s": tokens / 100,
        "n_branches": 1, "n_pruned": 0, "chosen_path": 0,
        "paths": [{"branch": 0, "answer": "1", "correct": correct, "path_confidence": 0.5, "steps": [step]}],
    }  # fmt: skip


@pytest.fixture
def eval_dir(tmp_path: Path) -> Path:
    recs = []
    for i in range(40):
        base_ok = i % 4 == 0  # 10 / 40
        recs.append(_record("runs/x/round-0", "greedy", i, base_ok, 30))
        recs.append(_record("runs/x/round-1", "greedy", i, base_ok or i % 8 == 1, 30))  # +5, -0
        recs.append(_record("runs/x/round-1", "sc", i, base_ok or i % 2 == 1, 240))
        recs.append(_record("runs/x/round-1", "cat", i, base_ok or i % 8 == 1, 120))
    out = tmp_path / "ev"
    out.mkdir()
    (out / "problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return out


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert runpy.run_path(str(BENCH))["main"](args) == 0
    return capsys.readouterr().out


def test_main_table_has_paired_deltas_against_the_named_base(eval_dir: Path, capsys, tmp_path: Path) -> None:
    labels = ["--label", "runs/x/round-0=base", "--label", "runs/x/round-1=CASPO r1"]
    png = tmp_path / "p" / "rounds.png"
    out = _run(["main", "--eval", str(eval_dir), *labels, "--base", "base", "--plot", str(png)], capsys)
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in out.splitlines()[2:]}
    assert rows[("base", "greedy")].split("|")[4].strip().startswith("0.250 [")
    r1 = rows[("CASPO r1", "greedy")].split("|")
    assert (
        r1[4].strip().startswith("0.375 [")
        and r1[5].strip().startswith("+0.125 [")
        and r1[6].strip() == "5/0"
    )
    assert rows[("CASPO r1", "sc")].split("|")[5].strip() == "—"  # no base row for sc: no delta
    assert "+1.000" in rows[("base", "greedy")]  # entropy gap wrong - correct = 1.1 - 0.1
    assert png.stat().st_size > 1000
    only = _run(["signals", "--eval", str(eval_dir), "--strategies", "greedy,cat"], capsys)
    assert "| sc |" not in only and "| cat |" in only and "| greedy |" in only


def test_strategies_table_gives_ratios_to_sc(eval_dir: Path, capsys) -> None:
    out = _run(["strategies", "--eval", str(eval_dir), "--model", "runs/x/round-1"], capsys)
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
        for line in out.splitlines()[2:]
    }
    assert set(rows) == {"greedy", "sc", "cat"}
    assert rows["sc"][5:] == ["1.00", "1.00", "1.00"]
    assert rows["cat"][6] == "0.50" and rows["greedy"][6] == "0.12"  # tokens 120 and 30 vs 240


def test_bad_flags_are_one_line_errors(eval_dir: Path, tmp_path: Path) -> None:
    main = runpy.run_path(str(BENCH))["main"]
    with pytest.raises(SystemExit, match="MODEL_REF=NAME"):
        main(["main", "--eval", str(eval_dir), "--label", "nolabel"])
    with pytest.raises(SystemExit, match="no eval records"):
        main(["main", "--eval", str(tmp_path / "missing")])
    with pytest.raises(SystemExit, match="--base 'nobody'"):
        main(["main", "--eval", str(eval_dir), "--base", "nobody"])
    with pytest.raises(SystemExit, match="no records for model"):
        main(["strategies", "--eval", str(eval_dir), "--model", "other"])
