"""The `caspo-lite` command line: a thin Typer layer over the library.

This is the only module of the library that imports typer. Every command body calls library
functions; `friendly` turns the library's `CaspoError`s into one red line and a non-zero exit
(tracebacks stay for real bugs). Heavy imports (torch, llama_cpp, trl) happen inside the
commands so `caspo-lite --help` is fast.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from caspo_lite.confidence import SIGNALS
from caspo_lite.engines import ENGINES
from caspo_lite.errors import CaspoError
from caspo_lite.event_stream import PROTOCOL, EventStream
from caspo_lite.labeler_registry import LABELERS
from caspo_lite.quiet import quiet_library_warnings
from caspo_lite.registry import prose
from caspo_lite.search import EVAL_DEFAULT_STRATEGIES, STRATEGIES
from caspo_lite.tasks import TASKS

SIGNAL_CHOICES = prose(SIGNALS)

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="caspo-lite",
    help=(
        "CASPO training and CaT (confidence-aware thought) inference for reasoning LLMs "
        "on one GPU or a laptop.\n\n"
        "Start with `caspo-lite demo`; `caspo-lite models --check` verifies the built-in models."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one red line to stderr and return the Exit to raise."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


_stream: EventStream | None = None  # set by a command run with --json (its machine protocol)


def _open_stream(as_json: bool) -> EventStream | None:
    """With --json: events on stdout (`caspo_lite.event_stream`), starting with ``started``."""
    global _stream
    _stream = EventStream() if as_json else None
    if _stream is not None:
        _stream.emit("started", protocol=PROTOCOL, argv=sys.argv[1:])
    return _stream


def friendly(fn: F) -> F:
    """Turn a CaspoError (a user mistake or missing resource) into one line + exit code.

    Under --json the same error is also an ``error`` event (code, kind, message) on stdout.
    """

    def failed(message: str, code: int, kind: str) -> typer.Exit:
        if _stream is not None:
            _stream.error(code, kind, message)
        return fail(message, code)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _stream
        _stream = None
        try:
            return fn(*args, **kwargs)
        except CaspoError as exc:
            raise failed(str(exc), exc.exit_code, type(exc).__name__) from None
        except KeyboardInterrupt:
            message = "interrupted; rerun the same command to resume where it stopped"
            raise failed(message, 130, "Interrupted") from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        from caspo_lite import __version__

        typer.echo(f"caspo-lite {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Keeps `caspo-lite` a command group; every command runs without dependencies' known noise."""
    quiet_library_warnings()


def echo_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


# --- models (foundation) ----------------------------------------------------------------------


@app.command()
@friendly
def models(
    check: Annotated[bool, typer.Option("--check", help="Load each built-in model, run one token.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the built-in models (and with --check, prove they load and run offline)."""
    from rich.console import Console
    from rich.table import Table

    from caspo_lite.model_check import check_builtin_models, list_builtin_models

    if check and not as_json:
        note = "checking built-in models (the first run builds tiny ~30 s and SmolLM2's HF view ~1 min)"
        with Console(stderr=True).status(note):
            rows = check_builtin_models()
    else:
        rows = check_builtin_models() if check else list_builtin_models()
    if as_json:
        echo_json(rows)
    elif not check:
        table = Table(title="caspo-lite built-in models")
        for col in ("name", "description", "status"):
            table.add_column(col)
        for row in rows:
            table.add_row(row["name"], row["description"], row["status"])
        Console().print(table)
    else:
        colors = {"ok": "green", "missing": "yellow", "failed": "red"}
        table = Table(title="caspo-lite models --check (next token after 'What is 2 + 3?')")
        for col in ("name", "status", "llama.cpp", "transformers", "agree", "seconds"):
            table.add_column(col, justify="right" if col == "seconds" else "left")
        for r in rows:
            status = f"[{colors.get(r['status'], 'red')}]{r['status']}[/]"
            agree = "yes" if r["agree"] else ("no" if r["status"] == "ok" else "")
            table.add_row(r["name"], status, r["llama.cpp"], r["transformers"], agree, f"{r['seconds']:.1f}")
        console = Console()
        console.print(table)
        for r in rows:
            files = "  ".join(f"{k}: {r[k]}" for k in ("gguf", "hf") if r[k])
            console.print(f"  {r['name']}: {files}  {r['detail']}".rstrip(), highlight=False, soft_wrap=True)
    if check and any(r["status"] == "failed" for r in rows):
        raise typer.Exit(1)


# --- solve / demo (inference) -------------------------------------------------------------------


def _search_options(**given: Any) -> Any:
    """SearchSection defaults overridden by the options the user gave (None = not given)."""
    from dataclasses import replace

    from caspo_lite.config import SearchSection

    return replace(SearchSection(), **{k: v for k, v in given.items() if v is not None})


@app.command()
@friendly
def solve(
    question: Annotated[str | None, typer.Argument(help="The problem text (omit with --task).")] = None,
    model: Annotated[str, typer.Option(help="Built-in name, .gguf, HF folder or hub id.")] = "smollm2-135m",
    strategy: Annotated[str, typer.Option(help=f"{STRATEGIES.choices()}.")] = "cat",
    k: Annotated[int | None, typer.Option("--k", help="Budget: paths started.")] = None,
    branch_factor: Annotated[int | None, typer.Option(help="CaT: children per fork.")] = None,
    beam_width: Annotated[int | None, typer.Option(help="CaT: most paths alive at once.")] = None,
    prune_threshold: Annotated[float | None, typer.Option(help="Prune below; < 0 = warm-up pctl.")] = None,
    prune_percentile: Annotated[float | None, typer.Option(help="Warm-up percentile (0-100).")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (>= 0).")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Max new tokens per path.")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    signal: Annotated[str, typer.Option(help=f"{SIGNAL_CHOICES}.")] = "entropy",
    task: Annotated[str | None, typer.Option(help="Solve this task's problems (or QUESTION as it).")] = None,
    n: Annotated[int, typer.Option(help="With --task and no QUESTION: how many problems.")] = 20,
    data: Annotated[Path | None, typer.Option(help="Data file for file tasks (e.g. --task jsonl).")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: all cores).")] = None,
    gpu_layers: Annotated[int, typer.Option(help="Layers to offload to a GPU (GPU builds only).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    abstain_below: Annotated[
        float | None, typer.Option(help="Say 'not sure' below this P(correct) (--json keeps the guess).")
    ] = None,
) -> None:
    """Solve one question (or --task T --n 20 problems) with a confidence-aware search."""
    from caspo_lite.config import ConfidenceSection
    from caspo_lite.engines import load_engine
    from caspo_lite.search import get_strategy
    from caspo_lite.solve import question_prompt, result_dict, solve_batch, solve_question, summary_dict

    search = _search_options(
        strategy=strategy,
        k=k,
        branch_factor=branch_factor,
        beam_width=beam_width,
        prune_threshold=prune_threshold,
        prune_percentile=prune_percentile,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
    )
    confidence = ConfidenceSection(signal=signal)
    get_strategy(strategy, search, confidence)  # validate before loading the model
    if question is None and task is None:
        raise fail('give a QUESTION (e.g. caspo-lite solve "What is 12 + 5 - 3?") or --task NAME', 2)
    if question is not None:
        question_prompt(question, task, data)  # empty question / unknown task: fail before loading
    elif task is not None:
        from caspo_lite.tasks import get_task

        get_task(task, path=str(data) if data else None).load(n=1)  # bad task / rows: fail before loading
    from caspo_lite.answer_confidence import check_abstain
    from caspo_lite.calibration import load_answer_calibration
    from caspo_lite.solve import with_confidence

    check_abstain(abstain_below)
    calibration = load_answer_calibration(model, strategy)
    engine = load_engine(model, n_threads=threads, n_gpu_layers=gpu_layers)
    try:
        if question is None:
            from rich.console import Console

            console = Console(stderr=True)

            def progress(row: Any) -> None:
                with_confidence(row, calibration, abstain_below)
                if not as_json:
                    mark = "[green]ok[/]" if row.correct else "[red]--[/]"
                    answer, gold = row.result.answer, row.gold
                    console.print(f"{mark} {row.problem_id}: {answer} (gold {gold})", highlight=False)

            summary = solve_batch(
                engine, task, n, strategy, search, confidence, seed=seed or 0, on_solved=progress, path=data
            )
            if as_json:
                echo_json(summary_dict(summary))
                return
            from caspo_lite.render import render_batch_table

            Console().print(render_batch_table([summary], f"{task}: {len(summary.rows)} problems, {model}"))
            return
        solved = solve_question(
            engine, question, strategy, search, confidence, task_name=task, task_path=data
        )
        with_confidence(solved, calibration, abstain_below)
    finally:
        engine.close()
    if as_json:
        echo_json(result_dict(solved))
        return
    from rich.console import Console

    from caspo_lite.render import render_summary, render_tree

    console = Console()
    console.print(render_tree(solved))
    console.print(render_summary(solved))


@app.command()
@friendly
def demo(
    model: Annotated[str, typer.Option(help="Model (and base of the CASPO round).")] = "smollm2-135m",
    n: Annotated[int, typer.Option(help="Arith problems to solve, from the test split.")] = 6,
    k: Annotated[int, typer.Option("--k", help="Budget for sc and cat.")] = 6,
    max_tokens: Annotated[int, typer.Option(help="Max new tokens per path.")] = 96,
    seed: Annotated[int, typer.Option(help="Problem and sampling seed.")] = 0,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: all cores).")] = None,
    train: Annotated[
        bool, typer.Option("--train/--no-train", help="One CASPO round, then compare (--no-train: ~1-2 min).")
    ] = True,
    out: Annotated[Path | None, typer.Option("--out", help="Round's run folder (default runs/demo).")] = None,
    recipe: Annotated[Path | None, typer.Option("--recipe", help="Recipe of the round.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override: --set dpo.max_steps=4")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """CaT vs greedy vs self-consistency, then one short CASPO round and CaT again (under 15 min on 2 cores).

    Reruns with the same --out reuse the finished round instead of training again.
    """
    import contextlib
    import logging

    from rich.console import Console

    from caspo_lite.demo import demo_dict, round_effect, run_full_demo
    from caspo_lite.paths import runs_dir
    from caspo_lite.render import render_demo_table
    from caspo_lite.search import get_strategy

    search = _search_options(k=k, max_tokens=max_tokens, seed=seed, beam_width=4, branch_factor=2)
    get_strategy("cat", search)
    out = out or runs_dir() / "demo"
    progress, on_event = _train_renderer() if train and not as_json else (None, None)
    console = progress.console if progress is not None else Console(stderr=True)
    if train:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

    def on_solved(name: str, row: Any) -> None:
        if not as_json:
            mark = "[green]ok[/]" if row.correct else "[red]--[/]"
            r = row.result
            line = f"{name:>13} {mark} {row.problem_id}: {r.answer} (gold {row.gold}), {r.n_tokens} tok"
            console.print(line, highlight=False)

    titles = {
        "base": "preparing the base model (HF view + lossless GGUF, cached after the first run)",
        "before": "before: greedy, self-consistency and CaT with the base model",
        "train": f"one CASPO round into {out} (reused when already finished)",
        "after": "after: greedy and CaT with the round's policy",
    }

    def on_phase(name: str) -> None:
        if not as_json and train:
            console.rule(titles.get(name, name))

    with progress if progress is not None else contextlib.nullcontext():
        report = run_full_demo(
            model,
            n=n,
            train=train,
            out=out,
            recipe=recipe,
            overrides=set_ or [],
            search=search,
            seed=seed,
            threads=threads,
            on_solved=on_solved,
            on_event=on_event,
            on_phase=on_phase,
        )
    if as_json:
        echo_json(demo_dict(report))
        return
    what = "before vs after one CASPO round" if train else f"CaT vs greedy vs self-consistency@{k}"
    Console().print(render_demo_table(report, f"{what}: {n} arith problems (test split), {model}"))
    for line in round_effect(report.round_summary):  # what the round measurably changed (#13)
        typer.echo(line)
    if report.run_dir is not None:
        phases = ", ".join(f"{name} {sec:.0f}s" for name, sec in report.phases.items())
        typer.echo(f"run folder: {report.run_dir} (policy {report.after_model}); time: {phases}")


# --- export / inspect (quant) -------------------------------------------------------------------


@app.command()
@friendly
def export(
    source: Annotated[
        str, typer.Argument(help="Built-in name, HF folder, hub id, LoRA adapter folder or training round.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="A .gguf file (one quant) or a folder.")],
    quant: Annotated[
        list[str],
        typer.Option(
            "--quant", "-q", help="f32|bf16|f16|q8_0|q4_0|q4_k_m|q5_k_m|q6_k; repeat or comma-separate."
        ),
    ] = ["f16"],  # noqa: B006 - typer reads the default, never mutates it
    base: Annotated[
        str | None, typer.Option("--base", help="Base model of an adapter (default: from adapter_config).")
    ] = None,
    pre: Annotated[str | None, typer.Option("--pre", help="Force llama.cpp's pre-tokenizer name.")] = None,
    ollama: Annotated[bool, typer.Option("--ollama", help="Also write a Modelfile beside GGUFs.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Events as JSON lines on stdout: one per file, then the result.")
    ] = False,
) -> None:
    """Export a model to GGUF (our writer + llama.cpp quantization), with provenance metadata."""
    from caspo_lite.quant.export import export as run_export
    from caspo_lite.quant.quantize import format_groups

    stream = _open_stream(as_json)

    def progress(item: Any) -> None:
        if stream is not None:
            stream.emit(
                "file",
                path=str(item.path),
                quant=item.quant,
                bytes=item.size,
                seconds=round(item.seconds, 2),
                types=item.groups,
            )
        else:
            typer.echo(f"{item.path}  {item.quant}  {item.size / 2**20:.1f} MB  {item.seconds:.1f} s")
            typer.echo(f"  types: {format_groups(item.groups)}")

    result = run_export(source, out, quant, base=base, pre=pre, ollama=ollama, on_file=progress)
    if stream is not None:
        stream.emit("finished", result=result.to_dict())
        return
    typer.echo(f"source sha256 {result.sha256}")
    for m in result.modelfiles:
        typer.echo(f"ollama: ollama create NAME -f {m}")


@app.command()
@friendly
def inspect(
    file: Annotated[Path, typer.Argument(help="A .gguf file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show a GGUF's architecture, size, tensor types, context length, chat template and provenance."""
    from caspo_lite.quant.inspect import format_params, format_size, inspect_gguf

    info = inspect_gguf(file)
    if as_json:
        echo_json(info)
        return
    types = ", ".join(f"{t} x{n}" for t, n in info["tensor_types"].items())
    lines = [
        f"file            {info['file']}",
        f"size            {format_size(info['size_bytes'])}",
        f"architecture    {info['architecture']}  ({info['block_count']} blocks, "
        f"hidden {info['embedding_length']})",
        f"parameters      {format_params(info['parameters'])}  in {info['tensors']} tensors",
        f"file type       {info['file_type']}",
        f"tensor types    {types}",
        f"context length  {info['context_length']}",
        f"vocabulary      {info['vocab_size']} tokens, pre-tokenizer {info['tokenizer_pre']}",
        f"chat template   {'yes' if info['chat_template'] else 'no'}",
    ]
    lines += [f"{k:<15} {v}" for k, v in info["provenance"].items()]
    typer.echo("\n".join(lines))


# --- train / data (training) -------------------------------------------------------------------

data_app = typer.Typer(help="Datasets a training run produced.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _train_renderer() -> tuple[Any, Callable[[Any], None]]:
    """A Rich progress display (bar + ETA per stage) and the on_event callback that drives it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    tasks: dict[tuple[int, str], Any] = {}

    def on_event(ev: Any) -> None:
        key = (ev.round, ev.stage)
        if ev.kind == "skip":
            progress.console.print(f"round {ev.round} {ev.stage}: already done, skipped")
        elif ev.kind == "stage":
            tasks[key] = progress.add_task(f"round {ev.round} {ev.stage}", total=None)
        elif ev.kind == "progress" and key in tasks:
            progress.update(tasks[key], completed=ev.done, total=ev.total or None)
        elif ev.kind == "done" and key in tasks:
            t = progress.tasks[tasks[key]]
            progress.update(tasks[key], completed=t.total or 1, total=t.total or 1)
        elif ev.kind == "round":
            progress.console.print(round_line(ev.round, ev.info))
        elif ev.kind == "stop":
            progress.console.print(f"early stop after round {ev.round}: {ev.info.get('reason')}")

    return progress, on_event


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def round_line(index: int, s: dict[str, Any]) -> str:
    """A finished round in one line; a figure the round did not measure is left out, not 'None'."""
    pairs = f"pairs {s.get('pairs/total')} (A {s.get('pairs/A')}, B {s.get('pairs/B')})"
    parts = [f"[bold]round {index}[/bold]: {pairs}"]
    if s.get("dpo/reward_margin") is not None:
        held = ""
        if s.get("dpo/heldout_margin") is not None:
            held = f" (held-out {_fmt(s['dpo/heldout_margin'])}, n={s.get('dpo/n_heldout')})"
        parts.append(f"DPO reward margin {_fmt(s['dpo/reward_margin'])}{held}")
    if s.get("eval/dev_accuracy") is not None:
        parts.append(f"dev accuracy {_fmt(s['eval/dev_accuracy'])}")
    conf = [
        f"{name} {_fmt(s[key])}"
        for name, key in (("correct", "steps/mean_conf_correct"), ("wrong", "steps/mean_conf_wrong"))
        if s.get(key) is not None
    ]
    if conf:
        parts.append("step conf " + " vs ".join(conf))
    return " | ".join(parts)


@app.command()
@friendly
def train(
    recipe: Annotated[Path, typer.Option("--recipe", help="TOML recipe (see recipes/).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override: --set dpo.beta=0.2")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default runs/<recipe>).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate, print plan + memory.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Events as JSON lines on stdout (docs/design.md §2.7).")
    ] = False,
) -> None:
    """Iterative CASPO: sample -> label -> confidence-filtered step pairs -> DPO, per round; resumable."""
    import logging

    from caspo_lite.paths import runs_dir
    from caspo_lite.train.config import load_train_config

    stream = _open_stream(as_json)
    cfg = load_train_config(recipe, set_ or [])
    out = out or runs_dir() / recipe.stem
    if dry_run:
        from caspo_lite.train.plan import plan

        if stream is not None:
            stream.emit("plan", plan=plan(cfg, out))
        else:
            echo_json(plan(cfg, out))
        return
    from caspo_lite.train.rounds import train as run_train

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our Rich bars report progress; no per-load tqdm lines
    if stream is not None:
        history = run_train(cfg, out, stream.train_event)
        stream.emit("finished", rounds=len(history), out=str(out))
        return
    progress, on_event = _train_renderer()
    with progress:
        history = run_train(cfg, out, on_event)
    typer.echo(f"done: {len(history)} round(s) in {out} (metrics: {out / 'metrics.jsonl'})")


@data_app.command("export")
@friendly
def data_export(
    round_dir: Annotated[Path, typer.Argument(help="A round folder, e.g. runs/NAME/round-1.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or hf (a datasets folder).")] = "jsonl",
    out: Annotated[Path | None, typer.Option("--out", help="Output path (default: in the round).")] = None,
) -> None:
    """Publish a round's pairs as a step-wise preference dataset with confidence annotations."""
    from caspo_lite.train.dataset import export_pairs

    target, n = export_pairs(round_dir, fmt, out)
    typer.echo(f"wrote {n} pairs to {target}")


# --- eval (evaluation) --------------------------------------------------------------------------


@app.command("eval")
@friendly
def eval_cmd(
    model: Annotated[list[str], typer.Option("--model", "-m", help="Model reference; repeat for several.")],
    task: Annotated[str, typer.Option(help=f"Task: {TASKS.choices()}.")] = "arith",
    data: Annotated[Path | None, typer.Option("--data", help="Task data file (JSONL tasks).")] = None,
    level: Annotated[
        str | None, typer.Option(help="arith difficulty level (default, medium, hard, ...).")
    ] = None,
    prompt_style: Annotated[
        str | None,
        typer.Option(
            help="Prompt format: chat, fewshot, fewshot-train (word problems); default: the task's."
        ),
    ] = None,
    strategies: Annotated[str, typer.Option(help=f"Comma-separated, of: {','.join(STRATEGIES)}.")] = ",".join(
        EVAL_DEFAULT_STRATEGIES
    ),
    k: Annotated[int, typer.Option(help="Budget: paths per problem (samples; cat: branches).")] = 8,
    n: Annotated[int, typer.Option(help="Problems to evaluate (seeded sample).")] = 200,
    seed: Annotated[int, typer.Option(help="Seed for problem selection and sampling.")] = 0,
    split: Annotated[str, typer.Option(help="Task split.")] = "test",
    out: Annotated[Path, typer.Option(help="Output folder (rerun the same command to resume).")] = Path(
        "runs/eval"
    ),
    engine: Annotated[str, typer.Option(help=f"Engine kind: {ENGINES.choices()}.")] = "llama_cpp",
    labels: Annotated[bool, typer.Option(help="Label steps (step reliability, step AUROC).")] = True,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key, e.g. search.max_tokens=128.")
    ] = None,
    abstain_below: Annotated[
        float | None, typer.Option(help="Also report coverage and accuracy answering only P >= this.")
    ] = None,
) -> None:
    """Evaluate models x strategies on a task: accuracy, calibration, step AUROC, cost; resumable."""
    from caspo_lite.answer_confidence import check_abstain
    from caspo_lite.config import load_config
    from caspo_lite.eval.report import CONSOLE_COLUMNS, table_rows
    from caspo_lite.eval.runner import EvalSpec, iter_eval, write_outputs

    cfg = load_config(None, overrides or [])
    spec = EvalSpec(
        models=model,
        task=task,
        task_path=str(data) if data else None,
        level=level,
        prompt_style=prompt_style,
        strategies=[s.strip() for s in strategies.split(",") if s.strip()],
        out=out,
        k=k,
        n=n,
        seed=seed,
        split=split,
        engine_kind=engine,
        search=cfg.search,
        confidence=cfg.confidence,
        steps=cfg.steps,
        label_steps=labels,
        abstain_below=check_abstain(abstain_below),
    )
    _eval_with_progress(iter_eval(spec))
    write_outputs(spec.out, spec.meta())
    header, rows = table_rows(_eval_groups(spec.out, abstain_below), CONSOLE_COLUMNS)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"caspo-lite eval: {task} (k={k}; every column in report.md)")
    for col in header:
        table.add_column(col, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:  # piped/captured: do not squeeze the table into 80 columns
        console = Console(width=160)
    console.print(table)
    console.print(f"wrote {spec.out}/summary.json, report.md, problems.jsonl and plots")


def _eval_groups(out: Path, abstain_below: float | None = None) -> list[Any]:
    from caspo_lite.eval.report import summarize
    from caspo_lite.eval.runner import RECORDS_FILE, load_calibrations, read_records

    records = read_records(out / RECORDS_FILE)
    return summarize(records, load_calibrations(records), abstain_below)


def _eval_with_progress(events: Any) -> None:
    """Render eval events as a Rich progress bar with ETA (stderr, so stdout stays the table)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from caspo_lite.eval.runner import EvalPlanned, ModelLoaded, ProblemEvaluated

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        bar = progress.add_task("eval", total=None)
        tally: dict[tuple[str, str], list[int]] = {}  # (model, strategy) -> [right, seen]
        for ev in events:
            if isinstance(ev, EvalPlanned):
                progress.update(bar, total=ev.total, completed=ev.done)
            elif isinstance(ev, ModelLoaded):
                progress.update(bar, description=f"{ev.model}")
            elif isinstance(ev, ProblemEvaluated):
                t = tally.setdefault((ev.model, ev.strategy), [0, 0])
                t[0] += int(ev.correct)
                t[1] += 1
                desc = f"{ev.model} {ev.strategy}: {t[0]}/{t[1]} right"
                progress.update(bar, advance=1, description=desc)


# --- tui / chat ---------------------------------------------------------------------------------


@app.command("tui")
@friendly
def tui_command() -> None:
    """Open the terminal app: chat, train (start/stop/resume runs), export rounds to GGUF, past runs."""
    from caspo_lite.tui.app import make_app
    from caspo_lite.tui.settings import settings_path

    make_app(mode="home", settings_file=settings_path()).run()


@app.command("chat")
@friendly
def chat_command(
    model: Annotated[str | None, typer.Option(help="Built-in name or .gguf (default smollm2-135m).")] = None,
    strategy: Annotated[str | None, typer.Option(help=f"{STRATEGIES.choices()} (def. cat).")] = None,
    k: Annotated[int | None, typer.Option("--k", help="Budget: paths started (default 8).")] = None,
    abstain_below: Annotated[
        float | None, typer.Option(help="Answers under this P(correct) read 'not sure'.")
    ] = None,
) -> None:
    """Chat with a model and watch the confidence-aware search tree grow (F2 settings, Esc cancels)."""
    from caspo_lite.answer_confidence import check_abstain
    from caspo_lite.tui.app import make_app
    from caspo_lite.tui.settings import load_settings, settings_path

    settings = load_settings(settings_path())  # what the user applied last time
    if abstain_below is not None:
        settings = dataclasses.replace(settings, abstain_below=check_abstain(abstain_below))
    make_app(settings, model=model, strategy=strategy, k=k, mode="chat", settings_file=settings_path()).run()


# --- calibrate (answer confidence -> P(correct)) ------------------------------------------------


@app.command("calibrate")
@friendly
def calibrate_command(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model reference to calibrate.")
    ] = "smollm2-135m",
    task: Annotated[str, typer.Option(help="Task whose dev problems to fit on.")] = "arith",
    split: Annotated[str, typer.Option(help="Split to fit on (never heldout).")] = "dev",
    n: Annotated[int, typer.Option(help="Dev problems to evaluate.")] = 200,
    strategy: Annotated[str, typer.Option(help="Comma-separated strategies to calibrate.")] = "cat",
    k: Annotated[int, typer.Option(help="Budget: paths per problem (as in eval).")] = 8,
    seed: Annotated[int, typer.Option(help="Seed for problem selection and sampling.")] = 0,
    data: Annotated[Path | None, typer.Option("--data", help="Task data file (JSONL tasks).")] = None,
    from_dir: Annotated[
        Path | None, typer.Option("--from", help="Fit from this eval folder's answers (no sampling).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Where the dev eval goes (default: data dir).")] = None,
    engine: Annotated[str, typer.Option(help=f"Engine kind: {ENGINES.choices()}.")] = "llama_cpp",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key, e.g. search.max_tokens=128.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Fit a map from answer confidence to P(correct) on dev problems and store it with the model."""
    from caspo_lite.calibrate import calibrate
    from caspo_lite.config import load_config

    cfg = load_config(None, overrides or [])
    result = calibrate(
        model,
        task,
        split,
        n,
        [s.strip() for s in strategy.split(",") if s.strip()],
        k=k,
        seed=seed,
        from_dir=from_dir,
        out=out,
        task_path=str(data) if data else None,
        engine_kind=engine,
        search=cfg.search,
        confidence=cfg.confidence,
        steps=cfg.steps,
        on_event=None if from_dir is not None else _ProgressSink(),
    )
    if as_json:
        echo_json({"path": str(result.path), "calibrations": [c.to_json() for c in result.calibrations]})
        return
    for cal in result.calibrations:
        fit = cal.fit
        typer.echo(
            f"{cal.strategy}: {cal.describe()} ({fit['n_correct']}/{fit['n']} right; CV log-loss "
            f"{fit['cv_log_loss']:.3f} vs base rate {fit['base_rate_log_loss']:.3f})"
        )
        for name, c in cal.candidates.items():
            auc = "n/a" if c["auroc"] is None else f"{c['auroc']:.3f}"
            losses = ", ".join(f"{m} {v:.3f}" for m, v in c["cv_log_loss"].items())
            typer.echo(f"  signal {name:<13} answer AUROC {auc}   CV log-loss: {losses}")
    typer.echo(f"wrote {result.path}")


class _ProgressSink:
    """Counts dev problems on stderr (the eval loop's events) without a progress-bar dependency."""

    def __init__(self) -> None:
        self.done = self.total = 0

    def __call__(self, ev: Any) -> None:
        from caspo_lite.eval.runner import EvalPlanned, ProblemEvaluated

        if isinstance(ev, EvalPlanned):
            self.total, self.done = ev.total, ev.done
        elif isinstance(ev, ProblemEvaluated):
            self.done += 1
            if self.done % 10 == 0 or self.done == self.total:
                typer.echo(f"dev answers: {self.done}/{self.total}", err=True)


# --- label (issue 12) --------------------------------------------------------------------------


@app.command("label")
@friendly
def label_command(
    task: Annotated[str, typer.Option(help=f"Task family the solutions answer: {TASKS.choices()}.")],
    input_: Annotated[Path, typer.Option("--input", help="JSONL: question, answer, solution or steps.")],
    out: Annotated[Path, typer.Option("--out", help="JSONL: each row plus steps with label and reason.")],
    labeler: Annotated[str, typer.Option(help=f"{LABELERS.choices()}.")] = "verify",
    data: Annotated[Path | None, typer.Option(help="Data folder or file of the task (file tasks).")] = None,
    model: Annotated[str, typer.Option(help="rollout/judge: the model to run.")] = "smollm2-135m",
    k: Annotated[int, typer.Option("--k", help="rollout: completions per step.")] = 4,
    max_tokens: Annotated[int, typer.Option(help="rollout: max tokens per completion.")] = 192,
    seed: Annotated[int, typer.Option(help="rollout: sampling seed.")] = 0,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: all cores).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary.")] = False,
) -> None:
    """Label the steps of solutions you bring: correct / wrong / unknown, and the check that decided."""
    from caspo_lite.label_file import explainer, label_file
    from caspo_lite.tasks import get_task

    LABELERS[labeler]  # an unknown name fails here, before any file is read
    task_ = get_task(task, path=str(data) if data else None)

    def engine() -> object:
        from caspo_lite.engines import load_engine

        return load_engine(model, n_threads=threads)

    options = {"k": k, "max_tokens": max_tokens, "seed": seed} if "rollout" in labeler else {}
    result = label_file(task_, input_, out, explainer(labeler, engine, **options))
    if as_json:
        echo_json({"out": str(out), **result})
        return
    counts = ", ".join(f"{name} {n}" for name, n in sorted(result["labels"].items()))
    reasons = ", ".join(f"{name} {n}" for name, n in sorted(result["reasons"].items(), key=lambda kv: -kv[1]))
    typer.echo(f"labelled {result['rows']} solutions -> {out}\nsteps: {counts}\nreasons: {reasons}")


@app.command("serve")
@friendly
def serve_command(
    model: Annotated[str, typer.Option(help="Built-in name, .gguf, HF folder or hub id.")] = "smollm2-135m",
    strategy: Annotated[str, typer.Option(help=f"Default search: {STRATEGIES.choices()}.")] = "cat",
    host: Annotated[str, typer.Option(help="Address to bind (default: localhost only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Concurrent searches: one llama.cpp context each.")] = 1,
    api_key: Annotated[
        str | None, typer.Option(help="Require 'Authorization: Bearer KEY'.", envvar="CASPO_LITE_API_KEY")
    ] = None,
    k: Annotated[int | None, typer.Option("--k", help="Default budget: paths started.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Default max new tokens per path.")] = None,
    max_k: Annotated[int, typer.Option(help="Largest K a request may ask for.")] = 64,
    queue: Annotated[int, typer.Option(help="Requests that may wait; beyond them a 503.")] = 16,
    ctx: Annotated[int, typer.Option(help="Context size (tokens) of each worker.")] = 8192,
    threads: Annotated[int | None, typer.Option(help="llama.cpp threads per worker (def. cores/N).")] = None,
    gpu_layers: Annotated[int, typer.Option(help="Layers to offload to a GPU (GPU builds only).")] = 0,
) -> None:
    """Serve a model with confidence-aware search behind an OpenAI-compatible API (/v1/...)."""
    from caspo_lite.serve.jobs import ServeDefaults
    from caspo_lite.serve.schemas import ServeLimits
    from caspo_lite.serve.server import ServeSettings, serve

    search = _search_options(strategy=strategy, k=k, max_tokens=max_tokens)
    limits = ServeLimits(max_k=max_k, queue_size=queue, max_tokens=max(1024, search.max_tokens))
    settings = ServeSettings(model, host, port, workers, threads, ctx, gpu_layers, api_key)
    serve(settings, ServeDefaults(search=search), limits)


@app.command("calibrate-cat")
@friendly
def calibrate_cat_command(
    model: Annotated[
        str, typer.Option(help="Built-in name, .gguf, round folder or HF folder.")
    ] = "smollm2-135m",
    task: Annotated[str, typer.Option(help="Task whose dev problems calibrate.")] = "arith",
    data: Annotated[Path | None, typer.Option("--data", help="Task data file (JSONL tasks).")] = None,
    n: Annotated[int, typer.Option(help="Dev problems.")] = 50,
    k: Annotated[int, typer.Option("--k", help="Paths sampled per problem.")] = 8,
    split: Annotated[str, typer.Option(help="dev or train (never heldout/test).")] = "dev",
    seed: Annotated[int, typer.Option(help="Problem selection and sampling seed.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="calibration.json to write (default: the model's).")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: all cores).")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key, e.g. search.max_tokens=128.")
    ] = None,
    from_eval: Annotated[
        Path | None, typer.Option(help="Fit from this eval folder's sc records instead of sampling.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Fit CaT's prune thresholds (section 'cat' of calibration.json) on dev problems."""
    from dataclasses import replace

    from caspo_lite.cat_fit import calibrate_from_eval, calibrate_model
    from caspo_lite.config import load_config

    cfg = load_config(None, overrides or [])
    if from_eval is not None:
        sig, mode = cfg.confidence.signal, cfg.confidence.path_mode
        if out is None:
            from caspo_lite.engines import resolve_gguf
            from caspo_lite.search.cat_calibration import calibration_file_for

            out = calibration_file_for(resolve_gguf(model))
        path, section = calibrate_from_eval(from_eval, out, sig, mode)
    else:
        path, section = calibrate_model(
            model, task, str(data) if data else None, n, split, seed,
            replace(cfg.search, k=k, seed=seed), cfg.confidence, cfg.steps, out, threads,
        )  # fmt: skip
    if as_json:
        echo_json({"path": str(path), "cat": section})
        return
    pct, sec = section["path"], section
    typer.echo(
        f"wrote section 'cat' of {path}: {sec['n_boundaries']} step boundaries on {sec['n_problems']} "
        f"{sec['split']} problems ({sec['signal']}, {sec['path_mode']}); path confidence "
        f"p10 {pct['10']:.3f}, p30 {pct['30']:.3f}, p50 {pct['50']:.3f}, p70 {pct['70']:.3f}"
    )


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
