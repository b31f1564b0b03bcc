"""`caspo-lite demo`: CaT before and after one short CASPO round, on the same test-split problems.

Three phases, each timed: (1) greedy / self-consistency / CaT on ``n`` arith test problems with
the base model, (2) one CASPO round from ``recipes/demo-smollm2.toml`` into a run folder (the
ordinary resumable `caspo_lite.train.rounds.train`, so a rerun reuses the finished round), (3)
greedy and CaT again with the round's policy GGUF. With training on, the "before" model is the
round's own starting point (``round-0/policy-*.gguf``, the lossless export of the same weights
that DPO starts from), so before and after differ only by the round, not by quantization.
Without training only phase 1 runs, straight on the model reference (the quick comparison).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caspo_lite.config import SearchSection
from caspo_lite.engines import load_engine
from caspo_lite.errors import ConfigError, ExportError
from caspo_lite.runs import RunDir, round_policy_files
from caspo_lite.search.events import StepDone
from caspo_lite.solve import DEMO_STRATEGIES, BatchSummary, Solved, run_demo, summary_dict
from caspo_lite.train.config import load_train_config, to_toml
from caspo_lite.train.rounds import base_policy
from caspo_lite.train.rounds import train as run_train

log = logging.getLogger(__name__)
DEMO_RECIPE_NAME = "demo-smollm2.toml"
# the source tree's recipes/ (editable install, clone), else ./recipes (a regular install run
# from the clone, as the README does)
DEMO_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / DEMO_RECIPE_NAME


def default_demo_recipe() -> Path:
    local = Path.cwd() / "recipes" / DEMO_RECIPE_NAME
    return DEMO_RECIPE if DEMO_RECIPE.is_file() or not local.is_file() else local


AFTER_STRATEGIES = ("greedy", "cat")


@dataclass
class DemoReport:
    """What the demo measured: the tables, where the models came from, and time per phase."""

    before: list[BatchSummary]
    after: list[BatchSummary] = field(default_factory=list)
    before_model: str = ""
    after_model: str = ""
    run_dir: Path | None = None
    round_summary: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)


def mean_step_confidence(summary: BatchSummary) -> float | None:
    """Mean confidence of every step the strategy wrote (kept and pruned branches alike)."""
    confs = [
        ev.step_confidence for row in summary.rows for ev in row.result.events if isinstance(ev, StepDone)
    ]
    return sum(confs) / len(confs) if confs else None


def demo_config(
    model: str, recipe: Path | None = None, overrides: Sequence[str] = (), threads: int | None = None
):
    """The demo's training config: the recipe with ``model.name`` (and threads) set."""
    path = Path(recipe) if recipe else default_demo_recipe()
    if not path.is_file():
        raise ConfigError(
            f"{path}: demo recipe not found (it lives in the caspo-lite source tree); pass --recipe "
            "recipes/demo-smollm2.toml from a clone, or run `caspo-lite demo --no-train`"
        )
    sets = [f"model.name={model}", *overrides]
    if threads:
        sets.append(f"sample.threads={threads}")
    return load_train_config(path, sets)


def check_run_folder(cfg: Any, out: Path) -> None:
    """Fail before any work when ``out`` holds a run of another config (train() would, later)."""
    run = RunDir(Path(out))
    if run.config.exists() and run.config.read_text(encoding="utf-8") != to_toml(cfg):
        raise ConfigError(
            f"{run.config}: this run folder holds a run with another config (model, recipe or --set); "
            "pass a new --out or delete the folder"
        )


def run_full_demo(
    model: str = "smollm2-135m",
    n: int = 6,
    train: bool = True,
    out: Path = Path("runs/demo"),
    recipe: Path | None = None,
    overrides: Sequence[str] = (),
    search: SearchSection | None = None,
    seed: int = 0,
    threads: int | None = None,
    on_solved: Callable[[str, Solved], None] | None = None,
    on_event: Callable[[Any], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> DemoReport:
    """Before table, one CASPO round (unless ``train`` is False), after table; see the module doc."""
    phase = on_phase or (lambda _name: None)
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    if not train:
        t0 = time.perf_counter()
        phase("before")
        before = _table(
            load_engine(model, n_threads=threads), n, DEMO_STRATEGIES, search, seed, "", on_solved
        )
        return DemoReport(before, before_model=model, phases={"before": time.perf_counter() - t0})

    cfg = demo_config(model, recipe, overrides, threads)
    check_run_folder(cfg, out)
    run = RunDir(Path(out))
    phases: dict[str, float] = {}

    t0 = time.perf_counter()
    phase("base")  # the HF view (SmolLM2: built once, cached) and its lossless GGUF in round-0/
    base = base_policy(cfg, run)
    if base.gguf is None:
        raise ExportError(f"cannot export {base.hf_dir} to GGUF for the demo; see the warning above")
    phases["base"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    phase("before")
    engine = load_engine(base.gguf, n_threads=cfg.sample.threads or threads)
    before = _table(engine, n, DEMO_STRATEGIES, search, seed, "base ", on_solved)
    phases["before"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    phase("train")
    history = run_train(cfg, Path(out), on_event or (lambda _ev: None))
    phases["train"] = time.perf_counter() - t0
    last = run.round(len(history))
    _, policy_gguf = round_policy_files(last.root)
    if policy_gguf is None:
        raise ExportError(f"{last.root}: the round finished without a policy GGUF; rerun the demo to redo it")

    t0 = time.perf_counter()
    phase("after")
    engine = load_engine(policy_gguf, n_threads=cfg.sample.threads or threads)
    after = _table(engine, n, AFTER_STRATEGIES, search, seed, f"{last.root.name} ", on_solved)
    phases["after"] = time.perf_counter() - t0
    return DemoReport(
        before,
        after,
        before_model=str(base.gguf),
        after_model=str(policy_gguf),
        run_dir=Path(out),
        round_summary=history[-1] if history else {},
        phases=phases,
    )


def _table(
    engine: Any,
    n: int,
    strategies: Sequence[str],
    search: SearchSection | None,
    seed: int,
    prefix: str,
    on_solved: Callable[[str, Solved], None] | None,
) -> list[BatchSummary]:
    cb = (lambda name, row: on_solved(prefix + name, row)) if on_solved else None
    try:
        return run_demo(engine, n=n, strategies=strategies, search=search, seed=seed, on_solved=cb)
    finally:
        engine.close()


def round_effect(summary: dict[str, Any]) -> list[str]:
    """What the round measurably changed, with sample sizes (printed under the demo's table).

    Before DPO the policy *is* the reference, so every pair's implicit reward margin is 0 and
    its reward accuracy 0: the after figures on the held-out pairs (never trained on) are the
    change, measured on pairs the optimiser did not see.
    """
    if not summary:
        return []
    lines = []
    n_held = summary.get("dpo/n_heldout") or 0
    if n_held:
        lines.append(
            f"DPO on {n_held} held-out pairs (never trained): reward margin 0 before (policy = reference)"
            f" -> {summary['dpo/heldout_margin']:+.4f} after; pairs ranked right 0% -> "
            f"{summary['dpo/heldout_reward_acc']:.0%}"
        )
    else:
        lines.append("no held-out pairs this round (fewer than 5 pairs): see the training-pair margin")
    if summary.get("dpo/reward_margin") is not None:
        n_train = (summary.get("pairs/total") or 0) - n_held
        lines.append(
            f"DPO on its {n_train} training pairs: reward margin 0 -> {summary['dpo/reward_margin']:+.4f},"
            f" ranked right {summary.get('dpo/reward_accuracy') or 0:.0%}"
        )
    nc, nw = summary.get("steps/n_correct"), summary.get("steps/n_wrong")
    if nc and nw:
        lines.append(
            "step confidence of the round's samples (before DPO): correct "
            f"{summary['steps/mean_conf_correct']:.3f} (n={nc}) vs wrong "
            f"{summary['steps/mean_conf_wrong']:.3f} (n={nw})"
        )
    return lines


def demo_dict(report: DemoReport) -> dict[str, Any]:
    """A JSON-ready view of the report (``--json``)."""

    def rows(summaries: list[BatchSummary]) -> list[dict[str, Any]]:
        return [{**summary_dict(s), "mean_step_confidence": mean_step_confidence(s)} for s in summaries]

    return {
        "before_model": report.before_model,
        "after_model": report.after_model or None,
        "run_dir": str(report.run_dir) if report.run_dir else None,
        "before": rows(report.before),
        "after": rows(report.after),
        "round": report.round_summary,
        "phases_s": {k: round(v, 1) for k, v in report.phases.items()},
    }
