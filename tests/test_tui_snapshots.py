"""SVG snapshots of the chat screen (Textual pinned to 8.2.8; the clock is injected and frozen).

Update after an intended visual change with:
    .venv/bin/python -m pytest tests/test_tui_snapshots.py --snapshot-update
Set CASPO_LITE_WRITE_DOCS_SVG=1 to also rewrite the README's screenshot, docs/tui-chat.svg.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from _tui_script import ScriptedSource

from caspo_lite.config import SearchSection
from caspo_lite.search.tree import ROOT
from caspo_lite.tui.app import CaspoApp, make_app
from caspo_lite.tui.settings import ChatSettings

SIZE = (120, 34)
DOCS_SVG = Path(__file__).resolve().parents[1] / "docs" / "tui-chat.svg"
MID_SEARCH = 22  # events delivered before the script pauses: a pruned branch and a live fork


class FrozenClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def chat_app(tmp_path: Path, source: ScriptedSource, clock: FrozenClock) -> CaspoApp:
    return make_app(
        ChatSettings(search=SearchSection(k=4)),
        source=source,
        mode="chat",
        clock=clock,
        wall_clock=lambda: 0.0,
        history_file=tmp_path / "h.jsonl",
        batch_interval_s=0.0,  # every event reaches the UI at once: the picture is deterministic
    )


async def until(pilot, condition, timeout_s: float = 10.0) -> None:  # noqa: ANN001
    """Pause until ``condition()`` holds (a loaded machine may need more than one pause)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not condition():
        assert loop.time() < end, "timed out waiting for the UI"
        await pilot.pause(0.02)


async def ask_until_held(pilot, source: ScriptedSource, clock: FrozenClock, question: str, n: int) -> None:  # noqa: ANN001
    screen = pilot.app.screen
    screen.query_one("#question").cursor_blink = False  # a blinking cursor is not deterministic
    await pilot.press(*question, "enter")
    await asyncio.get_running_loop().run_in_executor(None, source.held.wait, 5)
    await until(pilot, lambda: screen.state == "searching" and len(screen.events) == n)
    clock.t += 1.6  # the search has been running for 1.6 s
    screen.refresh_status()
    await pilot.pause()


def test_chat_mid_search(snap_compare, tmp_path: Path) -> None:  # noqa: ANN001
    clock, source = FrozenClock(), ScriptedSource(hold_after=MID_SEARCH)

    async def before(pilot) -> None:  # noqa: ANN001
        await ask_until_held(pilot, source, clock, "What is (3 + 4) * 2?", MID_SEARCH)
        screen = pilot.app.screen
        first = screen.tree_model.nodes[ROOT].children[0]
        screen.tree_widget.move_cursor(screen.tree_widget.tree_node(first))
        await until(pilot, lambda: screen.token_view.node_id == first)
        await pilot.pause()
        if os.environ.get("CASPO_LITE_WRITE_DOCS_SVG"):
            pilot.app.save_screenshot(DOCS_SVG.name, str(DOCS_SVG.parent))

    try:
        assert snap_compare(chat_app(tmp_path, source, clock), terminal_size=SIZE, run_before=before)
    finally:
        source.release.set()


def test_chat_answer_landed(snap_compare, tmp_path: Path) -> None:  # noqa: ANN001
    clock, source = FrozenClock(), ScriptedSource(hold_after=0)

    async def before(pilot) -> None:  # noqa: ANN001
        await ask_until_held(pilot, source, clock, "What is (3 + 4) * 2?", 0)
        source.release.set()
        await until(pilot, lambda: pilot.app.screen.state == "done")
        await pilot.pause()

    assert snap_compare(chat_app(tmp_path, source, clock), terminal_size=SIZE, run_before=before)


def test_settings_screen(snap_compare, tmp_path: Path) -> None:  # noqa: ANN001
    async def before(pilot) -> None:  # noqa: ANN001
        pilot.app.screen.query_one("#question").cursor_blink = False
        await pilot.press("f2")
        await until(pilot, lambda: pilot.app.screen.__class__.__name__ == "SettingsScreen")
        await pilot.pause()

    app = chat_app(tmp_path, ScriptedSource(), FrozenClock())
    assert snap_compare(app, terminal_size=SIZE, run_before=before)
