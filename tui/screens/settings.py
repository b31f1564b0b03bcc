"""Settings: strategy, budget and thresholds, temperature, confidence signal, model.

A modal over the chat screen. Apply (Ctrl+S or the button) validates the form through
`tui.settings.apply_form` — the library's own config checks — and hands the new settings
back; they apply to the next question. A bad value leaves the screen open with one line
saying which field and why.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from caspo_lite.config import SearchSection, help_for
from caspo_lite.errors import ConfigError
from tui.settings import SEARCH_FIELDS, ChatSettings, apply_form, model_choices, signal_names, strategy_names


class SettingsScreen(ModalScreen[ChatSettings | None]):
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("ctrl+s", "apply", "Apply"),
    ]

    def __init__(self, settings: ChatSettings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        s = self.settings
        helps = help_for(SearchSection)
        models = model_choices()
        typed = "" if s.model in models else s.model
        with VerticalScroll(id="settings-box"):
            yield Static(Text("Settings — apply to the next question", style="bold"))
            with Grid(id="settings-grid"):
                yield Label("model")
                yield Select(
                    [(m, m) for m in models],
                    value=s.model if s.model in models else Select.NULL,
                    allow_blank=True,
                    compact=True,
                    id="model",
                )
                yield Label("model path")
                yield Input(
                    typed, placeholder="or type a .gguf path / model reference", compact=True, id="model-path"
                )
                yield Label("strategy")
                yield Select(
                    [(n, n) for n in strategy_names()],
                    value=s.search.strategy,
                    allow_blank=False,
                    compact=True,
                    id="strategy",
                )
                for name in SEARCH_FIELDS:
                    yield Label(name.replace("_", " "))
                    field = Input(str(getattr(s.search, name)), compact=True, id=f"f-{name}")
                    field.tooltip = helps.get(name, "")
                    yield field
                yield Label("confidence signal")
                yield Select(
                    [(n, n) for n in signal_names()],
                    value=s.confidence.signal,
                    allow_blank=False,
                    compact=True,
                    id="signal",
                )
            yield Static("", id="settings-error")
            with Horizontal(id="settings-buttons"):
                yield Button("Apply (Ctrl+S)", variant="primary", id="apply")
                yield Button("Cancel (Esc)", id="cancel")

    def form(self) -> dict[str, str]:
        """The form's current text, keyed as `apply_form` expects."""
        typed = self.query_one("#model-path", Input).value.strip()
        picked = self.query_one("#model", Select).value
        data = {
            "model": typed or (str(picked) if picked is not Select.NULL else ""),
            "strategy": str(self.query_one("#strategy", Select).value),
            "signal": str(self.query_one("#signal", Select).value),
        }
        for name in SEARCH_FIELDS:
            data[name] = self.query_one(f"#f-{name}", Input).value
        return data

    def action_apply(self) -> None:
        try:
            new = apply_form(self.settings, self.form())
        except ConfigError as exc:
            self.query_one("#settings-error", Static).update(Text(str(exc), style="red"))
            return
        self.dismiss(new)

    def action_close(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#apply")
    def _apply_pressed(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_close()
