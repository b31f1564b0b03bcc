"""The train screen: pick a recipe, see the `--dry-run` plan, start/stop/resume, watch the rounds.

Training is never run inside the UI. Start runs ``caspo-lite train --dry-run`` (the plan and
memory estimate, or the recipe's error as one line), then starts ``caspo-lite train`` as a
subprocess in its own session (`tui.runs.start_train`). From then on the screen only polls
the run folder (`set_interval`), so quitting the app leaves the run going, and opening the
screen on that folder again attaches to it (a pid file plus ``os.kill(pid, 0)``). Stop sends
SIGINT; Resume starts the same command again and the trainer continues at the first
unfinished stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Select, Static

from caspo_lite.errors import CaspoError
from tui.runs import RunState, read_run, tail
from tui.train_process import (
    LOG_FILE,
    MAIN_FIELDS,
    dry_run,
    live_pid,
    overrides,
    read_pidfile,
    recipe_fields,
    resume_train,
    start_train,
    stop_train,
    train_command,
)
from tui.widgets.log_tail import LogTail
from tui.widgets.metric_spark import MetricSpark
from tui.widgets.run_progress import RunProgress

if TYPE_CHECKING:
    from tui.app import CaspoApp

PLAN_KEYS = (
    ("model", "model"),
    ("task", "task"),
    ("train_problems", "train problems"),
    ("dev_problems", "dev problems"),
    ("rounds", "rounds"),
    ("samples_per_round", "samples / round"),
    ("sampling_engine", "sampling engine"),
    ("labeler", "labeler"),
    ("pairs", "pairs"),
    ("backend", "DPO backend"),
    ("model_params_m", "parameters (M)"),
    ("memory_estimate_gb", "memory estimate (GB)"),
)


def plan_text(plan: dict[str, Any]) -> Text:
    """The dry-run plan as aligned lines (values are data, never markup)."""
    out = Text("Plan (caspo-lite train --dry-run)\n", style="bold")
    for key, label in PLAN_KEYS:
        if key in plan:
            out.append(f"{label:<22}", "dim")
            out.append(f"{plan[key]}\n")
    resume = plan.get("resume") or []
    if resume:
        done = "; ".join(
            f"round {r.get('round')}: {', '.join(r.get('done', [])) or 'nothing'}" for r in resume
        )
        out.append(f"{'already done':<22}", "dim")
        out.append(done + "\n")
    return out


def field_id(key: str) -> str:
    return "f-" + key.replace(".", "-").replace("_", "-")


class TrainScreen(Screen[None]):
    BINDINGS = [
        Binding("f6", "plan", "Plan"),
        Binding("f7", "start", "Start"),
        Binding("f8", "stop", "Stop"),
        Binding("f9", "resume", "Resume"),
        Binding("f10", "export", "Export round"),
        Binding("escape", "app.switch_mode('home')", "Home"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.state = "idle"  # idle / planning / running / stopped / failed / done / error
        self.error: str | None = None
        self.plan: dict[str, Any] | None = None
        self.run_state: RunState | None = None
        self.fields: dict[str, str] = {}  # the recipe's own values of MAIN_FIELDS
        self.dpo_logs: dict[int, list[dict[str, float]]] = {}  # round -> DPO log (checkpoints are deleted)
        self.recipes: list[Path] = []

    @property
    def caspo(self) -> CaspoApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        root = self.caspo.recipes_root
        self.recipes = sorted(root.glob("*.toml")) if root.is_dir() else []
        recipes = self.recipes
        with Horizontal(id="train-body"):
            with VerticalScroll(id="train-form"):
                yield Static(Text("Recipe", style="bold"))
                yield Select([(p.stem, str(p)) for p in recipes], id="recipe", prompt="pick a recipe")
                yield Input(placeholder="…or a recipe path", id="recipe-path")
                yield Static(Text("Run folder", style="bold"))
                yield Input(id="out")
                yield Static(Text("Main fields (changes become --set)", style="bold"))
                for key in MAIN_FIELDS:
                    yield Static(Text(key, style="dim"))
                    yield Input(id=field_id(key))
                with Horizontal(id="train-buttons"):
                    yield Button("Plan", id="plan")
                    yield Button("Start", id="start", variant="primary")
                with Horizontal(id="train-buttons-2"):
                    yield Button("Stop", id="stop", variant="error")
                    yield Button("Resume", id="resume")
            with VerticalScroll(id="train-right"):
                yield Static(
                    Text("Pick a recipe; Start shows its plan, then trains.", style="dim"), id="plan-view"
                )
                yield RunProgress(id="progress")
                yield MetricSpark("DPO loss", id="spark-loss")
                yield MetricSpark("DPO reward margin", id="spark-margin")
                yield MetricSpark("margin per round", id="spark-round-margin")
                yield MetricSpark("dev accuracy per round", id="spark-dev")
                yield Static(Text("train.log", style="bold"))
                yield LogTail(10, id="log")
        yield Footer()

    def on_mount(self) -> None:
        target, self.caspo.train_out = self.caspo.train_out, None
        if target is not None:
            self.attach(target)
        else:
            select = self.query_one("#recipe", Select)
            default = next(
                (p for p in self.recipes if p.stem == "tiny-ci"), self.recipes[0] if self.recipes else None
            )
            if default is not None:
                select.value = str(default)
        self.set_interval(self.caspo.poll_s, self.poll)

    def on_screen_resume(self) -> None:
        target, self.caspo.train_out = self.caspo.train_out, None
        if target is not None:
            self.attach(target)

    # -- the form --------------------------------------------------------------------------------

    @property
    def recipe_path(self) -> Path | None:
        typed = self.query_one("#recipe-path", Input).value.strip()
        if typed:
            return Path(typed).expanduser()
        value = self.query_one("#recipe", Select).value
        return None if value is Select.BLANK else Path(str(value))

    @property
    def out_path(self) -> Path | None:
        value = self.query_one("#out", Input).value.strip()
        return Path(value).expanduser() if value else None

    def _load_fields(self, recipe: Path) -> None:
        self.fields = recipe_fields(recipe)
        for key in MAIN_FIELDS:
            self.query_one(f"#{field_id(key)}", Input).value = self.fields.get(key, "")
        self.query_one("#out", Input).value = str(self.caspo.runs_root / recipe.stem)

    @on(Select.Changed, "#recipe")
    def _recipe_picked(self, event: Select.Changed) -> None:
        if event.value is not Select.BLANK:
            self.query_one("#recipe-path", Input).value = ""
            self._load_fields(Path(str(event.value)))

    @on(Input.Submitted, "#recipe-path")
    def _recipe_typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self._load_fields(Path(event.value.strip()).expanduser())

    @on(Input.Changed, "#out")
    def _out_changed(self, event: Input.Changed) -> None:
        self.dpo_logs = {}
        self.poll()

    def sets(self) -> list[str]:
        edited = {key: self.query_one(f"#{field_id(key)}", Input).value for key in MAIN_FIELDS}
        return overrides(self.fields, edited)

    def attach(self, run: Path) -> None:
        """Show an existing run folder (and follow its trainer if one is alive).

        The recipe of the command the UI recorded there is put back in the form, so Start
        after a stop means the same run.
        """
        cmd = (read_pidfile(run) or {}).get("cmd") or []
        if "--recipe" in cmd and cmd.index("--recipe") + 1 < len(cmd):
            recipe = Path(str(cmd[cmd.index("--recipe") + 1]))
            self.query_one("#recipe-path", Input).value = str(recipe)
            self.fields = recipe_fields(recipe)
            values = dict(self.fields)
            for i, arg in enumerate(cmd[:-1]):  # the --set overrides it ran with
                key, _, value = str(cmd[i + 1]).partition("=")
                if arg == "--set" and key in values:
                    values[key] = value.strip('"')
            for key in MAIN_FIELDS:
                self.query_one(f"#{field_id(key)}", Input).value = values.get(key, "")
        self.query_one("#out", Input).value = str(run)
        self.poll()

    # -- actions ---------------------------------------------------------------------------------

    @on(Button.Pressed, "#plan")
    def action_plan(self) -> None:
        self._plan(start=False)

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        self._plan(start=True)

    def _plan(self, start: bool) -> None:
        recipe, out = self.recipe_path, self.out_path
        if recipe is None or out is None:
            self._fail("pick a recipe and a run folder first")
            return
        if self.state == "planning":
            return
        if live_pid(out) is not None:
            self.notify("A trainer is already running in this folder; Stop it first.", severity="warning")
            return
        self.state, self.error = "planning", None
        self.query_one("#plan-view", Static).update(
            Text("Planning (caspo-lite train --dry-run)…", style="italic")
        )
        self._plan_worker(recipe, out, self.sets(), start)

    @work(thread=True, exclusive=True, group="plan")
    def _plan_worker(self, recipe: Path, out: Path, sets: list[str], start: bool) -> None:
        try:
            plan = dry_run(recipe, out, sets, self.caspo.train_prefix)
        except CaspoError as exc:
            self.app.call_from_thread(self._fail, str(exc))
            return
        self.app.call_from_thread(self._planned, plan, recipe, out, sets, start)

    def _fail(self, message: str) -> None:
        self.state, self.error = "error", message
        self.query_one("#plan-view", Static).update(Text.assemble(("error: ", "bold red"), message))
        self.notify(message, title="Training", severity="error", timeout=10)

    def _planned(self, plan: dict[str, Any], recipe: Path, out: Path, sets: list[str], start: bool) -> None:
        self.plan = plan
        self.query_one("#plan-view", Static).update(plan_text(plan))
        self.state = "idle"
        if not start:
            return
        try:
            start_train(train_command(recipe, out, sets, self.caspo.train_prefix), out)
        except CaspoError as exc:
            self._fail(str(exc))
            return
        self.state = "running"
        self.dpo_logs = {}
        self.poll()

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        out = self.out_path
        if out is None or not stop_train(out):
            self.notify("No trainer is running in this folder.")
            return
        self.notify("Stopping (SIGINT): the current stage stops; Resume continues it.")

    @on(Button.Pressed, "#resume")
    def action_resume(self) -> None:
        out = self.out_path
        if out is None:
            return
        if read_pidfile(out) is None:  # a run started outside the UI: the same form continues it
            self._plan(start=True)
            return
        try:
            resume_train(out)
        except CaspoError as exc:
            self._fail(str(exc))
            return
        self.state, self.error = "running", None
        self.poll()

    def action_export(self) -> None:
        run = self.run_state
        finished = [r.root for r in run.rounds if r.finished] if run else []
        if not finished:
            self.notify("No finished round to export yet.")
            return
        self.caspo.export_source = finished[-1]
        self.app.switch_mode("export")

    # -- polling ---------------------------------------------------------------------------------

    def poll(self) -> None:
        """Read the run folder and redraw (runs every `CaspoApp.poll_s`)."""
        out = self.out_path
        if out is None or not out.exists():
            self.run_state = None
            self.query_one("#progress", RunProgress).show(None)
            return
        run = read_run(out)
        self.run_state = run
        if self.state not in ("planning", "error") or run.status == "running":
            self.state = "idle" if run.status == "new" else run.status
            if run.status == "failed":
                self.error = run.error
        self.query_one("#progress", RunProgress).show(run)
        for rd in run.rounds:
            if rd.dpo_log:
                self.dpo_logs[rd.index] = list(rd.dpo_log)
        latest = max(self.dpo_logs) if self.dpo_logs else None
        log = self.dpo_logs.get(latest, []) if latest is not None else []
        self.query_one("#spark-loss", MetricSpark).show([r["loss"] for r in log if "loss" in r])
        self.query_one("#spark-margin", MetricSpark).show(
            [r["rewards/margins"] for r in log if "rewards/margins" in r]
        )
        margins = [m.get("dpo/reward_margin") for m in run.metrics]
        self.query_one("#spark-round-margin", MetricSpark).show([float(v) for v in margins if v is not None])
        devs = [m.get("eval/dev_accuracy") for m in run.metrics]
        self.query_one("#spark-dev", MetricSpark).show([float(v) for v in devs if v is not None])
        self.query_one("#log", LogTail).show(tail(out / LOG_FILE))
        running = run.status == "running"
        self.query_one("#stop", Button).disabled = not running
        self.query_one("#start", Button).disabled = running
        self.query_one("#resume", Button).disabled = running or run.status in ("new", "done")
