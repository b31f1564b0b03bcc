"""The eval loop on the scripted fake engine: outputs, resume after interruption, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from caspo_lite.cli import app
from caspo_lite.engines.fake import FLAT, SHARP, FakeEngine, ScriptPath
from caspo_lite.errors import ConfigError, DataError
from caspo_lite.eval.runner import RECORDS_FILE, EvalSpec, ProblemEvaluated, iter_eval, read_records, run_eval

STRATS = ["greedy", "sc", "bon", "deepconf", "cat"]


def _task_file(tmp_path: Path, n: int = 3) -> Path:
    f = tmp_path / "probs.jsonl"
    f.write_text(
        "".join(json.dumps({"question": f"What is 2 + {i}?", "answer": str(2 + i)}) + "\n" for i in range(n))
    )
    return f


class Loader:
    """Counts engine loads; every problem gets the same script (right for 2 + 0 only)."""

    def __init__(self) -> None:
        self.loads = 0

    def __call__(self, ref: str) -> FakeEngine:
        self.loads += 1
        good = [("First, 2 + 0 = 2", SHARP), ("\n", SHARP), ("Answer: 2", SHARP), ("\n", SHARP)]
        bad = [("First, 2 + 0 = 3", FLAT), ("\n", FLAT), ("Answer: 3", FLAT), ("\n", FLAT)]
        return FakeEngine([ScriptPath.of(good, weight=2.0), ScriptPath.of(bad)])


def label(steps: list[str], gold: str, task: object) -> list[str]:
    return ["wrong" if "= 3" in s or s.endswith(": 3") else "correct" for s in steps]


def _spec(tmp_path: Path, **kw: object) -> EvalSpec:
    base = dict(
        models=["fake"],
        task="jsonl",
        task_path=str(_task_file(tmp_path)),
        strategies=STRATS,
        out=tmp_path / "out",
        k=4,
        n=3,
    )
    base.update(kw)
    return EvalSpec(**base)  # type: ignore[arg-type]


def test_eval_writes_every_output(tmp_path: Path) -> None:
    summary = run_eval(_spec(tmp_path), engine_loader=Loader(), labeler=label)
    out = tmp_path / "out"
    for name in (
        "problems.jsonl",
        "summary.json",
        "report.md",
        "eval_config.json",
        "reliability_fake.png",
        "accuracy_vs_tokens.png",
        "step_confidence_entropy.png",
    ):
        assert (out / name).stat().st_size > 0, name
    records = read_records(out / RECORDS_FILE)
    assert len(records) == 3 * len(STRATS)
    rec = records[0]
    assert {"question", "paths", "confidence", "answer", "correct"} <= set(rec)
    step = rec["paths"][0]["steps"][0]
    assert set(step["signals"]) == {"entropy", "margin", "maxprob", "deepconf", "logprob"}
    assert step["label"] in ("correct", "wrong")
    # strict JSON (no NaN); exactly one of three problems is right for every strategy
    data = json.loads((out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert data == json.loads(json.dumps(summary))
    for g in data["results"]:
        assert g["metrics"]["eval/accuracy"]["value"] == pytest.approx(1 / 3)
        for m in g["metrics"].values():
            assert m["value"] is not None or m["reason"]
    assert "| fake | cat | 3 |" in (out / "report.md").read_text()


def test_resume_after_interruption_skips_done_and_drops_partial_line(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    loader = Loader()
    events = iter_eval(spec, engine_loader=loader, labeler=label)
    n_done = 0
    for ev in events:
        if isinstance(ev, ProblemEvaluated):
            n_done += 1
            if n_done == 4:
                break  # the interruption: generator closed mid-eval
    events.close()
    path = spec.out / RECORDS_FILE
    assert len(read_records(path)) == 4
    with open(path, "a") as fh:
        fh.write('{"model": "fake", "strategy": "sc", "probl')  # a write cut short by a crash
    assert len(read_records(path)) == 4

    seen = []
    run_eval(_spec(tmp_path), on_event=seen.append, engine_loader=loader, labeler=label)
    fresh = [e for e in seen if isinstance(e, ProblemEvaluated)]
    assert len(fresh) == 3 * len(STRATS) - 4  # only the unfinished ones ran
    keys = [(r["model"], r["strategy"], r["problem_id"]) for r in read_records(path)]
    assert len(keys) == len(set(keys)) == 3 * len(STRATS)
    assert path.read_bytes().endswith(b"\n")

    run_eval(_spec(tmp_path), engine_loader=loader, labeler=label)  # all done: no model load
    assert loader.loads == 2


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    run_eval(_spec(tmp_path, strategies=["greedy"]), engine_loader=Loader(), labeler=label)
    with pytest.raises(ConfigError, match="k=4 there vs 2 now"):
        run_eval(_spec(tmp_path, strategies=["greedy"], k=2), engine_loader=Loader(), labeler=label)


def test_corrupt_middle_line_names_it(tmp_path: Path) -> None:
    spec = _spec(tmp_path, strategies=["greedy"])
    run_eval(spec, engine_loader=Loader(), labeler=label)
    path = spec.out / RECORDS_FILE
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = "{oops\n"
    path.write_text("".join(lines))
    with pytest.raises(DataError, match=r"problems.jsonl:2: not a problem record"):
        read_records(path)


def test_bad_task_file_error_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1 + 1?", "answer": "2"}\n{"question": "2 + 2?"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: missing field 'answer'"):
        run_eval(_spec(tmp_path, task_path=str(bad)), engine_loader=Loader(), labeler=label)
    bad.write_text('{"question": "1 + 1?", "answer": "2"}\n\n{not json\n')
    result = CliRunner().invoke(
        app, ["eval", "-m", "x", "--task", "jsonl", "--data", str(bad), "--out", str(tmp_path / "cli")]
    )
    assert result.exit_code == 2
    assert "bad.jsonl:3: invalid JSON" in result.output
    assert "Traceback" not in result.output


def test_cli_rejects_unknown_strategy(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["eval", "-m", "x", "--strategies", "greedy,beam", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "unknown strategy beam" in result.output


def test_records_are_strict_json_and_missing_confidence_is_null(tmp_path: Path) -> None:
    from caspo_lite.eval.report import summarize
    from caspo_lite.eval.runner import append_record, open_records

    rec = {
        "model": "m",
        "strategy": "s",
        "problem_id": "1",
        "correct": True,
        "confidence": float("nan"),
        "n_tokens": 3,
        "latency_s": 0.1,
        "paths": [{"path_confidence": float("inf"), "correct": True}],
    }
    path = tmp_path / RECORDS_FILE
    with open_records(path) as fh:
        append_record(fh, rec)
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    (back,) = read_records(path)
    assert back["confidence"] is None
    (g,) = summarize([back])
    assert g.metrics["calib/ece"].value is None and "non-finite" in g.metrics["calib/ece"].reason
    assert g.metrics["eval/accuracy"].value == 1.0


def test_cat_vs_sc_bench_prints_ratios(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import runpy

    import caspo_lite.eval.runner as runner

    monkeypatch.setattr(runner, "_default_loader", lambda kind: Loader())
    bench = runpy.run_path(str(Path(__file__).resolve().parents[1] / "bench" / "cat_vs_sc.py"))
    args = ["--model", "fake", "--task", "jsonl", "--data", str(_task_file(tmp_path)), "--n", "3", "--k", "4"]
    assert bench["main"]([*args, "--strategies", "greedy,cat", "--out", str(tmp_path / "b"), "--json"]) == 0
    rows = {r["strategy"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert set(rows) == {"greedy", "cat", "sc"}  # sc is added as the baseline
    assert rows["sc"]["search/tokens/ratio"] == pytest.approx(1.0)
    assert rows["greedy"]["search/tokens/ratio"] < 1.0  # one path instead of K
    assert rows["cat"]["eval/accuracy/ratio"] == pytest.approx(1.0)


def test_cat_forked_paths_keep_their_ancestors_steps_counted_once(tmp_path: Path) -> None:
    from caspo_lite.config import SearchSection
    from caspo_lite.eval.report import labelled_steps

    def loader(ref: str) -> FakeEngine:
        pieces = ["We", " have", " 1 + 1 = 2", "\n", "So", " it", " is 2", "\n", "Answer:", " 2", "\n"]
        unsure = ["Hm", " x", " y", "\n", "Answer:", " 3", "\n"]
        return FakeEngine(
            [
                ScriptPath.of([(p, SHARP) for p in pieces]),
                ScriptPath.of([(unsure[0], SHARP)] + [(p, FLAT) for p in unsure[1:]]),
            ]
        )

    f = tmp_path / "one.jsonl"
    f.write_text(json.dumps({"question": "1 + 1?", "answer": "2"}) + "\n")
    # a beam of 2 under a budget of 6: the unsure root is pruned and the sure one forks into its slot
    no_stop = {"accept_threshold": 1.01, "consensus": 1.01}
    search = SearchSection(beam_width=2, prune_threshold=0.5, temperature=0.1, **no_stop)
    spec = _spec(tmp_path, task_path=str(f), strategies=["cat"], k=6, n=1, search=search, seed=0)
    run_eval(spec, engine_loader=loader, labeler=label)
    (rec,) = read_records(spec.out / RECORDS_FILE)
    forked = [p for p in rec["paths"] if p["parent"] is not None]
    assert forked  # CaT forked
    for p in forked:
        assert [s["text"] for s in p["steps"]] == ["We have 1 + 1 = 2", "So it is 2", "Answer: 2"]
        assert all(s["n_tokens"] > 0 for s in p["steps"])
    all_steps = [s for p in rec["paths"] for s in p["steps"] if s["label"] in ("correct", "wrong")]
    unique = {s["node"] for s in all_steps}
    assert len(all_steps) > len(unique)  # the shared first step appears under several paths ...
    assert len(labelled_steps([rec])) == len(unique)  # ... and counts once in the step metrics
    assert rec["counters"]["prunes"].get("confidence", 0) >= 1


def test_resume_names_a_changed_config_field(tmp_path: Path) -> None:
    from caspo_lite.config import SearchSection

    run_eval(_spec(tmp_path, strategies=["greedy"]), engine_loader=Loader(), labeler=label)
    with pytest.raises(ConfigError, match=r"\(search.max_tokens=256 there vs 64 now\); use a new --out"):
        run_eval(
            _spec(tmp_path, strategies=["greedy"], search=SearchSection(max_tokens=64)),
            engine_loader=Loader(),
        )
