"""The runs screen: every run under the runs folder, one row per round.

Each row: run, its status (running / stopped / failed / done), the round, its stages, pairs
by type, DPO reward margin, dev accuracy and its GGUF files — all read from the run folder.
Enter (or F7) exports the highlighted round, F6 opens its run in the train screen.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static

from caspo_lite.runs import is_round_dir
from caspo_lite.tui.runs import RoundState, RunState, list_runs
from caspo_lite.tui.screens.base import CaspoScreen
from caspo_lite.tui.widgets.run_progress import STATUS_STYLE

COLUMNS = (
    "run",
    "status",
    "started",
    "round",
    "stages",
    "pairs (A/B)",
    "final margin",
    "dev accuracy",
    "GGUF",
)


def started_text(run: RunState) -> str:
    """The local date and time a run (last) started, to the minute."""
    if run.started is None:
        return "—"
    return dt.datetime.fromtimestamp(run.started).strftime("%Y-%m-%d %H:%M")


def base_cells(run: RunState, first: bool) -> tuple[Text, ...]:
    """Round 0: the starting policy a run (or the demo) wrote before its first round."""
    assert run.base is not None
    name = Text(run.name if first else "", style="bold")
    status = Text(run.status if first else "", style=STATUS_STYLE.get(run.status, ""))
    when = Text(started_text(run) if first else "", style="dim")
    ggufs = sorted(run.base.glob("*.gguf"))
    return (
        name,
        status,
        when,
        Text("0"),
        Text("starting policy", style="dim"),
        Text("—"),
        Text("—"),
        Text("—"),
        Text(", ".join(p.name for p in ggufs) or "—"),
    )


def round_cells(run: RunState, rd: RoundState | None, first: bool) -> tuple[Text, ...]:
    """One table row (Text cells: run names and paths are data, not markup)."""
    name = Text(run.name if first else "", style="bold")
    status = Text(run.status if first else "", style=STATUS_STYLE.get(run.status, ""))
    when = Text(started_text(run) if first else "", style="dim")
    if rd is None:
        return (
            name,
            status,
            when,
            Text("—"),
            Text("no round yet", style="dim"),
            Text(""),
            Text(""),
            Text(""),
            Text(""),
        )
    done = sum(s.status == "done" for s in rd.stages)
    stages = Text(
        f"{done}/{len(rd.stages)}" + ("" if rd.finished else f" ({rd.current.name})" if rd.current else "")
    )
    pairs = Text(
        f"{rd.pairs.get('total', 0)} ({rd.pairs.get('A', 0)}/{rd.pairs.get('B', 0)})" if rd.pairs else "—"
    )
    margin = Text("—" if rd.reward_margin is None else f"{rd.reward_margin:+.3f}")
    dev = Text("—" if rd.dev_accuracy is None else f"{rd.dev_accuracy:.3f}")
    ggufs = Text(", ".join(p.name for p in rd.ggufs) or "—")
    return (name, status, when, Text(str(rd.index)), stages, pairs, margin, dev, ggufs)


class RunsScreen(CaspoScreen):
    BINDINGS = [
        Binding("f5", "refresh_runs", "Refresh"),
        Binding("f6", "open_run", "Open in train"),
        Binding("f7", "export_round", "Export round"),
        Binding("escape", "app.switch_mode('home')", "Home"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunState] = []
        self.rows: dict[str, tuple[Path, Path | None]] = {}  # row key -> (run folder, round folder)

    def compose(self) -> ComposeResult:
        with Vertical(id="runs-box"):
            yield Static(Text(f"Runs in {self.caspo.runs_root}", style="bold"), id="runs-title")
            yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        table.add_columns(*COLUMNS)
        self.action_refresh_runs()
        table.focus()

    def on_screen_resume(self) -> None:
        self.action_refresh_runs()

    def action_refresh_runs(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        table.clear()
        self.rows = {}
        self.runs = list_runs(self.caspo.runs_root)
        for run in self.runs:
            first = True
            if run.base is not None:  # round 0 (the demo's, or a run's materialised start)
                key = f"{run.root}::0"
                self.rows[key] = (run.root, run.base)
                table.add_row(*base_cells(run, first), key=key)
                first = False
            rounds: list[RoundState | None] = list(run.rounds) or ([None] if first else [])
            for rd in rounds:
                key = f"{run.root}::{rd.index if rd else 'none'}"
                self.rows[key] = (run.root, rd.root if rd else None)
                table.add_row(*round_cells(run, rd, first), key=key)
                first = False
        if not self.runs:
            self.query_one("#runs-title", Static).update(
                Text(f"No runs in {self.caspo.runs_root} yet (start one on the train screen).", style="dim")
            )

    def table_rows(self) -> list[list[str]]:
        """The table as plain strings (for tests and logs)."""
        table = self.query_one("#runs-table", DataTable)
        return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]

    def _highlighted(self) -> tuple[Path, Path | None] | None:
        table = self.query_one("#runs-table", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rows.get(key or "")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_export_round()

    def action_export_round(self) -> None:
        hit = self._highlighted()
        if hit is None or hit[1] is None:
            self.notify("Pick a round to export.")
            return
        run = next(r for r in self.runs if r.root == hit[0])
        rd = next((r for r in run.rounds if r.root == hit[1]), None)
        if rd is None:  # round 0: the starting policy, exportable when it has weights
            if not is_round_dir(hit[1]):
                self.notify("round 0 has no weights to export.", severity="warning")
                return
        elif not rd.finished:
            self.notify(f"round {rd.index} is not finished yet.", severity="warning")
            return
        self.caspo.open_export(hit[1])

    def action_open_run(self) -> None:
        hit = self._highlighted()
        if hit is not None:
            self.caspo.open_train(hit[0])
