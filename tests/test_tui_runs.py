"""Reading run folders (`caspo_lite.tui.runs`) and the runs screen, over folders this test writes by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _tui_train_helpers import SIZE, app_on, run, until

from caspo_lite.tui.runs import count_lines, eta, read_run, round_seconds, run_error, run_eta
from caspo_lite.tui.screens.export import ExportScreen
from caspo_lite.tui.screens.runs import RunsScreen, started_text
from caspo_lite.tui.screens.train import TrainScreen
from caspo_lite.tui.train_process import PID_FILE, live_pid, overrides, recipe_fields
from caspo_lite.tui.widgets.run_progress import run_text

CONFIG = "[task]\nn_train = 4\nn_dev = 2\n[dpo]\nmax_steps = 6\n[rounds]\nn = 2\n"
ALL = ("sample", "label", "pairs", "dpo", "export", "dev")


def make_round(
    run: Path, r: int, done: tuple[str, ...], samples: int = 4, dev_acc: float | None = None
) -> Path:
    rd = run / f"round-{r}"
    rd.mkdir(parents=True)
    (rd / "config.toml").write_text(CONFIG)
    t = time.time() - 100
    stages = {s: {"done": True, "finished_at": t + i, "time_s": 1.0} for i, s in enumerate(done)}
    if "dpo" in done:
        stages["dpo"]["reward_margin"] = 0.125 * r
    if "dev" in done:
        stages["dev"]["accuracy"] = dev_acc
    (rd / "ledger.json").write_text(json.dumps({"stages": stages}))
    (rd / "samples.jsonl").write_text("".join(f'{{"problem_id":"{i}"}}\n' for i in range(samples)))
    if "pairs" in done:
        (rd / "pairs_report.json").write_text(
            json.dumps({"pairs/total": 7 * r, "pairs/A": 2, "pairs/B": 7 * r - 2})
        )
    if "export" in done:
        (rd / "policy-f32.gguf").write_bytes(b"GGUF")
    return rd


def finished_run(root: Path, name: str = "done-run") -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text(CONFIG)
    rows = []
    for r, acc in ((1, 0.375), (2, 0.5)):
        make_round(run_dir, r, ALL, dev_acc=acc)
        rows.append(
            {"round": r, "eval/dev_accuracy": acc, "dpo/reward_margin": 0.125 * r, "pairs/total": 7 * r}
        )
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    return run_dir


def stopped_run(root: Path) -> Path:
    run_dir = root / "half-run"
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text(CONFIG)
    make_round(run_dir, 1, ("sample",), samples=4)
    (run_dir / "round-1" / "labels.jsonl").write_text('{"problem_id":"0"}\n{"problem_id":"1"}\n{"partial')
    (run_dir / "train.log").write_text(
        "round 1 label\nerror: interrupted; rerun the same command to resume\n"
    )
    (run_dir / PID_FILE).write_text(json.dumps({"pid": 2**22 + 17, "cmd": ["x"]}))  # no such process
    return run_dir


def test_a_finished_run_reads_as_done_with_pairs_margins_and_dev_accuracy(tmp_path: Path) -> None:
    state = read_run(finished_run(tmp_path))
    assert state.status == "done" and state.rounds_done == 2 and state.n_rounds == 2
    r2 = state.rounds[1]
    assert r2.finished and r2.pairs == {"total": 14, "A": 2, "B": 12}
    assert r2.dev_accuracy == 0.5 and r2.reward_margin == 0.25
    assert [p.name for p in r2.ggufs] == ["policy-f32.gguf"]
    assert [s.status for s in r2.stages] == ["done"] * 6
    assert round_seconds(r2) == 6.0  # 5 s between the first and last stamp + the first stage's 1 s
    assert run_eta(state.rounds, 5) == 18.0 and run_eta(state.rounds[:0], 5) is None


def test_a_stopped_run_shows_where_it_stopped(tmp_path: Path) -> None:
    state = read_run(stopped_run(tmp_path))
    assert state.pid is None and state.status == "stopped"
    assert state.error is None  # a Stop is not an error: the train screen says how to resume
    assert "stopped; press F9 to resume where it stopped" in run_text(state).plain
    stages = {s.name: s for s in state.rounds[0].stages}
    assert stages["sample"].status == "done"
    assert (stages["label"].status, stages["label"].done, stages["label"].total) == ("running", 2, 4)
    assert stages["dpo"].status == "pending"
    assert "‖ label 2/4" in run_text(state).plain  # no live process: a paused stage, no ETA


def test_a_crash_is_failed_and_a_live_pid_is_running(tmp_path: Path) -> None:
    run_dir = stopped_run(tmp_path)
    (run_dir / "train.log").write_text("Traceback (most recent call last):\nValueError: boom\n")
    assert read_run(run_dir).status == "failed" and read_run(run_dir).error == "ValueError: boom"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (run_dir / PID_FILE).write_text(json.dumps({"pid": proc.pid, "cmd": ["x"]}))
        assert live_pid(run_dir) == proc.pid and read_run(run_dir).status == "running"
    finally:
        proc.kill()
        proc.wait()
    assert live_pid(run_dir) is None


def test_helpers() -> None:
    assert eta(3, 12, 30.0) == 90.0 and eta(0, 12, 30.0) is None and eta(12, 12, 5.0) is None
    assert run_error(Path("/nonexistent")) == (None, False)
    assert overrides(
        {"rounds.n": "2", "model.name": "tiny"}, {"rounds.n": "3", "model.name": "smollm2-135m"}
    ) == [
        'model.name="smollm2-135m"',
        "rounds.n=3",
    ]
    assert overrides({"rounds.n": "2"}, {"rounds.n": " 2 "}) == []


def test_why_a_run_ended_comes_from_its_event_stream(tmp_path: Path) -> None:
    """The trainer's ``error`` event says why (and 130 means Stop); no prose is parsed."""
    events = tmp_path / "events.jsonl"

    def stream(*evs: dict) -> None:
        events.write_text("".join(json.dumps(e) + "\n" for e in evs))

    stream({"event": "started"}, {"event": "error", "code": 2, "kind": "ConfigError", "message": "bad beta"})
    assert run_error(tmp_path) == ("bad beta", False)
    stream({"event": "started"}, {"event": "error", "code": 130, "kind": "Interrupted", "message": "x"})
    assert run_error(tmp_path)[1] is True
    stream({"event": "error", "code": 2, "message": "old"}, {"event": "started"}, {"event": "finished"})
    assert run_error(tmp_path) == (None, False)  # a later run of the command finished
    with open(events, "a") as fh:
        fh.write('{"event": "error", "code": 2, "mess')  # still being written: not read yet
    assert run_error(tmp_path) == (None, False)
    (tmp_path / "train.log").write_text("Traceback (most recent call last):\n  ...\nRuntimeError: boom\n")
    assert run_error(tmp_path) == ("RuntimeError: boom", False)  # a crash writes no event


def test_recipe_fields_and_line_counting(tmp_path: Path) -> None:
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "tiny-ci.toml"
    fields = recipe_fields(recipe)
    assert fields["model.name"] == "tiny" and fields["rounds.n"] == "2" and fields["task.n_train"] == "12"
    f = tmp_path / "x.jsonl"
    f.write_text("a\nb\n")
    assert count_lines(f) == 2
    with open(f, "a") as fh:
        fh.write("c\npartial")
    assert count_lines(f) == 3
    f.write_text("a\n")  # truncated (a resume cut a partial line): counted again
    assert count_lines(f) == 1


def test_markup_in_a_run_name_is_shown_as_written(tmp_path: Path) -> None:
    state = read_run(finished_run(tmp_path, "[bold]x[red]"))
    assert run_text(state).plain.startswith("[bold]x[red]  done")


def test_runs_screen_lists_rounds_and_opens_export_and_train(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    done_dir = finished_run(runs)
    half = stopped_run(runs)
    os.utime(half, (time.time() - 1000, time.time() - 1000))  # older: listed second
    demo = runs / "demo" / "round-0"  # the demo's starting policy, which chat lists too
    demo.mkdir(parents=True)
    (demo / "policy-f32.gguf").write_bytes(b"GGUF")
    os.utime(runs / "demo", (time.time() - 2000, time.time() - 2000))  # oldest: listed last

    async def go() -> None:
        app = app_on(tmp_path, "runs")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, RunsScreen)
            rows = screen.table_rows()
            started = [row.pop(2) for row in rows]  # the date column: local time, checked apart
            assert started[0] == started_text(screen.runs[0]) and started[0][:2] == "20"
            assert started[1:3] == ["", started_text(screen.runs[1])]
            assert rows[0] == [
                "done-run",
                "done",
                "1",
                "6/6",
                "7 (2/5)",
                "+0.125",
                "0.375",
                "policy-f32.gguf",
            ]
            assert rows[1] == ["", "", "2", "6/6", "14 (2/12)", "+0.250", "0.500", "policy-f32.gguf"]
            assert rows[2] == ["half-run", "stopped", "1", "1/6 (label)", "—", "—", "—", "—"]
            assert rows[3] == ["demo", "new", "0", "starting policy", "—", "—", "—", "policy-f32.gguf"]
            assert started[3][:2] == "20"
            await pilot.press("down")
            await pilot.press("enter")  # export round 2 of done-run
            await until(pilot, lambda: isinstance(app.screen, ExportScreen))
            assert app.screen.query_one("#round").value == str(done_dir / "round-2")
            await pilot.press("escape")
            await pilot.press("r")  # home -> runs
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
            await pilot.press("down", "down")
            await pilot.press("f7")  # an unfinished round cannot be exported
            assert isinstance(app.screen, RunsScreen)
            await pilot.press("f6")  # open the stopped run in the train screen
            await until(pilot, lambda: isinstance(app.screen, TrainScreen))
            train = app.screen
            assert train.out_path == half
            await until(pilot, lambda: train.state == "stopped")

    run(go())


def test_dpo_log_file_wins_and_dedupes_resumed_steps(tmp_path) -> None:
    """The trainer's dpo_log.jsonl (appended, with redone steps after a resume) gives one row per step."""
    import json

    from caspo_lite.tui.runs import _dpo_log

    rows = [
        {"loss": 0.69, "rewards/margins": 0.0, "step": 1, "max_steps": 3},
        {"loss": 0.60, "rewards/margins": 0.1, "step": 2, "max_steps": 3},
        {"loss": 0.55, "rewards/margins": 0.2, "step": 3, "max_steps": 3},  # killed after this
        {"loss": 0.54, "rewards/margins": 0.3, "step": 3, "max_steps": 3},  # redone after resume
    ]
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"loss": 0.5'  # a line being written
    (tmp_path / "dpo_log.jsonl").write_text(text, encoding="utf-8")
    log, step, max_steps = _dpo_log(tmp_path)
    assert [r["step"] for r in log] == [1.0, 2.0, 3.0]
    assert log[-1]["rewards/margins"] == 0.3
    assert (step, max_steps) == (3, 3)


def test_the_run_eta_counts_down_while_a_round_runs(tmp_path: Path) -> None:
    run_dir = finished_run(tmp_path)  # two rounds of 6 s each
    rd = make_round(run_dir, 3, ("sample",))
    now = time.time()
    os.utime(rd / "config.toml", (now - 2, now - 2))  # round 3 (re)started 2 s ago
    state = read_run(run_dir)
    assert run_eta(state.rounds, 5, now=now) == 3 * 6.0 - 2  # rounds 3, 4, 5 left, 2 s of 3 spent
    os.utime(rd / "config.toml", (now - 7, now - 7))  # longer than a round takes: unknown
    assert run_eta(read_run(run_dir).rounds, 5, now=now) is None


def test_round_0_of_the_demo_is_listed_and_exports(tmp_path: Path) -> None:
    base = tmp_path / "runs" / "demo" / "round-0"
    base.mkdir(parents=True)
    (base / "policy-f32.gguf").write_bytes(b"GGUF")

    async def go() -> None:
        app = app_on(tmp_path, "runs")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, RunsScreen)
            (row,) = screen.table_rows()
            assert row[0] == "demo" and row[3:5] == ["0", "starting policy"] and row[-1] == "policy-f32.gguf"
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, ExportScreen))
            await until(pilot, lambda: app.screen.query_one("#round").value == str(base), timeout_s=5)

    run(go())


def test_an_early_stopped_run_is_done_by_its_record_not_its_log(tmp_path: Path) -> None:
    from caspo_lite.runs import read_early_stop, write_early_stop

    run_dir = finished_run(tmp_path)
    (run_dir / "config.toml").write_text(CONFIG.replace("n = 2", "n = 3"))  # asked for 3, ran 2
    (run_dir / "train.log").write_text("early stop after round 2: whatever the CLI printed\n")
    assert read_run(run_dir).status == "stopped"  # the log's prose is not read
    write_early_stop(run_dir, 2, "pair yield and dev accuracy stopped improving")
    assert read_early_stop(run_dir) == {
        "after_round": 2,
        "reason": "pair yield and dev accuracy stopped improving",
    }
    assert read_run(run_dir).status == "done"
