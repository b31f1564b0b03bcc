"""The last lines of a subprocess log, as plain text (a log may contain anything: never markup)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class LogTail(Static):
    DEFAULT_CSS = "LogTail { height: auto; color: $text-muted; padding: 0 1; }"

    def __init__(self, n_lines: int = 8, *, id: str | None = None) -> None:
        super().__init__(Text(""), id=id)
        self.n_lines = n_lines
        self.lines: list[str] = []

    def show(self, lines: list[str]) -> None:
        lines = lines[-self.n_lines :]
        if lines != self.lines:
            self.lines = lines
            self.update(Text("\n".join(lines)))
