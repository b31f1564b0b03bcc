"""The caspo-lite Textual app and `make_app`, the one factory the CLI and the tests share.

Screens are app modes (`home`, `chat`; issue 9 adds train/export/runs), switched with
`App.switch_mode`. What a search needs from outside — the event source (real library or a
script), the clock that times it, where history goes — is injected here, so tests can run
the real app with a scripted source and a frozen clock.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from caspo_lite.paths import runs_dir
from caspo_lite.tui.inference import Clock, LibrarySource, SearchSource
from caspo_lite.tui.messages import AttachRun, ModelChosen, ShowRound
from caspo_lite.tui.screens.chat import ChatScreen
from caspo_lite.tui.screens.export import ExportScreen
from caspo_lite.tui.screens.home import HomeScreen
from caspo_lite.tui.screens.runs import RunsScreen
from caspo_lite.tui.screens.train import TrainScreen
from caspo_lite.tui.settings import ChatSettings, apply_form, load_settings, save_settings
from caspo_lite.tui.train_process import DEFAULT_COMMAND, default_recipes_root

# Every screen, as the command palette (Ctrl+P) offers it: (mode, title, help).
NAVIGATION: tuple[tuple[str, str, str], ...] = (
    ("home", "Go to Home", "The start screen: chat, train, export, runs"),
    ("chat", "Go to Chat", "Ask a question and watch the reasoning tree grow"),
    ("train", "Go to Train", "Start, stop and resume a CASPO training run"),
    ("export", "Go to Export", "Export a finished round to GGUF, then chat with it"),
    ("runs", "Go to Runs", "Past runs, their rounds, dev accuracy and pair counts"),
)


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
        settings_file: Path | None = None,
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
        self.runs_root = runs_root or runs_dir()
        self.recipes_root = recipes_root or default_recipes_root()
        self.train_prefix = train_prefix or DEFAULT_COMMAND
        self.poll_s = poll_s
        self.settings_file = settings_file  # where Apply remembers the chat settings (None: nowhere)

    def on_mount(self) -> None:
        self.switch_mode(self.start_mode)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette's own commands, then one per screen: every screen is one command away."""
        yield from super().get_system_commands(screen)
        for mode, title, help_text in NAVIGATION:
            if mode != self.current_mode:
                yield SystemCommand(title, help_text, lambda mode=mode: self.switch_mode(mode))

    def remember_settings(self, settings: ChatSettings) -> None:
        """Use ``settings`` from the next question on, and keep them for the next launch."""
        self.settings = settings
        if self.settings_file is not None:
            try:
                save_settings(settings, self.settings_file)
            except OSError as exc:
                self.notify(f"could not remember the settings: {exc}", severity="warning")

    # -- one screen asking another: switch to it, then tell it what to show (a message, so a
    # screen created by the switch handles it after it has mounted)

    def open_export(self, round_dir: Path) -> None:
        """Show the export screen with ``round_dir`` preselected."""
        self.switch_mode("export")
        self.screen.post_message(ShowRound(Path(round_dir)))

    def open_train(self, run_dir: Path) -> None:
        """Show the train screen attached to the run in ``run_dir``."""
        self.switch_mode("train")
        self.screen.post_message(AttachRun(Path(run_dir)))

    def chat_with(self, model: str) -> None:
        """Make ``model`` the chat model (from the next question) and show the chat screen."""
        self.settings = apply_form(self.settings, {"model": model})
        self.switch_mode("chat")
        self.screen.post_message(ModelChosen(model))

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

    Without ``settings``, a ``settings_file`` keyword (the CLI passes `settings_path()`) supplies
    the ones the user applied last time; Apply in the settings screen writes it again.

    Raises:
        ConfigError: an unknown strategy or a bad K (the CLI shows it as one line).
    """
    remembered = kwargs.get("settings_file")
    if settings is None and isinstance(remembered, Path):
        settings = load_settings(remembered)  # what the user applied last time (defaults if none)
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
