"""A training run's rounds and stages as text: ✓ done, ▶ running (count, ETA), · pending."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from caspo_lite.tui.runs import RoundState, RunState, StageState

MARKS = {"done": ("✓", "green"), "running": ("▶", "bold yellow"), "pending": ("·", "dim")}
RESUME_KEY = "F9"  # the train screen's Resume key, named where a stopped run says how to go on
STATUS_STYLE = {"running": "bold yellow", "done": "bold green", "failed": "bold red", "stopped": "yellow"}


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "—"
    s = int(round(s))
    return (
        f"{s // 3600}h{s % 3600 // 60:02d}m"
        if s >= 3600
        else f"{s // 60}m{s % 60:02d}s"
        if s >= 60
        else f"{s}s"
    )


def stage_text(stage: StageState, running: bool) -> Text:
    mark, style = MARKS[stage.status]
    if stage.status == "running" and not running:
        mark, style = "‖", "yellow"  # the process is gone: this stage is where a resume continues
    out = Text.assemble((f"{mark} {stage.name}", style))
    if stage.status != "pending" and stage.total:
        out.append(f" {stage.done or 0}/{stage.total}", "dim" if stage.status == "done" else "")
    if stage.status == "running" and running and stage.eta_s is not None:
        out.append(f" ETA {fmt_seconds(stage.eta_s)}", "italic")
    return out


def round_text(rd: RoundState, running: bool) -> Text:
    line = Text.assemble((f"round {rd.index}  ", "bold"))
    for i, stage in enumerate(rd.stages):
        if i:
            line.append("  ")
        line.append_text(stage_text(stage, running))
    facts = []
    if rd.pairs:
        facts.append(f"pairs {rd.pairs.get('total', 0)} (A {rd.pairs.get('A', 0)}, B {rd.pairs.get('B', 0)})")
    if rd.reward_margin is not None:
        facts.append(f"final margin {rd.reward_margin:+.3f}")  # over all pairs, after DPO
    if rd.dev_accuracy is not None:
        facts.append(f"dev accuracy {rd.dev_accuracy:.3f}")
    if facts:
        line.append("\n         " + " · ".join(facts), "dim")
    return line


def run_text(run: RunState) -> Text:
    """The whole run: a header line, then one block per round started so far."""
    running = run.status == "running"
    head = Text.assemble(
        (f"{run.name}  ", "bold"),
        (run.status, STATUS_STYLE.get(run.status, "")),
        f"  rounds {run.rounds_done}/{run.n_rounds}",
    )
    if run.pid is not None:
        head.append(f"  pid {run.pid}", "dim")
    if running and run.eta_s is not None:
        head.append(f"  run ETA {fmt_seconds(run.eta_s)}", "italic")
    parts = [head]
    if run.error:
        parts.append(Text.assemble(("error: ", "bold red"), run.error))
    if run.status == "stopped":
        parts.append(Text(f"stopped; press {RESUME_KEY} to resume where it stopped", style="yellow"))
    elif run.status == "failed":
        parts.append(Text(f"fix the cause, then {RESUME_KEY} resumes from the failed stage", style="dim"))
    parts += [round_text(rd, running) for rd in run.rounds]
    if not run.rounds:
        parts.append(Text("no round started yet", style="dim"))
    return Text("\n").join(parts)


class RunProgress(Static):
    """Shows a `RunState` (call `show` on every poll)."""

    DEFAULT_CSS = "RunProgress { height: auto; padding: 0 1; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(Text("no run yet", style="dim"), id=id)
        self.run: RunState | None = None

    def show(self, run: RunState | None) -> None:
        self.run = run
        self.update(run_text(run) if run is not None else Text("no run yet", style="dim"))

    @property
    def plain(self) -> str:
        return run_text(self.run).plain if self.run is not None else ""
