"""One line of search figures: model, strategy, live branches, tokens, savings, speed, time."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static


@dataclass(frozen=True)
class SearchStatus:
    """Everything the status bar shows (computed by the chat screen from its `SearchTree`)."""

    model: str
    strategy: str
    state: str = "idle"  # idle / loading / searching / cancelling / done / cancelled / error
    live: int = 0
    tokens: int = 0
    budget: int = 0
    saved_vs_sc: int | None = None  # None: not meaningful (still searching, or the strategy is sc)
    k: int = 0
    elapsed_s: float = 0.0
    counters: str = ""  # prunes by reason, decode calls, early stop (SearchTree.counter_line)

    @property
    def tokens_per_s(self) -> float | None:
        return self.tokens / self.elapsed_s if self.elapsed_s > 0 else None

    def render_text(self) -> Text:
        tps = "—" if self.tokens_per_s is None else f"{self.tokens_per_s:.1f}"
        parts = [
            (f" {self.model} ", "bold"),
            (f"· {self.strategy} ", ""),
            (f"· {self.state} ", "italic"),
            (f"· live {self.live} ", ""),
            (f"· tokens {self.tokens}/{self.budget} ", ""),
            # only a finished search has a final figure, and sc is the yardstick itself
            (f"· saved vs sc@{self.k} {self.saved_vs_sc:+d} " if self.saved_vs_sc is not None else "", ""),
            (f"· {tps} tok/s ", ""),
            (f"· {self.elapsed_s:.1f}s", ""),
        ]
        if self.counters:
            parts.append((f" · {self.counters}", "dim"))
        return Text.assemble(*parts)


class StatusBar(Static):
    """Draws a `SearchStatus`; ``status`` holds the last one shown."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text; }
    """

    def __init__(self, status: SearchStatus, *, id: str | None = None) -> None:
        super().__init__(status.render_text(), id=id)
        self.status = status

    def show(self, status: SearchStatus) -> None:
        self.status = status
        self.update(status.render_text())
