"""`caspo-lite demo` end to end on the built-in `tiny` model: before table, one real CASPO round, after.

The round is the real loop (llama.cpp sampling, verify labels, step pairs, TRL LoRA DPO, merge,
lossless GGUF export) with the demo recipe shrunk to seconds; the checks are that the after rows
come from that round's policy GGUF (new weights, not the base file) and that a rerun reuses it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("llama_cpp")
pytest.importorskip("trl")

from caspo_lite.cli import app  # noqa: E402
from caspo_lite.config import SearchSection  # noqa: E402
from caspo_lite.demo import AFTER_STRATEGIES, mean_step_confidence, round_effect, run_full_demo  # noqa: E402
from caspo_lite.errors import ConfigError  # noqa: E402
from caspo_lite.solve import DEMO_STRATEGIES  # noqa: E402

pytestmark = pytest.mark.slow
# the demo recipe sized for the few-MB tiny model (its chat prompt and short steps, as tiny-ci)
TINY = [
    "task.n_train=6",
    "sample.max_tokens=48",
    "sample.prompt_style=chat",
    "sample.threads=1",
    "steps.min_step_tokens=2",
    "steps.max_step_tokens=48",
    "pairs.low_percentile=60",
    "pairs.high_percentile=0",
    "dpo.learning_rate=5e-3",
    "dpo.max_steps=2",
    "dpo.save_steps=2",
    "dpo.max_length=128",
]
SEARCH = SearchSection(k=3, beam_width=2, branch_factor=2, max_tokens=24, temperature=0.7, seed=0)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASPO_LITE_THREADS", "1")


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, tiny_model: object) -> tuple[object, list, Path]:
    out = tmp_path_factory.mktemp("demo") / "run"
    events: list = []
    report = run_full_demo("tiny", n=2, out=out, overrides=TINY, search=SEARCH, on_event=events.append)
    return report, events, out


def test_after_rows_come_from_the_trained_round(demo_run: tuple) -> None:
    report, events, out = demo_run
    assert [s.strategy for s in report.before] == list(DEMO_STRATEGIES)
    assert [s.strategy for s in report.after] == list(AFTER_STRATEGIES)
    for s in [*report.before, *report.after]:
        assert len(s.rows) == 2 and s.n_tokens > 0 and mean_step_confidence(s) is not None
    # before = the round's starting point (round-0 export), after = round-1's own export
    assert Path(report.before_model) == out / "round-0" / "policy-f16.gguf"
    assert Path(report.after_model) == out / "round-1" / "policy-f16.gguf"
    assert _sha(report.before_model) != _sha(report.after_model)  # DPO changed the weights
    ledger = json.loads((out / "round-1" / "ledger.json").read_text(encoding="utf-8"))["stages"]
    assert ledger["dpo"]["done"] and ledger["dpo"]["steps"] == 2 and ledger["export"]["done"]
    assert report.round_summary["pairs/total"] > 0
    assert {e.stage for e in events if e.kind == "stage"} >= {"sample", "label", "pairs", "dpo", "export"}
    assert set(report.phases) == {"base", "before", "train", "after"}
    # the same problems and budget: greedy's path is deterministic, so only the weights differ
    ids = [[r.problem_id for r in s.rows] for s in (*report.before, *report.after)]
    assert all(i == ids[0] for i in ids)


def test_rerun_reuses_the_finished_round(demo_run: tuple) -> None:
    report, _, out = demo_run
    gguf = out / "round-1" / "policy-f16.gguf"
    mtime = gguf.stat().st_mtime_ns
    events: list = []
    again = run_full_demo("tiny", n=2, out=out, overrides=TINY, search=SEARCH, on_event=events.append)
    assert not [e for e in events if e.kind == "stage"]  # nothing trained again
    assert {e.stage for e in events if e.kind == "skip"} >= {"sample", "dpo", "export"}
    assert gguf.stat().st_mtime_ns == mtime and again.after_model == report.after_model
    # the same model, problems and seed give the same greedy answers
    assert [r.result.answer for r in again.after[0].rows] == [r.result.answer for r in report.after[0].rows]


def test_other_config_in_the_run_folder_fails_before_any_work(demo_run: tuple) -> None:
    _, _, out = demo_run
    with pytest.raises(ConfigError, match="another config"):
        run_full_demo("tiny", n=2, out=out, overrides=[*TINY, "dpo.max_steps=3"], search=SEARCH)


def test_cli_demo_json_and_errors(demo_run: tuple) -> None:
    _, _, out = demo_run
    runner = CliRunner()
    args = ["demo", "--model", "tiny", "--n", "2", "--k", "3", "--max-tokens", "24", "--out", str(out)]
    sets = [x for item in TINY for x in ("--set", item)]
    res = runner.invoke(app, [*args, *sets, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output[res.output.index("{") :])
    assert data["after_model"].endswith("round-1/policy-f16.gguf") and len(data["after"]) == 2
    assert data["before"][2]["strategy"] == "cat" and "mean_step_confidence" in data["after"][1]
    table = runner.invoke(app, [*args, *sets])
    assert table.exit_code == 0, table.output
    assert "already done, skipped" in table.output and "round-1" in table.output
    assert "mean step conf" in table.output and "after:" in table.output
    bad = runner.invoke(app, [*args, "--recipe", str(out / "missing.toml")])
    assert bad.exit_code != 0 and "missing.toml" in bad.output and "Traceback" not in bad.output


def test_no_train_is_the_quick_table(tiny_model: object) -> None:
    report = run_full_demo("tiny", n=1, train=False, search=SEARCH)
    assert [s.strategy for s in report.before] == list(DEMO_STRATEGIES) and not report.after
    assert report.run_dir is None and set(report.phases) == {"before"}


def test_round_effect_states_the_measured_change_with_its_sample_size() -> None:
    summary = {
        "pairs/total": 30,
        "dpo/n_heldout": 3,
        "dpo/heldout_margin": 0.0123,
        "dpo/heldout_reward_acc": 2 / 3,
        "dpo/reward_margin": 0.05,
        "dpo/reward_accuracy": 0.9,
        "steps/n_correct": 40,
        "steps/n_wrong": 60,
        "steps/mean_conf_correct": 0.81,
        "steps/mean_conf_wrong": 0.77,
    }
    held, train, conf = round_effect(summary)
    assert "3 held-out pairs" in held and "+0.0123" in held and "67%" in held
    assert "27 training pairs" in train and "+0.0500" in train
    assert "0.810 (n=40)" in conf and "0.770 (n=60)" in conf
    assert "fewer than 5" in round_effect({**summary, "dpo/n_heldout": 0})[0]
    assert round_effect({}) == []


def test_the_demo_round_reports_held_out_pairs(demo_run: tuple) -> None:
    report, _, _ = demo_run
    s = report.round_summary
    assert s["dpo/n_heldout"] == (max(1, round(s["pairs/total"] * 0.1)) if s["pairs/total"] >= 5 else 0)
    assert round_effect(s)
