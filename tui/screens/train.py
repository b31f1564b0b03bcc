"""The train screen: pick a recipe, see the `--dry-run` plan, start/stop/resume, watch the rounds.

Training is never run inside the UI. Start runs ``caspo-lite train --dry-run`` (the plan and
memory estimate, or the recipe's error as one line), then starts ``caspo-lite train`` as a
subprocess in its own session (`caspo_lite.tui.runs.start_train`). From then on the screen only polls
the run folder (`set_interval`), so quitting the app leaves the run going, and opening the
screen on that folder again attaches to it (a pid file plus ``os.kill(pid, 0)``). Stop sends
SIGINT; Resume starts the same command again and the trainer continues at the first
unfinished stage.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.timer import Timer
from textual.widgets import Button, Footer, Input, Select, Static

from caspo_lite.errors import CaspoError
from caspo_lite.tui.messages import AttachRun
from caspo_lite.tui.runs import ProgressRates, RunState, read_config, read_run, tail
from caspo_lite.tui.screens.base import CaspoScreen
from caspo_lite.tui.train_process import (
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
from caspo_lite.tui.widgets.log_tail import LogTail
from caspo_lite.tui.widgets.metric_spark import MetricSpark
from caspo_lite.tui.widgets.run_progress import RunProgress

FILL_AFTER_S = 0.8  # a pause in typing the run folder this long fills the form from its run
PLAN_HINT = "Pick a recipe; Start shows its plan, then trains."
# what the CLI prints, said in this screen's terms (the keys that act on it)
UI_WORDS = {
    "error: interrupted; rerun the same command to resume where it stopped": "stopped; press F9 to resume",
}

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


def ui_line(line: str) -> str:
    return UI_WORDS.get(line.strip(), line)


def config_values(config: dict[str, Any]) -> dict[str, str]:
    """MAIN_FIELDS as the form shows them, from a run's own resolved config.toml."""
    out = {}
    for key in MAIN_FIELDS:
        section, name = key.split(".")
        value = config.get(section, {}).get(name) if isinstance(config.get(section), dict) else None
        if value is not None:
            out[key] = str(value)
    return out


def field_id(key: str) -> str:
    return "f-" + key.replace(".", "-").replace("_", "-")


class TrainScreen(CaspoScreen):
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
        self.plan_out: Path | None = None  # the run folder the shown plan is for
        self.loaded_recipe: Path | None = None  # the recipe whose values are in the form
        self.form_run: Path | None = None  # the run folder the form was last filled from
        self.shown_run: Path | None = None  # the run folder the panels show
        self._fill_timer: Timer | None = None
        self.rates = ProgressRates()

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
                yield Static(Text(PLAN_HINT, style="dim"), id="plan-view")
                yield RunProgress(id="progress")
                # two different margins, two names: the trainer's per-step batch figure while
                # DPO runs, and the mean over all of a round's pairs once it has trained
                yield MetricSpark("DPO loss per step", id="spark-loss")
                yield MetricSpark("batch margin per step", id="spark-margin")
                yield MetricSpark("final margin per round", id="spark-round-margin")
                yield MetricSpark("dev accuracy per round", id="spark-dev")
                yield Static(Text("train.log", style="bold"))
                yield LogTail(10, id="log")
        yield Footer()

    def on_mount(self) -> None:
        select = self.query_one("#recipe", Select)
        default = next(
            (p for p in self.recipes if p.stem == "tiny-ci"), self.recipes[0] if self.recipes else None
        )
        if default is not None:
            self._load_fields(default)  # now, not when Select.Changed arrives (it is the same recipe)
            select.value = str(default)
        self.query_one("#recipe", Select).focus()  # Enter opens the recipe list at once
        self.set_interval(self.caspo.poll_s, self.poll)

    def on_attach_run(self, message: AttachRun) -> None:
        """Another screen asked for this run (`CaspoApp.open_train`)."""
        self.attach(message.run_dir)

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
        self.loaded_recipe = recipe
        self.fields = recipe_fields(recipe)
        for key in MAIN_FIELDS:
            self.query_one(f"#{field_id(key)}", Input).value = self.fields.get(key, "")
        self._set_out(self.caspo.runs_root / recipe.stem)

    def _set_out(self, folder: Path) -> None:
        """Point the form at ``folder`` now: fill it from the run there, clear the panels.

        Done here, synchronously, rather than when the input's Changed message arrives: by then
        the user may have typed into a field, and a late refill would blank what they typed.
        """
        self.query_one("#out", Input).value = str(folder)
        self._show_folder(folder)
        self._fill_form()

    @on(Select.Changed, "#recipe")
    def _recipe_picked(self, event: Select.Changed) -> None:
        if event.value is Select.BLANK or Path(str(event.value)) == self.loaded_recipe:
            return  # the recipe already in the form (set on mount or by attach): keep edits
        self.query_one("#recipe-path", Input).value = ""
        self._load_fields(Path(str(event.value)))

    @on(Input.Submitted, "#recipe-path")
    def _recipe_typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self._load_fields(Path(event.value.strip()).expanduser())

    @on(Input.Changed, "#out")
    def _out_changed(self, event: Input.Changed) -> None:
        if event.value != event.input.value:
            return  # a stale message: the folder has changed again since
        self._show_folder(self.out_path)
        # Typing a path passes through its prefixes ("runs/a" on the way to "runs/ab"): fill the
        # form once the user leaves the field, presses Enter, or pauses typing.
        if self._fill_timer is not None:
            self._fill_timer.stop()
        self._fill_timer = self.set_timer(FILL_AFTER_S, self._fill_form)

    @on(Input.Submitted, "#out")
    def _out_submitted(self) -> None:
        self._fill_form()

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        if event.widget.id == "out":
            self._fill_form()

    def _show_folder(self, folder: Path | None) -> None:
        """The panels follow the folder at once: forget what the previous one showed."""
        if folder != self.shown_run:
            self.shown_run = folder
            self.dpo_logs = {}
            self.rates = ProgressRates()
        self.poll()

    def _fill_form(self) -> None:
        """Fill the form from the run the folder field names, once per folder."""
        folder = self.out_path
        if folder == self.form_run:
            return
        self.form_run = folder
        if folder is not None and folder.is_dir():
            self.fill_from_run(folder)

    def fill_from_run(self, run: Path) -> None:
        """Put a run's own recipe and values in the form, so Start / Resume mean that run.

        The recipe comes from the command the UI recorded there; the main fields from the run's
        resolved config.toml (what it really runs with), else that command's --set values. The
        recipe's own values stay the baseline, so the differences become --set again. A field
        being typed in right now is left alone.
        """
        cmd = (read_pidfile(run) or {}).get("cmd") or []
        values: dict[str, str] = {}
        if "--recipe" in cmd and cmd.index("--recipe") + 1 < len(cmd):
            recipe = Path(str(cmd[cmd.index("--recipe") + 1]))
            self.query_one("#recipe-path", Input).value = str(recipe)
            self.loaded_recipe = recipe
            self.fields = recipe_fields(recipe)
            values = dict(self.fields)
            for i, arg in enumerate(cmd[:-1]):  # the --set overrides it ran with
                key, _, value = str(cmd[i + 1]).partition("=")
                if arg == "--set" and key in values:
                    values[key] = value.strip('"')
        values.update(config_values(read_config(run / "config.toml")))
        if not values:
            return  # not a run (yet): keep the form as it is
        focused = self.focused
        for key in MAIN_FIELDS:
            field = self.query_one(f"#{field_id(key)}", Input)
            if key in values and field is not focused:
                field.value = values[key]

    def sets(self) -> list[str]:
        edited = {key: self.query_one(f"#{field_id(key)}", Input).value for key in MAIN_FIELDS}
        return overrides(self.fields, edited)

    def attach(self, run: Path) -> None:
        """Show an existing run folder (and follow its trainer if one is alive).

        The recipe of the command the UI recorded there is put back in the form, so Start
        after a stop means the same run.
        """
        self.form_run = None  # fill even when the form already names this folder
        self._set_out(run)

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
        self.plan, self.plan_out = plan, out
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
        self.notify("Stopping: the current stage stops where it is; F9 resumes it.")

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
        self.caspo.open_export(finished[-1])

    # -- polling ---------------------------------------------------------------------------------

    def poll(self) -> None:
        """Read the run folder and redraw (runs every `CaspoApp.poll_s`).

        Every panel shows the folder the form names, or nothing: a folder without a run clears
        what an earlier folder left there.
        """
        out = self.out_path
        if self.plan_out is not None and self.plan_out != out:  # the plan was for another folder
            self.plan, self.plan_out = None, None
            if self.state != "planning":
                self.query_one("#plan-view", Static).update(Text(PLAN_HINT, style="dim"))
        if out is None or not out.exists():
            self.run_state = None
            if self.state not in ("planning", "error"):
                self.state = "idle"
            self._show(None, out)
            return
        run = read_run(out)
        if not run.config and self.plan is not None and self.plan_out == out:
            # the trainer has not written config.toml yet: the totals are the plan's
            run = dataclasses.replace(run, n_rounds=int(self.plan.get("rounds") or run.n_rounds))
        run = self.rates.apply(run)  # ETAs from progress seen since the (re)start, not before
        self.run_state = run
        if self.state not in ("planning", "error") or run.status == "running":
            self.state = "idle" if run.status == "new" else run.status
            if run.status == "failed":
                self.error = run.error
        self._show(run, out)

    def _show(self, run: RunState | None, out: Path | None) -> None:
        self.query_one("#progress", RunProgress).show(run)
        if run is not None:
            for rd in run.rounds:
                if rd.dpo_log:
                    self.dpo_logs[rd.index] = list(rd.dpo_log)
        latest = max(self.dpo_logs) if self.dpo_logs else None
        log = self.dpo_logs.get(latest, []) if latest is not None else []
        metrics = run.metrics if run is not None else ()
        self.query_one("#spark-loss", MetricSpark).show([r["loss"] for r in log if "loss" in r])
        self.query_one("#spark-margin", MetricSpark).show(
            [r["rewards/margins"] for r in log if "rewards/margins" in r]
        )
        margins = [m.get("dpo/reward_margin") for m in metrics]
        self.query_one("#spark-round-margin", MetricSpark).show([float(v) for v in margins if v is not None])
        devs = [m.get("eval/dev_accuracy") for m in metrics]
        self.query_one("#spark-dev", MetricSpark).show([float(v) for v in devs if v is not None])
        lines = tail(out / LOG_FILE) if run is not None and out is not None else []
        self.query_one("#log", LogTail).show([ui_line(line) for line in lines])
        status = run.status if run is not None else "new"
        running = status == "running"
        self.query_one("#stop", Button).disabled = not running
        self.query_one("#start", Button).disabled = running
        self.query_one("#resume", Button).disabled = running or status in ("new", "done")
