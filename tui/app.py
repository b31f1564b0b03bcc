"""The caspo-lite Textual app and `make_app`, the one factory the CLI and the tests share.

Screens are app modes (`home`, `chat`; issue 9 adds train/export/runs), switched with
`App.switch_mode`. What a search needs from outside — the event source (real library or a
script), the clock that times it, where history goes — is injected here, so tests can run
the real app with a scripted source and a frozen clock.
"""

from __future__ import annotations

import time
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from tui.inference import Clock, LibrarySource, SearchSource
from tui.screens.chat import ChatScreen
from tui.screens.home import HomeScreen
from tui.settings import ChatSettings


class CaspoApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "caspo-lite"
    MODES = {"home": HomeScreen, "chat": ChatScreen}
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(
        self,
        settings: ChatSettings | None = None,
        *,
        source: SearchSource | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        mode: str = "home",
        history_file: Path | None = None,
        export_dir: Path | None = None,
        batch_interval_s: float = 0.066,
    ) -> None:
        super().__init__()
        self.settings = settings or ChatSettings()
        self.source: SearchSource = source or LibrarySource()
        self.clock = clock  # times searches (tokens/s, elapsed): tests freeze it
        self.wall_clock = wall_clock  # stamps history entries
        self.start_mode = mode
        self.history_file = history_file  # None: the user data dir
        self.export_dir = export_dir  # None: the user data dir / exports
        self.batch_interval_s = batch_interval_s

    def on_mount(self) -> None:
        self.switch_mode(self.start_mode)

    @property
    def chat(self) -> ChatScreen:
        """The chat screen (created on first use)."""
        self.switch_mode("chat")
        return self.screen  # type: ignore[return-value]

    def on_unmount(self) -> None:
        self.workers.cancel_all()
        self.source.close()


def make_app(
    settings: ChatSettings | None = None,
    *,
    model: str | None = None,
    strategy: str | None = None,
    k: int | None = None,
    mode: str = "home",
    **kwargs: object,
) -> CaspoApp:
    """Build the app; ``model``/``strategy``/``k`` override ``settings`` (validated).

    Raises:
        ConfigError: an unknown strategy or a bad K (the CLI shows it as one line).
    """
    from tui.settings import apply_form

    settings = settings or ChatSettings()
    form: dict[str, str] = {}
    if model:
        form["model"] = model
    if strategy:
        form["strategy"] = strategy
    if k is not None:
        form["k"] = str(k)
    if form:
        settings = apply_form(settings, form)
    return CaspoApp(settings, mode=mode, **kwargs)  # type: ignore[arg-type]
