"""A labelled sparkline with its last value: DPO loss and reward margin while training."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Sparkline, Static


class MetricSpark(Horizontal):
    DEFAULT_CSS = """
    MetricSpark { height: 1; }
    MetricSpark > .spark-label { width: 22; color: $text-muted; }
    MetricSpark > Sparkline { width: 1fr; }
    MetricSpark > .spark-value { width: 12; padding: 0 1; }
    """

    def __init__(self, label: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = label
        self.values: list[float] = []

    def compose(self) -> ComposeResult:
        yield Static(Text(self.label), classes="spark-label")
        yield Sparkline([], summary_function=max)
        yield Static(Text("—"), classes="spark-value")

    def on_mount(self) -> None:
        self._fit()

    def _fit(self) -> None:
        # no point or one point is not a curve: a full-width line would claim a history
        spark = self.query_one(Sparkline)
        spark.styles.width = len(self.values) if len(self.values) < 2 else "1fr"

    def show(self, values: list[float]) -> None:
        if values == self.values:
            return
        self.values = list(values)
        self.query_one(Sparkline).data = self.values
        self._fit()
        self.query_one(".spark-value", Static).update(Text(f"{values[-1]:+.4f}" if values else "—"))
