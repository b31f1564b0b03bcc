"""The chat screen driven through Pilot: keys in, widget state out.

Most tests replay a scripted CaT-shaped stream (`_tui_script`); two run the library's real
strategies: CaT over the scripted fake engine, and CaT on the tiny GGUF through llama.cpp.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from _tui_script import MARKUP_STEP, ScriptedSource

from caspo_lite.config import SearchSection, StepsSection
from caspo_lite.engines.fake import FLAT, SHARP, FakeEngine, ScriptPath
from caspo_lite.search.tree import ROOT
from caspo_lite.tui.app import CaspoApp, make_app
from caspo_lite.tui.history import load_turns
from caspo_lite.tui.inference import LibrarySource
from caspo_lite.tui.screens.chat import ChatScreen
from caspo_lite.tui.screens.settings import SettingsScreen
from caspo_lite.tui.settings import ChatSettings, load_settings

SIZE = (120, 36)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def app_for(source, tmp_path: Path, settings: ChatSettings | None = None, **kw) -> CaspoApp:  # noqa: ANN001
    return make_app(
        settings,
        source=source,
        mode="chat",
        history_file=tmp_path / "history.jsonl",
        export_dir=tmp_path / "exports",
        **kw,
    )


async def ask(pilot, question: str) -> ChatScreen:  # noqa: ANN001
    await pilot.press(*question, "enter")
    return pilot.app.screen


async def until(pilot, condition, timeout_s: float = 10.0) -> None:  # noqa: ANN001
    """Pause until ``condition()`` holds (a loaded machine may need more than one pause)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not condition():
        assert loop.time() < end, "timed out waiting for the UI"
        await pilot.pause(0.02)


async def settle(pilot, timeout_s: float = 60.0) -> None:  # noqa: ANN001
    """Wait for the worker, then until the screen has handled its last message."""
    await pilot.app.workers.wait_for_complete()
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while pilot.app.screen.busy if isinstance(pilot.app.screen, ChatScreen) else False:
        assert loop.time() < end, "the search did not end"
        await pilot.pause(0.02)
    await pilot.pause()


def labels(screen: ChatScreen) -> dict[int, str]:
    tw = screen.tree_widget
    return {nid: tw.label_text(nid) for nid in screen.tree_model.nodes if tw.tree_node(nid) is not None}


def run(coro) -> None:  # noqa: ANN001
    asyncio.run(coro)


def test_nodes_appear_pruned_is_marked_and_the_answer_lands(tmp_path: Path) -> None:
    async def go() -> None:
        clock, source = Clock(), ScriptedSource(hold_after=0)
        app = app_for(source, tmp_path, ChatSettings(search=SearchSection(k=3)), clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            clock.t = 10.0
            screen = await ask(pilot, "what is (3+4)*2")
            await asyncio.get_running_loop().run_in_executor(None, source.held.wait, 5)
            await until(pilot, lambda: screen.state == "searching")  # the clock starts here
            clock.t = 12.0  # the search takes exactly 2 s on the injected clock
            source.release.set()
            await settle(pilot)
            assert screen.state == "done"
            shown = labels(screen)
            assert len(shown) == len(screen.tree_model.nodes) == 8  # root + 7 steps, all drawn
            assert sum("pruned 0.25 < 0.40" in text for text in shown.values()) == 1
            starred = [nid for nid, text in shown.items() if text.startswith("★")]
            assert len(starred) == 3  # the winning path's three steps
            conv = screen.conversation.texts()
            assert (
                conv[0] == "what is (3+4)*2"
                and "**Answer: 14** · confidence 0.95 (uncalibrated) · cat" in conv[1]
            )
            status = screen.status_bar.status
            assert (status.tokens, status.live, status.elapsed_s) == (14, 0, 2.0)
            assert status.tokens_per_s == 7.0 and status.budget == 3 * 256
            assert status.saved_vs_sc == 3 * (24 + 20 + 16) // 3 - 14  # K x mean finished length - used
            # the winning leaf is selected: its tokens are on display
            assert "branch 3 · step 2" in screen.token_view.plain
        (turn,) = load_turns(tmp_path / "history.jsonl")
        assert turn.answer is not None and turn.answer.answer == "14" and not turn.cancelled

    run(go())


def test_escape_cancels_a_running_search_and_the_ui_stays_responsive(tmp_path: Path) -> None:
    async def go() -> None:
        source = ScriptedSource(hold_after=12)
        app = app_for(source, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = await ask(pilot, "slow one")
            await asyncio.get_running_loop().run_in_executor(None, source.held.wait, 5)
            await until(pilot, lambda: len(screen.tree_model.nodes) > 1)  # batches arrived
            assert screen.state == "searching"
            await pilot.press("f3")  # the UI answers keys while the worker is blocked
            await pilot.pause()
            assert app.screen.__class__.__name__ == "HistoryScreen"
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is screen
            await pilot.press("escape")
            assert screen.state == "cancelling"
            source.release.set()
            await settle(pilot)
            assert screen.state == "cancelled" and screen.tree_model.answer is None
            assert screen.conversation.texts()[-1] == "Search cancelled."
            assert len(screen.events) < 20  # it stopped early
        (turn,) = load_turns(tmp_path / "history.jsonl")
        assert turn.cancelled and turn.answer is None

    run(go())


def test_a_settings_change_alters_the_next_search(tmp_path: Path) -> None:
    async def go() -> None:
        source = ScriptedSource()
        app = app_for(source, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = await ask(pilot, "first")
            await settle(pilot)
            assert len(screen.tree_model.nodes[ROOT].children) == 8  # default K = 8
            await pilot.press("f2")
            await pilot.pause()
            settings_screen = app.screen
            assert isinstance(settings_screen, SettingsScreen)
            k_field = settings_screen.query_one("#f-k")
            k_field.value = "3"
            settings_screen.query_one("#strategy").value = "sc"
            settings_screen.query_one("#f-temperature").value = "0.3"
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.screen is screen
            assert (app.settings.search.k, app.settings.search.strategy) == (3, "sc")
            await ask(pilot, "second")
            await settle(pilot)
            question, used = source.asked[-1]
            assert question == "second" and (
                used.search.k,
                used.search.strategy,
                used.search.temperature,
            ) == (
                3,
                "sc",
                0.3,
            )
            assert len(screen.tree_model.nodes[ROOT].children) == 3
            assert screen.status_bar.status.strategy == "sc"
            assert source.asked[0][1].search.k == 8  # the first search kept its own copy

    run(go())


def test_a_bad_setting_keeps_the_form_open_with_the_reason(tmp_path: Path) -> None:
    async def go() -> None:
        app = app_for(ScriptedSource(), tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("f2")
            await pilot.pause()
            form = app.screen
            form.query_one("#f-k").value = "many"
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.screen is form
            assert "settings.search.k: 'many' is not a whole number" in str(
                form.query_one("#settings-error").content
            )
            assert app.settings.search.k == 8

    run(go())


def test_markup_in_a_step_shows_literally_everywhere(tmp_path: Path) -> None:
    async def go() -> None:
        app = app_for(ScriptedSource(markup=True), tmp_path, ChatSettings(search=SearchSection(k=2)))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = await ask(pilot, "is [b]this[/b] bold?")
            await settle(pilot)
            first = screen.tree_model.nodes[ROOT].children[0]
            assert "Let x = [bold]3[/] and [red]y[/red] = 4" in screen.tree_widget.label_text(first)
            screen.tree_widget.move_cursor(screen.tree_widget.tree_node(first))
            await pilot.pause()
            assert MARKUP_STEP in screen.token_view.plain
            assert screen.conversation.texts()[0] == "is [b]this[/b] bold?"
            assert screen.tree_widget.label_text(ROOT) == "? is [b]this[/b] bold?"

    run(go())


def test_a_failing_search_is_reported_not_fatal(tmp_path: Path) -> None:
    async def go() -> None:
        source = ScriptedSource(fail="engine exploded")
        app = app_for(source, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = await ask(pilot, "boom")
            await settle(pilot)
            assert screen.state == "error"
            assert screen.conversation.texts()[-1] == "Search failed: RuntimeError: engine exploded"
            await ask(pilot, "again")  # still usable
            await settle(pilot)
            assert [q for q, _ in source.asked] == ["boom", "again"]
            assert screen.conversation.texts()[-2:] == [
                "again",
                "Search failed: RuntimeError: engine exploded",
            ]

    run(go())


def test_history_reloads_a_conversation_and_export_writes_the_tree(tmp_path: Path) -> None:
    async def go() -> None:
        app = app_for(ScriptedSource(), tmp_path, ChatSettings(search=SearchSection(k=3)))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = await ask(pilot, "one")
            await settle(pilot)
            await ask(pilot, "two")
            await settle(pilot)
            await pilot.press("f4")
            await pilot.pause()
            exported = sorted(p.suffix for p in (tmp_path / "exports").iterdir())
            assert exported == [".json", ".md"]
            await pilot.press("f5")
            await pilot.pause()
            assert screen.conversation.texts() == [] and screen.tree_model.question == ""
            await pilot.press("f3")
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is screen
            texts = screen.conversation.texts()
            assert [texts[0], texts[2]] == ["one", "two"] and "**Answer: 14**" in texts[3]
            assert screen.tree_model.question == "two" and len(labels(screen)) == 8

    run(go())


def test_home_screen_opens_chat(tmp_path: Path) -> None:
    async def go() -> None:
        app = make_app(source=ScriptedSource(), history_file=tmp_path / "h.jsonl")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert app.current_mode == "home"
            await pilot.press("enter")
            await pilot.pause()
            assert app.current_mode == "chat" and isinstance(app.screen, ChatScreen)

    run(go())


def fake_cat_engine() -> FakeEngine:
    sure = [
        ("3 + 4 = 7", SHARP),
        ("\n", SHARP),
        ("7 * 2 = 14", SHARP),
        ("\n", SHARP),
        ("Answer: 14", SHARP),
        ("\n", SHARP),
    ]
    unsure = [
        ("3 * 4 = 12", FLAT),
        ("\n", FLAT),
        ("12 * 2 = 24", FLAT),
        ("\n", FLAT),
        ("Answer: 24", FLAT),
        ("\n", SHARP),
    ]
    return FakeEngine([ScriptPath.of(sure), ScriptPath.of(unsure)])


def test_library_cat_on_the_fake_engine_through_the_app(tmp_path: Path) -> None:
    """The real CaT strategy (real events, real batching) on the scripted fake engine."""

    async def go() -> None:
        settings = ChatSettings(
            search=SearchSection(k=4, temperature=1.0, top_p=1.0, warmup=2, seed=1, max_tokens=32),
            steps=StepsSection(min_step_tokens=1),
        )
        engine = fake_cat_engine()
        source = LibrarySource(loader=lambda ref: engine)
        app = app_for(source, tmp_path, settings)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = await ask(pilot, "what is (3+4)*2")
            await settle(pilot)
            tree = screen.tree_model
            assert screen.state == "done" and tree.answer is not None
            assert tree.answer.strategy == "cat" and tree.answer.answer in {"14", "24"}
            assert len(labels(screen)) == len(tree.nodes) > 3
            assert any(n.winner for n in tree.nodes.values() if n.id != ROOT)
            assert tree.n_tokens == tree.answer.n_tokens  # every token event reached the UI

    run(go())


@pytest.mark.slow
def test_real_cat_on_the_tiny_gguf(tmp_path: Path) -> None:
    """CaT on the tiny Llama through llama.cpp: nodes, a chosen answer, the status bar."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from caspo_lite.tiny import ensure_tiny

    gguf = ensure_tiny().gguf
    settings = ChatSettings(model=str(gguf), search=SearchSection(k=4, max_tokens=48, warmup=2, seed=0))

    async def go() -> None:
        app = app_for(None, tmp_path, settings)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = await ask(pilot, "What is 2 + 3?")
            await settle(pilot)
            tree = screen.tree_model
            assert screen.state == "done", screen.conversation.texts()
            assert tree.answer is not None and tree.answer.strategy == "cat"
            assert len(labels(screen)) == len(tree.nodes) > 1
            assert tree.n_tokens == tree.answer.n_tokens > 0
            assert screen.status_bar.status.tokens == tree.n_tokens
            assert screen.status_bar.status.model == gguf.name

    run(go())


def test_escape_goes_home_when_idle_and_the_palette_reaches_every_screen(tmp_path: Path) -> None:
    """Chat is no dead end: idle Esc goes home (the footer says so), the palette opens any screen."""

    async def go() -> None:
        source = ScriptedSource(hold_after=12)
        app = app_for(source, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            keys = {b.binding.key: b.binding.description for b in screen.active_bindings.values()}
            assert keys["escape"] == "Home"
            await ask(pilot, "slow one")
            await asyncio.get_running_loop().run_in_executor(None, source.held.wait, 5)
            await until(pilot, lambda: screen.state == "searching")
            keys = {b.binding.key: b.binding.description for b in screen.active_bindings.values()}
            assert keys["escape"] == "Cancel search"  # while searching Esc cancels, and stays put
            await pilot.press("escape")
            source.release.set()
            await settle(pilot)
            assert app.current_mode == "chat" and screen.state == "cancelled"
            await pilot.press("escape")  # idle again: home
            await until(pilot, lambda: app.current_mode == "home")
            titles = [c.title for c in app.get_system_commands(app.screen)]
            for title in ("Go to Chat", "Go to Train", "Go to Export", "Go to Runs"):
                assert title in titles
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"go to runs", "enter")
            await until(pilot, lambda: app.current_mode == "runs")

    run(go())


def test_cancel_leaves_no_live_node_and_no_writing_cursor(tmp_path: Path) -> None:
    async def go() -> None:
        source = ScriptedSource(hold_after=15)  # mid-step: branch 0 has written a token of step 1
        app = app_for(source, tmp_path, ChatSettings(search=SearchSection(k=3)), batch_interval_s=0.0)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = await ask(pilot, "slow one")
            await asyncio.get_running_loop().run_in_executor(None, source.held.wait, 5)
            await until(pilot, lambda: len(screen.events) == 15)
            assert screen.tree_model.n_live() > 0 and any("▍" in t for t in labels(screen).values())
            await pilot.press("escape")
            source.release.set()
            await settle(pilot)
            assert screen.state == "cancelled"
            assert screen.tree_model.n_live() == 0 and screen.status_bar.status.live == 0
            shown = labels(screen)
            assert not any("▍" in text for text in shown.values())
            assert any("■ stopped" in text for text in shown.values())
            assert "saved vs sc" not in screen.status_bar.status.render_text().plain
            await pilot.press("f3")  # reloaded from the history it is just as final
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            assert screen.tree_model.n_live() == 0 and not any("▍" in t for t in labels(screen).values())

    run(go())


def test_saved_vs_sc_is_final_and_never_shown_for_sc_itself(tmp_path: Path) -> None:
    async def go() -> None:
        source = ScriptedSource(hold_after=24)  # the fork has finished, the search goes on
        app = app_for(source, tmp_path, ChatSettings(search=SearchSection(k=3)), batch_interval_s=0.0)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = await ask(pilot, "cat")
            await asyncio.get_running_loop().run_in_executor(None, source.held.wait, 5)
            await until(pilot, lambda: len(screen.events) == 24)
            assert screen.tree_model.finished  # a path has finished: a running figure would exist
            assert "saved vs sc" not in screen.status_bar.status.render_text().plain
            source.release.set()
            await settle(pilot)
            assert "saved vs sc@3 +" in screen.status_bar.status.render_text().plain
            app.settings = ChatSettings(search=SearchSection(k=3, strategy="sc"))
            source.hold_after = None
            await ask(pilot, "sc")
            await settle(pilot)
            assert screen.state == "done" and screen.status_bar.status.saved_vs_sc is None
            assert "saved vs sc" not in screen.status_bar.status.render_text().plain

    run(go())


def test_settings_open_focused_check_the_model_and_are_remembered(tmp_path: Path) -> None:
    remembered = tmp_path / "settings.json"

    async def go() -> None:
        app = app_for(ScriptedSource(), tmp_path, settings_file=remembered)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("f2")
            await pilot.pause()
            form = app.screen
            assert isinstance(form, SettingsScreen)
            assert app.focused is form.query_one("#model")  # the keyboard works at once
            assert "built-in model" in str(form.query_one("#settings-help").content)
            missing = tmp_path / "nowhere.gguf"
            form.query_one("#model-path").value = str(missing)
            await pilot.pause()
            assert form.query_one("#model").prompt == "using the path typed below"  # not "Select"
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.screen is form and not remembered.exists()
            assert f"settings.model: GGUF file not found: {missing}" in str(
                form.query_one("#settings-error").content
            )
            form.query_one("#model-path").value = ""  # clearing the path gives the list back its pick
            await pilot.pause()
            assert form.query_one("#model").value == "smollm2-135m"
            form.query_one("#model-path").value = str(missing)
            await pilot.pause()
            form.query_one("#model").value = "tiny"  # a pick replaces the typed path
            await pilot.pause()
            assert form.query_one("#model-path").value == ""
            form.query_one("#f-k").value = "5"
            form.query_one("#strategy").value = "sc"
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.screen is not form and remembered.is_file()
            assert load_settings(remembered) == app.settings  # every field round-trips

    run(go())
    again = make_app(settings_file=remembered)  # the next launch
    kept = again.settings
    assert (kept.model, kept.search.k, kept.search.strategy) == ("tiny", 5, "sc")
    remembered.write_text("{not json")
    assert make_app(settings_file=remembered).settings == ChatSettings()  # damaged: defaults
