"""Step rebuild from events, summaries, report.md and plots on synthetic records."""

from __future__ import annotations

import json
import math

import pytest

from caspo_lite.confidence import TokenStats
from caspo_lite.eval import report
from caspo_lite.eval.plots import model_slug, write_plots
from caspo_lite.eval.trace import STEP_SIGNALS, rebuild_paths
from caspo_lite.search.events import BranchFinished, BranchStarted, StepDone, TokenGenerated


def _tok(branch: int, text: str, entropy: float) -> TokenGenerated:
    stats = TokenStats(entropy=entropy, margin=0.5, maxprob=0.6, deepconf=3.0, logprob=-0.1)
    return TokenGenerated(branch, 0, text, math.exp(-entropy), -0.1, stats)


def _fin(branch: int, text: str) -> BranchFinished:
    return BranchFinished(branch, text, "1", 0.5, 3, "eos")


def test_rebuild_paths_follows_forks_and_keeps_a_trailing_step() -> None:
    events = [
        BranchStarted(0, None, 0, "root"),
        _tok(0, "a = 1", 0.2),
        _tok(0, "\n", 0.4),
        StepDone(0, 0, "a = 1", 0.7, 0.7),
        BranchStarted(1, 0, 1, "fork"),  # child inherits step 0
        _tok(1, "b = 2", 1.0),
        StepDone(1, 1, "b = 2", 0.3, 0.5),
        _tok(0, "c = 3", 0.0),
        _fin(0, "a = 1\nc = 3"),  # unclosed trailing step becomes a step
        _fin(1, "a = 1\nb = 2"),
    ]
    paths = rebuild_paths(events)
    assert [s.text for s in paths[0]] == ["a = 1", "c = 3"]
    assert [s.text for s in paths[1]] == ["a = 1", "b = 2"]
    first = paths[1][0].signals()
    assert first["entropy"] == pytest.approx(math.exp(-0.3))  # geometric mean of exp(-H) = exp(-mean H)
    assert first["margin"] == pytest.approx(0.5) and first["logprob"] == pytest.approx(-0.1)
    assert paths[1][0].mean_entropy() == pytest.approx(0.3)
    assert paths[0][1].confidence is None and paths[0][0].confidence == 0.7
    assert set(first) == set(STEP_SIGNALS)


def test_rebuild_without_stats_gives_null_signals() -> None:
    events = [TokenGenerated(0, 1, "x = 1", 0.5, -0.7), StepDone(0, 0, "x = 1", 0.5, 0.5), _fin(0, "x = 1")]
    (step,) = rebuild_paths(events)[0]
    sig = step.signals()
    assert sig["entropy"] is None and sig["logprob"] == pytest.approx(-0.7)


def _step(label: str, conf: float, h: float) -> dict:
    return {
        "text": "s",
        "label": label,
        "signals": {s: conf for s in STEP_SIGNALS},
        "entropy_nats": h,
        "confidence": conf,
    }


def _record(model: str, strategy: str, pid: str, correct: bool, conf: float, steps: list[dict]) -> dict:
    path = {
        "branch": 0,
        "text": "",
        "answer": "1",
        "correct": correct,
        "path_confidence": conf,
        "steps": steps,
    }
    return {
        "model": model,
        "strategy": strategy,
        "problem_id": pid,
        "correct": correct,
        "confidence": conf,
        "n_tokens": 10,
        "latency_s": 0.5,
        "n_branches": 1,
        "n_pruned": 0,
        "chosen_path": 0,
        "paths": [path],
    }


def _records() -> list[dict]:
    return [
        _record("m", "greedy", "1", True, 0.9, [_step("correct", 0.9, 0.1), _step("correct", 0.8, 0.2)]),
        _record(
            "m",
            "greedy",
            "2",
            False,
            0.4,
            [_step("correct", 0.7, 0.3), _step("wrong", 0.2, 1.5), _step("wrong", 0.99, 0.0)],
        ),  # after first wrong: ignored
        _record("m", "greedy", "3", True, 0.6, [_step("wrong", 0.3, 1.0)]),
        # a group where every problem is right: calibration AUROC undefined
        _record("m", "cat", "1", True, 0.7, [_step("unknown", 0.5, 0.5)]),
    ]


def test_summarize_values_and_nulls() -> None:
    groups = {(g.model, g.strategy): g for g in report.summarize(_records())}
    g = groups[("m", "greedy")].metrics
    assert g["eval/accuracy"].value == pytest.approx(2 / 3)
    assert g["eval/step_reliability"].value == pytest.approx(0.5)  # problem 3 is right via a wrong step
    assert g["calib/auroc"].value == pytest.approx(1.0)
    # labelled steps: correct {0.9, 0.8, 0.7}, wrong {0.2, 0.3} (the 0.99 after the first wrong is dropped)
    assert g["step_auroc/entropy"].value == pytest.approx(1.0)
    assert g["step/entropy_correct"].value == pytest.approx(0.2)
    assert g["step/entropy_wrong"].value == pytest.approx(1.25)
    assert g["search/tokens_per_s"].value == pytest.approx(20.0)
    c = groups[("m", "cat")].metrics
    assert c["calib/auroc"].value is None and "one class" in c["calib/auroc"].reason
    assert c["step_auroc/entropy"].value is None
    assert c["eval/step_reliability"].value == 0.0  # its only step is unknown


def test_outputs_are_strict_json_markdown_and_pngs(tmp_path) -> None:
    groups = report.summarize(_records())
    text = json.dumps(report.summary_json(groups, {"task": "t"}), allow_nan=False)  # no NaN anywhere
    assert '"reason": "only one class' in text
    plots = write_plots(groups, _records(), tmp_path)
    assert {p.name for p in plots} == {
        "reliability_m.png",
        "risk_coverage_m.png",
        "accuracy_vs_tokens.png",
        "step_confidence_entropy.png",
    }
    for p in plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = report.render_markdown(groups, {"task": "t", "n": 3}, [p.name for p in plots])
    assert "| m | greedy | 3 | 0.667 |" in md and "n/a" in md and "## Undefined metrics" in md


def test_plots_with_no_data(tmp_path) -> None:
    plots = write_plots([], [], tmp_path)
    assert all(p.exists() for p in plots)


def test_ratios_to_baseline() -> None:
    recs = [
        _record("m", "sc", "1", True, 0.9, []),
        _record("m", "sc", "2", False, 0.9, []),
        {**_record("m", "cat", "1", True, 0.9, []), "n_tokens": 5},
        {**_record("m", "cat", "2", True, 0.9, []), "n_tokens": 5},
        _record("other", "cat", "1", True, 0.9, []),
    ]
    rows = {(r["model"], r["strategy"]): r for r in report.ratios_to_baseline(report.summarize(recs))}
    cat = rows[("m", "cat")]
    assert cat["eval/accuracy/ratio"] == pytest.approx(2.0)
    assert cat["search/tokens/ratio"] == pytest.approx(0.5)
    assert rows[("m", "sc")]["search/latency_s/ratio"] == pytest.approx(1.0)
    assert rows[("other", "cat")]["eval/accuracy/ratio"] is None
    assert "no sc run" in rows[("other", "cat")]["eval/accuracy/ratio_reason"]


def test_plot_names_for_model_paths(tmp_path) -> None:
    recs = [
        _record("/a/round1/model.gguf", "greedy", "1", True, 0.9, []),
        _record("/a/round2/model.gguf", "greedy", "1", True, 0.9, []),
    ]
    names = {p.name for p in write_plots(report.summarize(recs), recs, tmp_path)}
    assert {"reliability_model.png", "reliability_model_.png"} <= names


def test_round_folders_of_two_runs_get_distinct_plot_names() -> None:
    assert model_slug("runs/smollm2-arith/round-1") == "smollm2-arith_round-1"
    assert model_slug("runs/smollm2-arith-answer/round-1/") == "smollm2-arith-answer_round-1"
    assert model_slug("runs/a/round-2/policy-f32.gguf") == "a_round-2_policy-f32"
    assert model_slug("smollm2-135m") == "smollm2-135m" and model_slug("/m/q8.gguf") == "q8"
