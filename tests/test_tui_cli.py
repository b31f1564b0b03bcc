"""`caspo-lite tui` and `caspo-lite chat`: the app factory is built with the given options."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from caspo_lite.cli import app
from caspo_lite.tui.app import CaspoApp


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch, tmp_path) -> list[CaspoApp]:  # noqa: ANN001
    """Record the apps the CLI would run instead of taking over the terminal.

    A home of its own: the CLI loads the settings remembered in the data dir, and a shared
    test home may hold some.
    """
    monkeypatch.setenv("CASPO_LITE_HOME", str(tmp_path / "home"))
    seen: list[CaspoApp] = []
    monkeypatch.setattr(CaspoApp, "run", lambda self, *a, **kw: seen.append(self))
    return seen


def test_chat_opens_the_chat_mode_with_the_given_search(launched: list[CaspoApp]) -> None:
    result = CliRunner().invoke(app, ["chat", "--model", "tiny", "--strategy", "sc", "--k", "3"])
    assert result.exit_code == 0, result.output
    (tui,) = launched
    assert tui.start_mode == "chat"
    assert (tui.settings.model, tui.settings.search.strategy, tui.settings.search.k) == ("tiny", "sc", 3)


def test_tui_opens_home(launched: list[CaspoApp]) -> None:
    result = CliRunner().invoke(app, ["tui"])
    assert result.exit_code == 0, result.output
    assert launched[0].start_mode == "home" and launched[0].settings.search.strategy == "cat"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--strategy", "beam"],
            "error: settings.search.strategy: unknown 'beam' "
            "(known: greedy, sc, bon, deepconf, cat, cat-verify)",
        ),
        (["--k", "0"], "error: settings.search.k: must be at least 1, got 0"),
    ],
)
def test_chat_rejects_bad_options_in_one_line(
    launched: list[CaspoApp], args: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["chat", *args])
    assert result.exit_code == 2 and not launched
    assert result.output.strip() == message


def test_the_cli_opens_with_the_settings_applied_last_time(launched: list[CaspoApp]) -> None:
    from caspo_lite.tui.settings import ChatSettings, save_settings, settings_path

    save_settings(ChatSettings(model="tiny"), settings_path())
    result = CliRunner().invoke(app, ["chat", "--k", "3"])
    assert result.exit_code == 0, result.output
    assert (launched[0].settings.model, launched[0].settings.search.k) == ("tiny", 3)  # --k on top
    assert launched[0].settings_file == settings_path()
