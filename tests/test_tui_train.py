"""The train screen through Pilot: plan, start, progress, stop, resume, attach, errors.

The fast tests drive a fake `caspo-lite` (`_tui_fake_trainer.py`: same run-folder files,
paced, resumable) so they finish in seconds; one test runs the real CLI's `--dry-run` on a
bad recipe, and the slow one trains the real `tiny-ci` recipe end to end (start from the UI,
close mid-run, resume with `caspo-lite train`, export q8_0, chat on it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _tui_train_helpers import FAKE_PREFIX, SIZE, app_on, run, until

from caspo_lite.tui.runs import ProgressRates, read_run
from caspo_lite.tui.screens.train import TrainScreen, field_id
from caspo_lite.tui.train_process import (
    LOG_FILE,
    PID_FILE,
    live_pid,
    read_pidfile,
    start_train,
    stop_train,
    train_command,
)
from caspo_lite.tui.widgets.log_tail import LogTail
from caspo_lite.tui.widgets.metric_spark import MetricSpark
from caspo_lite.tui.widgets.run_progress import RunProgress

REPO = Path(__file__).resolve().parents[1]


def screen_of(app) -> TrainScreen:  # noqa: ANN001
    screen = app.screen
    assert isinstance(screen, TrainScreen)
    return screen


def progress_text(screen: TrainScreen) -> str:
    return screen.query_one("#progress", RunProgress).plain


def test_start_shows_the_plan_then_runs_every_stage_to_done(tmp_path: Path) -> None:
    async def go() -> None:
        app = app_on(tmp_path, "train")
        async with app.run_test(size=SIZE) as pilot:
            screen = screen_of(app)
            await until(pilot, lambda: screen.recipe_path is not None, what="the recipe list")
            out = tmp_path / "runs" / "fake"
            assert screen.out_path == out
            assert screen.query_one(f"#{field_id('rounds.n')}").value == "1"
            screen.query_one(f"#{field_id('rounds.n')}").value = "2"  # edit a copy's main field
            assert screen.sets() == ["rounds.n=2"]
            await pilot.click("#start")
            await until(pilot, lambda: screen.plan is not None, what="the plan")
            assert "memory estimate (GB)" in str(screen.query_one("#plan-view").render())
            await until(pilot, lambda: screen.state == "done", what="the run to finish")
            text = progress_text(screen)
            assert "fake  done  rounds 2/2" in text
            assert "round 2  ✓ sample 4/4  ✓ label 4/4  ✓ pairs  ✓ dpo 4/4  ✓ export  ✓ dev 2/2" in text
            assert "pairs 5 (A 1, B 4) · final margin +0.800 · dev accuracy 0.500" in text
            assert screen.query_one("#spark-round-margin", MetricSpark).values == [0.4, 0.8]
            assert screen.query_one("#spark-dev", MetricSpark).values == [0.25, 0.5]
            assert "--set rounds.n=2" in (out / LOG_FILE).read_text()
            # the fake trainer warns as TRL does; the UI's trainer process filters it
            assert "is_gradient_checkpointing" not in (out / LOG_FILE).read_text()
            assert screen.query_one("#stop").disabled and not screen.query_one("#start").disabled

    run(go())


def test_a_bad_recipe_shows_its_error_and_starts_nothing(tmp_path: Path) -> None:
    async def go() -> None:
        app = app_on(tmp_path, "train")
        bad = tmp_path / "bad.toml"
        bad.write_text('bad = true\n[model]\nname = "tiny"\n[task]\nn_train = 2\n[rounds]\nn = 1\n')
        async with app.run_test(size=SIZE) as pilot:
            screen = screen_of(app)
            screen.query_one("#recipe-path").value = str(bad)
            screen.query_one("#out").value = str(tmp_path / "runs" / "bad")
            await pilot.press("f7")
            await until(pilot, lambda: screen.state == "error", what="the error")
            assert screen.error == f"{bad}: [dpo] beta = -1: must be > 0; set e.g. beta = 0.1"
            assert "error: " + screen.error in str(screen.query_one("#plan-view").render())
            assert not (tmp_path / "runs" / "bad" / PID_FILE).exists()
            await pilot.pause(0.3)  # polls do not clear the error
            assert screen.state == "error" and app.is_running

    run(go())


def test_the_real_cli_dry_run_error_is_shown(tmp_path: Path) -> None:
    """`caspo-lite train --dry-run` itself rejects the recipe; its one line lands in the UI."""

    async def go() -> None:
        app = app_on(tmp_path, "train", prefix=None)
        bad = tmp_path / "typo.toml"
        bad.write_text('[model]\nname = "tiny"\n[dpo]\nbetta = 0.1\n')
        async with app.run_test(size=SIZE) as pilot:
            screen = screen_of(app)
            screen.query_one("#recipe-path").value = str(bad)
            screen.query_one("#out").value = str(tmp_path / "runs" / "typo")
            await pilot.click("#plan")
            await until(pilot, lambda: screen.state == "error", timeout_s=120, what="the dry run")
            assert "betta" in (screen.error or ""), screen.error
            assert not (tmp_path / "runs" / "typo").exists()

    run(go())


def test_closing_the_ui_keeps_the_run_and_reopening_attaches_stops_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "fake"
    out.mkdir(parents=True)
    (out / ".hold").touch()  # the fake trainer waits before DPO while this exists

    async def first() -> int:
        app = app_on(tmp_path, "train")
        async with app.run_test(size=SIZE) as pilot:
            screen = screen_of(app)
            await until(pilot, lambda: screen.recipe_path is not None)
            screen.query_one(f"#{field_id('rounds.n')}").value = "2"
            await pilot.click("#start")
            await until(pilot, lambda: screen.run_state is not None and screen.run_state.status == "running")
            await until(pilot, lambda: "✓ pairs" in progress_text(screen), what="pairs done")
            assert "▶ dpo" in progress_text(screen)
            return live_pid(out) or 0

    pid = asyncio_run(first())
    assert pid > 0 and live_pid(out) == pid  # the app is gone, the trainer is not

    async def second() -> None:
        app = app_on(tmp_path, "train")
        async with app.run_test(size=SIZE) as pilot:
            app.open_train(out)  # as the runs screen asks for it
            await pilot.pause()
            screen = screen_of(app)
            await until(pilot, lambda: screen.state == "running", what="attaching")
            assert screen.out_path == out and f"pid {pid}" in progress_text(screen)
            assert screen.recipe_path == tmp_path / "recipes" / "fake.toml" and screen.sets() == [
                "rounds.n=2"
            ]
            await pilot.press("f8")  # stop: SIGINT
            await until(pilot, lambda: screen.state == "stopped", what="the stop")
            assert "‖ dpo" in progress_text(screen)
            assert "interrupted; rerun the same command" in (out / LOG_FILE).read_text()
            assert "stopped; press F9 to resume" in progress_text(screen)  # the UI's words
            shown = screen.query_one("#log", LogTail).lines
            assert shown[-1] == "stopped; press F9 to resume" and not any("rerun" in ln for ln in shown)
            await pilot.press("f9")  # resume: the recorded command again
            await until(pilot, lambda: screen.state == "running", what="the resume")
            assert live_pid(out) not in (None, pid)
            (out / ".hold").unlink()
            await until(pilot, lambda: screen.state == "done", what="the resumed run")
            log = (out / LOG_FILE).read_text()
            assert "round 1 sample: already done, skipped" in log and "round 1 label: already done" in log
            losses = screen.query_one("#spark-loss", MetricSpark).values  # dpo_log.jsonl outlives checkpoints
            assert [round(v, 2) for v in losses] == [0.6, 0.5, 0.4, 0.3]  # round 2's whole curve

    asyncio_run(second())
    assert read_run(out).status == "done" and read_run(out).rounds_done == 2


def start_held_run(tmp_path: Path, name: str, *sets: str) -> Path:
    """A fake run started outside the app, waiting before DPO (``.hold``) until the test lets go."""
    out = tmp_path / "runs" / name
    out.mkdir(parents=True)
    (out / ".hold").touch()
    recipe = tmp_path / "recipes" / "fake.toml"
    start_train(train_command(recipe, out, list(sets), FAKE_PREFIX), out)
    return out


def stop_and_wait(out: Path) -> None:
    stop_train(out)
    for _ in range(200):
        if live_pid(out) is None:
            return
        import time

        time.sleep(0.05)


def test_focus_on_open_and_a_folder_change_clears_the_old_runs_panels(tmp_path: Path) -> None:
    async def go() -> None:
        app = app_on(tmp_path, "train")
        async with app.run_test(size=SIZE) as pilot:
            screen = screen_of(app)
            assert app.focused is screen.query_one("#recipe")  # Enter opens the recipe list
            await pilot.press("f7")
            await until(pilot, lambda: screen.state == "done", what="the run to finish")
            assert screen.query_one("#spark-loss", MetricSpark).values
            assert screen.query_one("#log", LogTail).lines and screen.plan is not None
            screen.query_one("#out").value = str(tmp_path / "runs" / "no-such-run")
            await pilot.pause(0.3)  # a few polls
            assert progress_text(screen) == "" and screen.run_state is None
            for spark in screen.query(MetricSpark):
                assert spark.values == [], spark.label
            assert screen.query_one("#log", LogTail).lines == []
            assert screen.plan is None and "Pick a recipe" in str(screen.query_one("#plan-view").render())
            assert screen.state == "idle"

    run(go())


def test_typing_a_live_runs_folder_fills_the_form_from_that_run(tmp_path: Path) -> None:
    app = app_on(tmp_path, "train")  # writes the recipe the run below is started from
    out = start_held_run(tmp_path, "other", "rounds.n=3", "task.n_train=6")
    try:

        async def go() -> None:
            async with app.run_test(size=SIZE) as pilot:
                screen = screen_of(app)
                await until(pilot, lambda: screen.recipe_path is not None)
                assert screen.query_one(f"#{field_id('rounds.n')}").value == "1"  # the recipe's
                await until(pilot, lambda: (out / "config.toml").exists(), what="the run's config")
                out_field = screen.query_one("#out")
                out_field.focus()
                out_field.value = ""
                await pilot.press(*f"{out}2", "tab")  # typed key by key, through the prefix `out`
                await pilot.pause(0.3)
                field = screen.query_one(f"#{field_id('rounds.n')}")
                assert field.value == "1" and screen.state == "idle"  # no run there: the form stays
                out_field.focus()
                await pilot.press("end", "backspace")
                await until(pilot, lambda: screen.state == "running", what="the panels attaching")
                await pilot.press("tab")  # leaving the field fills the form from the run
                await pilot.pause()
                assert field.value == "3" and screen.query_one(f"#{field_id('task.n_train')}").value == "6"
                assert sorted(screen.sets()) == ["rounds.n=3", "task.n_train=6"]
                assert "rounds 0/3" in progress_text(screen)
                field.focus()  # right away, the user edits a field: no later poll blanks it
                await pilot.press("end", "backspace", "4")
                await pilot.pause(0.5)
                assert field.value == "4"

        run(go())
    finally:
        stop_and_wait(out)


def test_right_after_start_the_totals_are_the_plans(tmp_path: Path) -> None:
    """Before the trainer writes its config.toml, the header counts rounds from the dry-run plan."""

    async def go() -> None:
        app = app_on(tmp_path, "train")
        async with app.run_test(size=SIZE) as pilot:
            screen = screen_of(app)
            out = tmp_path / "runs" / "starting"
            out.mkdir(parents=True)
            sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
            try:
                (out / PID_FILE).write_text(json.dumps({"pid": sleeper.pid, "cmd": ["x"]}))
                screen.query_one("#out").value = str(out)
                await pilot.pause()
                screen.plan, screen.plan_out = {"rounds": 3}, out
                screen.poll()
                assert "starting  running  rounds 0/3" in progress_text(screen)
            finally:
                sleeper.kill()
                sleeper.wait()

    run(go())


def test_a_stage_eta_needs_progress_seen_since_the_resume() -> None:
    from caspo_lite.tui.runs import RoundState, RunState, StageState

    def at(done: int) -> RunState:
        stage = StageState("sample", "running", done, 80, eta_s=0.0)
        rd = RoundState(1, Path("r/round-1"), (stage,), None, {}, None)
        return RunState(Path("r"), {}, (rd,), (), 1, 123, "running")

    rates = ProgressRates()
    assert rates.apply(at(60), now=100.0).rounds[0].stages[0].eta_s is None  # 60 done before we looked
    assert rates.apply(at(60), now=110.0).rounds[0].stages[0].eta_s is None  # no progress seen yet
    assert rates.apply(at(70), now=120.0).rounds[0].stages[0].eta_s == 20.0  # 10 in 20 s, 10 to go


def test_one_point_is_not_drawn_as_a_full_width_curve() -> None:
    from textual.app import App
    from textual.widgets import Sparkline

    class One(App[None]):
        def compose(self):  # noqa: ANN202
            yield MetricSpark("dev accuracy per round", id="spark")

    async def go() -> None:
        app = One()
        async with app.run_test(size=SIZE) as pilot:
            spark = app.query_one("#spark", MetricSpark)
            spark.show([0.5])
            await pilot.pause()
            assert spark.query_one(Sparkline).size.width == 1
            spark.show([0.5, 0.7])
            await pilot.pause()
            assert spark.query_one(Sparkline).size.width > 20

    run(go())


def asyncio_run(coro):  # noqa: ANN001, ANN201
    import asyncio

    return asyncio.run(coro)


@pytest.mark.slow
def test_real_tiny_ci_start_close_resume_export_and_chat(tmp_path: Path) -> None:
    """The real `caspo-lite train` on tiny-ci (1 round): UI start, app closed mid-run, the trainer
    killed, `caspo-lite train` resumes it (killed again at DPO step 3 by the trainer's fault hook),
    the UI resumes it to done, exports q8_0 and chats with the new GGUF."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from caspo_lite.tui.screens.chat import ChatScreen
    from caspo_lite.tui.screens.export import ExportScreen

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "tiny-ci.toml").write_text((REPO / "recipes" / "tiny-ci.toml").read_text())
    out = tmp_path / "runs" / "tiny-ci"

    async def first() -> None:
        app = app_on(tmp_path, "train", prefix=None)
        async with app.run_test(size=SIZE) as pilot:
            screen = screen_of(app)
            await until(pilot, lambda: screen.recipe_path is not None)
            screen.query_one(f"#{field_id('rounds.n')}").value = "1"
            await pilot.click("#start")
            await until(pilot, lambda: screen.state == "running", timeout_s=180, what="plan + start")
            assert screen.plan is not None and screen.plan["rounds"] == 1
            await until(
                pilot, lambda: "✓ sample 12/12" in progress_text(screen), timeout_s=240, what="sampling"
            )

    asyncio_run(first())
    info = read_pidfile(out)
    assert info is not None and live_pid(out) == info["pid"]  # closing the UI left it running
    os.kill(info["pid"], signal.SIGKILL)
    cmd = info["cmd"]
    assert cmd[:4] == [sys.executable, "-m", "caspo_lite.cli", "train"] and cmd[-1] == "--json"
    env = {**os.environ, "CASPO_LITE_FAULT": "dpo:3"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # the protocol the UI reads
    assert {"event": "stage_skipped", "round": 1, "stage": "sample"}.items() <= next(
        e for e in events if e["event"] == "stage_skipped"
    ).items()
    ledger = json.loads((out / "round-1" / "ledger.json").read_text())["stages"]
    assert {"sample", "label", "pairs"} <= set(ledger) and "dpo" not in ledger
    assert (out / "round-1" / "dpo" / "checkpoint-2").is_dir()

    async def second() -> None:
        from caspo_lite.config import SearchSection
        from caspo_lite.tui.settings import ChatSettings

        small = ChatSettings(search=SearchSection(k=2, max_tokens=32, warmup=2, seed=0))
        app = app_on(tmp_path, "train", prefix=None, settings=small)
        async with app.run_test(size=SIZE) as pilot:
            app.open_train(out)
            await pilot.pause()
            screen = screen_of(app)
            await until(pilot, lambda: screen.state == "stopped", what="the stopped run")
            assert "‖ dpo" in progress_text(screen)
            await pilot.press("f9")
            await until(pilot, lambda: screen.state == "done", timeout_s=400, what="the resumed run")
            assert "✓ dpo" in progress_text(screen) and "✓ dev 8/8" in progress_text(screen)
            await pilot.press("f10")  # export the finished round
            await until(pilot, lambda: isinstance(app.screen, ExportScreen))
            export = app.screen
            assert export.query_one("#round").value == str(out / "round-1")
            await pilot.click("#export")
            await until(pilot, lambda: export.state in ("done", "error"), timeout_s=300, what="the export")
            assert export.state == "done", export.error
            gguf = export.files[0]
            assert gguf.name.endswith("-q8_0.gguf") and gguf.stat().st_size > 0
            await pilot.click("#chat")
            # the screen switch lands before its widgets are mounted: wait for the token view too
            await until(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.query("#tokens"))
            chat = app.screen
            assert app.settings.model == str(gguf) and chat.status_bar.status.model == gguf.name
            chat.ask("What is 2 + 3?")
            await app.workers.wait_for_complete()
            await until(pilot, lambda: not chat.busy, timeout_s=120, what="the chat answer")
            assert chat.state == "done", chat.conversation.texts()
            assert chat.tree_model.n_tokens > 0

    asyncio_run(second())
