"""History: pick a saved conversation to reload (its last question's tree is rebuilt)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from caspo_lite.tui.history import Turn, conversations, load_turns
from caspo_lite.tui.style import one_line


def conversation_label(turns: list[Turn]) -> Text:
    first, last = turns[0], turns[-1]
    when = dt.datetime.fromtimestamp(last.created).strftime("%Y-%m-%d %H:%M")
    answer = last.answer
    tail = f"→ {answer.answer}" if answer is not None else ("cancelled" if last.cancelled else "no answer")
    return Text.assemble(
        (f"{when}  ", "dim"), one_line(first.question, 60), (f"  ({len(turns)} q) {tail}", "dim")
    )


class HistoryScreen(ModalScreen[list[Turn] | None]):
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, path: Path | None = None) -> None:
        super().__init__()
        self.path = path
        self.groups = conversations(load_turns(path))

    def compose(self) -> ComposeResult:
        with Vertical(id="history-box"):
            yield Static(Text("History — Enter reloads a conversation", style="bold"))
            if not self.groups:
                yield Static(Text("No saved conversations yet.", style="dim"))
            yield OptionList(
                *(Option(conversation_label(turns), id=cid) for cid, turns in self.groups.items()),
                id="history-list",
            )

    def on_mount(self) -> None:
        self.query_one("#history-list", OptionList).focus()

    @on(OptionList.OptionSelected, "#history-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.groups.get(event.option.id or ""))

    def action_close(self) -> None:
        self.dismiss(None)
