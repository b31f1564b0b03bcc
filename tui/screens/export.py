"""The export screen: a finished round -> GGUF files (chosen quant types) -> chat with one.

The export runs as a ``caspo-lite export ROUND --out ROUND/export --quant ... --json``
subprocess read line by line in a thread worker: its machine protocol
(`caspo_lite.event_stream`) sends a ``file`` event per finished file, which moves the progress
bar, and an ``error`` event (code and message) on failure; other lines are the log shown under
the form. Nothing heavy (torch, llama.cpp quantization) ever runs in the UI process.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Input, ProgressBar, Select, Static

from caspo_lite.event_stream import parse_events
from caspo_lite.tui.messages import ShowRound
from caspo_lite.tui.runs import finished_rounds
from caspo_lite.tui.screens.base import CaspoScreen
from caspo_lite.tui.widgets.log_tail import LogTail
from caspo_lite.tui.widgets.tick_list import TickList

QUANT_CHOICES = ("q8_0", "q4_k_m", "q5_k_m", "q6_k", "q4_0", "f16", "bf16", "f32")


def export_command(prefix: tuple[str, ...], source: Path, out: Path, quants: list[str]) -> list[str]:
    cmd = [*prefix, "export", str(source), "--out", str(out)]
    for q in quants:
        cmd += ["--quant", q]
    return [*cmd, "--json"]


def event_line(event: dict[str, Any]) -> str | None:
    """How an event reads in the export log (None: nothing worth a line)."""
    if event["event"] == "file":
        return (
            f"wrote {event.get('path')} ({event.get('quant')}, {int(event.get('bytes') or 0) / 2**20:.1f} MB)"
        )
    if event["event"] == "error":
        return f"error: {event.get('message')}"
    return None


def round_label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


class ExportScreen(CaspoScreen):
    BINDINGS = [
        Binding("f7", "export", "Export"),
        Binding("f8", "chat", "Chat with it"),
        Binding("escape", "app.switch_mode('home')", "Home"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.state = "idle"  # idle / exporting / done / error
        self.error: str | None = None
        self.files: list[Path] = []
        self.log_lines: list[str] = []

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="export-box"):
            yield Static(Text("Export a round to GGUF", style="bold"))
            yield Select([], id="round", prompt="pick a finished round")
            yield Static(Text("Quant types", style="bold"))
            yield TickList(*((q, q, q == "q8_0") for q in QUANT_CHOICES), id="quants")
            yield Static(Text("Output folder", style="bold"))
            yield Input(id="export-out")
            with Horizontal(id="export-buttons"):
                yield Button("Export", id="export", variant="primary")
                yield Button("Chat with it", id="chat", disabled=True)
            yield ProgressBar(total=1, id="export-progress", show_eta=False)
            yield Static(Text(""), id="export-result")
            yield LogTail(8, id="export-log")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_rounds()
        self.query_one("#round", Select).focus()

    def on_screen_resume(self) -> None:
        self.refresh_rounds()

    def on_show_round(self, message: ShowRound) -> None:
        """Another screen asked for this round (`CaspoApp.open_export`)."""
        self.refresh_rounds(message.round_dir)

    def refresh_rounds(self, wanted: Path | None = None) -> None:
        """List every exportable round; preselect ``wanted`` (else keep the pick, else the last)."""
        rounds = finished_rounds(self.caspo.runs_root)
        if wanted is not None and Path(wanted) not in rounds:
            rounds.append(Path(wanted))
        select = self.query_one("#round", Select)
        current = select.value
        select.set_options([(round_label(p), str(p)) for p in rounds])
        if wanted is not None:
            select.value = str(wanted)
        elif current is not Select.BLANK and any(str(p) == current for p in rounds):
            select.value = current
        elif rounds:
            select.value = str(rounds[-1])

    @on(Select.Changed, "#round")
    def _round_picked(self, event: Select.Changed) -> None:
        if event.value is not Select.BLANK:
            self.query_one("#export-out", Input).value = str(Path(str(event.value)) / "export")

    @property
    def quants(self) -> list[str]:
        return list(self.query_one("#quants", TickList).selected)

    @on(Button.Pressed, "#export")
    def action_export(self) -> None:
        value = self.query_one("#round", Select).value
        out = self.query_one("#export-out", Input).value.strip()
        quants = self.quants
        if value is Select.BLANK or not out or not quants:
            self._failed("pick a round, an output folder and at least one quant type")
            return
        if self.state == "exporting":
            return
        self.state, self.error, self.files, self.log_lines = "exporting", None, [], []
        self.query_one("#chat", Button).disabled = True
        self.query_one("#export-progress", ProgressBar).update(total=len(quants), progress=0)
        self.query_one("#export-result", Static).update(
            Text(f"exporting {', '.join(quants)}…", style="italic")
        )
        cmd = export_command(self.caspo.train_prefix, Path(str(value)), Path(out).expanduser(), quants)
        self._export(cmd)

    @work(thread=True, exclusive=True, group="export")
    def _export(self, cmd: list[str]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TERM": "dumb"}
        try:
            proc = subprocess.Popen(  # noqa: S603 - our own CLI, argument list
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        except OSError as exc:
            self.app.call_from_thread(self._failed, f"could not run {cmd[0]}: {exc}")
            return
        assert proc.stdout is not None
        error: dict[str, Any] | None = None
        for raw in proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip()
            events = parse_events([line])
            if events and events[0]["event"] == "error":
                error = events[0]
            self.app.call_from_thread(self._line, line, events[0] if events else None)
        rc = proc.wait()
        if rc != 0:
            message = str(error["message"]) if error else f"caspo-lite export exited with code {rc}"
            self.app.call_from_thread(self._failed, message)
        else:
            self.app.call_from_thread(self._done)

    def _line(self, line: str, event: dict[str, Any] | None) -> None:
        shown = event_line(event) if event is not None else line
        if shown:
            self.log_lines.append(shown)
            self.query_one("#export-log", LogTail).show(self.log_lines)
        if event is not None and event["event"] == "file":
            self.files.append(Path(str(event["path"])))
            self.query_one("#export-progress", ProgressBar).advance(1)

    def _failed(self, message: str) -> None:
        self.state, self.error = "error", message
        self.query_one("#export-result", Static).update(Text.assemble(("error: ", "bold red"), message))
        self.notify(message, title="Export", severity="error", timeout=10)

    def _done(self) -> None:
        self.state = "done"
        names = ", ".join(p.name for p in self.files) or "nothing"
        self.query_one("#export-result", Static).update(Text.assemble(("wrote ", "green"), names))
        self.query_one("#chat", Button).disabled = not self.files

    @on(Button.Pressed, "#chat")
    def action_chat(self) -> None:
        """Open the chat screen on the first exported file (it applies from the next question)."""
        if not self.files:
            self.notify("Export a round first.")
            return
        self.caspo.chat_with(str(self.files[0]))
