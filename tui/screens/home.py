"""The start screen of `caspo-lite tui`: where each part of the app is reached from.

Each entry is a mode of `caspo_lite.tui.app.CaspoApp.MODES` (chat, train, export, runs); a new screen
adds its mode there and a line below.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

ENTRIES: tuple[tuple[str, str], ...] = (
    ("chat", "Chat — ask a question, watch the CaT tree grow"),
    ("train", "Train — pick a recipe, start / stop / resume a CASPO run, watch its rounds"),
    ("export", "Export — a finished round to GGUF (q8_0, q4_k_m, …), then chat with it"),
    ("runs", "Runs — past runs, their rounds, dev accuracy and pair counts"),
)


class HomeScreen(Screen[None]):
    BINDINGS = [
        Binding("c", "app.switch_mode('chat')", "Chat"),
        Binding("t", "app.switch_mode('train')", "Train"),
        Binding("e", "app.switch_mode('export')", "Export"),
        Binding("r", "app.switch_mode('runs')", "Runs"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="home-box"):
            yield Static(Text("caspo-lite", style="bold"))
            yield OptionList(*(Option(Text(label), id=mode) for mode, label in ENTRIES), id="home-list")
        yield Footer()

    @on(OptionList.OptionSelected, "#home-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.app.switch_mode(event.option.id)
