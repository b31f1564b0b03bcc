"""Settings: strategy, budget and thresholds, temperature, confidence signal, model.

A modal over the chat screen. Apply (Ctrl+S or the button) validates the form through
`caspo_lite.tui.settings.apply_form` — the library's own config checks — and hands the new settings
back; they apply to the next question. A bad value leaves the screen open with one line
saying which field and why.
"""

from __future__ import annotations

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from caspo_lite.config import SearchSection, help_for
from caspo_lite.errors import CaspoError
from caspo_lite.tui.settings import (
    SEARCH_FIELDS,
    ChatSettings,
    apply_form,
    check_model,
    model_choices,
    signal_names,
    strategy_names,
)

PICK_PROMPT = "pick a model (or type a path below)"
TYPED_PROMPT = "using the path typed below"
# labels that say what a sentinel value means, so "-1.0" and "1.01" read as settings, not noise
FIELD_LABELS = {
    "prune_threshold": "prune threshold (<0 auto)",
    "accept_threshold": "accept threshold (>1 off)",
}
OTHER_HELP = {
    "model": "A built-in model, or a .gguf found under the runs folder.",
    "model-path": "Any .gguf file, model folder or hub id; checked when you apply.",
    "strategy": help_for(SearchSection).get("strategy", ""),
    "signal": "How a token's confidence is measured (entropy, margin, …).",
}


class SettingsScreen(ModalScreen[ChatSettings | None]):
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("ctrl+s", "apply", "Apply"),
    ]

    def __init__(self, settings: ChatSettings) -> None:
        super().__init__()
        self.settings = settings
        self._picked: object = None  # the listed model a typed path replaced

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
                    prompt=TYPED_PROMPT if typed else PICK_PROMPT,
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
                    yield Label(FIELD_LABELS.get(name, name.replace("_", " ")))
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
            yield Static(Text("", style="italic"), id="settings-help")
            yield Static("", id="settings-error")
            with Horizontal(id="settings-buttons"):
                yield Button("Apply (Ctrl+S)", variant="primary", id="apply")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        # focus the first field, so the keyboard works at once (Tab moves on, Ctrl+S applies)
        self.query_one("#model", Select).focus()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """Show the focused field's help under the form (tooltips need a mouse)."""
        wid = event.widget.id or ""
        helps = help_for(SearchSection) if wid.startswith("f-") else OTHER_HELP
        text = helps.get(wid[2:] if wid.startswith("f-") else wid, "")
        self.query_one("#settings-help", Static).update(Text(text, style="italic"))

    @on(Input.Changed, "#model-path")
    def _path_typed(self, event: Input.Changed) -> None:
        """A typed path wins over the list: say so in the list instead of a bare "Select"."""
        select = self.query_one("#model", Select)
        if event.value.strip():
            select.prompt = TYPED_PROMPT
            if select.value is not Select.NULL:
                self._picked = select.value  # given back if the path is cleared again
                select.clear()
        else:
            select.prompt = PICK_PROMPT
            if self._picked is not None and select.value is Select.NULL:
                select.value = self._picked

    @on(Select.Changed, "#model")
    def _model_picked(self, event: Select.Changed) -> None:
        if event.value is not Select.NULL:
            self.query_one("#model-path", Input).value = ""  # a pick replaces the typed path

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
            check_model(new.model)  # a missing file fails here, not at the next question
        except CaspoError as exc:
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
