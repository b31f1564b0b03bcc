"""The start screen of `caspo-lite tui`: where each part of the app is reached from.

Chat is here now; training, export and runs screens (issue 9) add their own modes in
`tui.app.CaspoApp.MODES` and a line below.
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

ENTRIES: tuple[tuple[str, str], ...] = (("chat", "Chat — ask a question, watch the CaT tree grow"),)


class HomeScreen(Screen[None]):
    BINDINGS = [Binding("c", "app.switch_mode('chat')", "Chat")]

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
