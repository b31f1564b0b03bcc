"""The export screen through Pilot, over a run folder made by the fake trainer.

The real `caspo-lite export` of a trained tiny-ci round (q8_0) and chatting with it are in
`test_tui_train.py::test_real_tiny_ci_start_close_resume_export_and_chat` (slow).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from _tui_train_helpers import FAKE_PREFIX, SIZE, app_on, run, until

from caspo_lite.tui.screens.chat import ChatScreen
from caspo_lite.tui.screens.export import QUANT_CHOICES, ExportScreen, event_line, export_command
from caspo_lite.tui.widgets.log_tail import LogTail


def fake_run(tmp_path: Path, rounds: int = 2) -> Path:
    out = tmp_path / "runs" / "demo"
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[model]\nname = "tiny"\n[task]\nn_train = 2\n[rounds]\nn = {rounds}\n')
    cmd = [
        *FAKE_PREFIX,
        "train",
        "--recipe",
        str(recipe),
        "--out",
        str(out),
        "--set",
        "fake.delay=0",
        "--set",
        "fake.dpo_delay=0",
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return out


def test_the_export_is_read_through_its_event_stream() -> None:
    cmd = export_command(("caspo-lite",), Path("r/round-1"), Path("o"), ["q8_0", "f16"])
    assert cmd == [
        "caspo-lite",
        "export",
        "r/round-1",
        "--out",
        "o",
        "--quant",
        "q8_0",
        "--quant",
        "f16",
        "--json",
    ]
    file = {"event": "file", "path": "/r/export/tiny-q8_0.gguf", "quant": "q8_0", "bytes": 3 * 2**20}
    assert event_line(file) == "wrote /r/export/tiny-q8_0.gguf (q8_0, 3.0 MB)"
    assert event_line({"event": "error", "code": 1, "message": "r: not a finished round"}).startswith(
        "error: r:"
    )
    assert event_line({"event": "started"}) is None


def test_export_two_quants_then_chat_with_the_first(tmp_path: Path) -> None:
    out = fake_run(tmp_path)

    async def go() -> None:
        app = app_on(tmp_path, "export")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, ExportScreen)
            select = screen.query_one("#round")
            assert select.value == str(out / "round-2")  # the newest finished round
            assert app.focused is select  # the keyboard starts on the round list
            quants = screen.query_one("#quants")
            lines = [quants.render_line(i).text for i in range(3)]  # ticks that read without colour
            assert lines[0].startswith("[x] q8_0") and lines[1].startswith("[ ] q4_k_m")
            quants.select("f16")
            assert screen.quants == ["q8_0", "f16"]
            await pilot.pause()
            assert quants.render_line(QUANT_CHOICES.index("f16")).text.startswith("[x] f16")
            assert screen.query_one("#export-out").value == str(out / "round-2" / "export")
            assert screen.query_one("#chat").disabled
            await pilot.press("f7")
            await until(pilot, lambda: screen.state == "done", what="the export")
            assert [p.name for p in screen.files] == ["demo-q8_0.gguf", "demo-f16.gguf"]
            assert all(p.is_file() for p in screen.files)
            assert screen.query_one("#export-progress").progress == 2
            assert "source sha256 0000" in screen.query_one("#export-log", LogTail).lines
            assert not screen.query_one("#chat").disabled
            await pilot.click("#chat")
            await until(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen.query("#tokens"))
            assert app.settings.model == str(screen.files[0])
            assert app.screen.status_bar.status.model == "demo-q8_0.gguf"

    run(go())


def test_a_failed_export_shows_the_cli_error(tmp_path: Path) -> None:
    out = fake_run(tmp_path, rounds=1)
    (out / "round-1" / "policy-f32.gguf").unlink()  # the fake CLI refuses a round without it

    async def go() -> None:
        app = app_on(tmp_path, "export")
        async with app.run_test(size=SIZE) as pilot:
            app.open_export(out / "round-1")  # as the train and runs screens ask for it
            await pilot.pause()
            screen = app.screen
            assert screen.query_one("#round").value == str(out / "round-1")
            await pilot.press("f7")
            await until(pilot, lambda: screen.state == "error", what="the failure")
            assert screen.error == f"{out / 'round-1'}: not a finished round"
            assert "error: " in str(screen.query_one("#export-result").render())
            assert screen.query_one("#chat").disabled and app.is_running

    run(go())
