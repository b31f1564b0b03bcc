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
from tui.screens.export import ExportScreen
from tui.screens.home import HomeScreen
from tui.screens.runs import RunsScreen
from tui.screens.train import TrainScreen
from tui.settings import ChatSettings


class CaspoApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "caspo-lite"
    MODES = {
        "home": HomeScreen,
        "chat": ChatScreen,
        "train": TrainScreen,
        "export": ExportScreen,
        "runs": RunsScreen,
    }
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
        runs_root: Path | None = None,
        recipes_root: Path | None = None,
        train_prefix: tuple[str, ...] | None = None,
        poll_s: float = 1.0,
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
        # training screens (issue 9): where runs and recipes are, and the `caspo-lite` command
        # they run as subprocesses (tests swap in a fake trainer)
        from caspo_lite.paths import runs_dir
        from tui.train_process import DEFAULT_COMMAND, default_recipes_root

        self.runs_root = runs_root or runs_dir()
        self.recipes_root = recipes_root or default_recipes_root()
        self.train_prefix = train_prefix or DEFAULT_COMMAND
        self.poll_s = poll_s
        self.export_source: Path | None = None  # a round another screen asked the export screen to show
        self.train_out: Path | None = None  # a run folder another screen asked the train screen to show

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
