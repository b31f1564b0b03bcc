"""PNG plots of an eval (matplotlib, Agg backend: no display needed).

Four figures: a reliability diagram and a risk-coverage curve per model (one line per
strategy; the raw score dashed beside a calibrated one), accuracy against
generated tokens per strategy (the cost/quality trade-off CaT claims to move), and
step-confidence histograms of correct vs wrong steps (how well a signal separates them).
Each function writes one file and returns its path; a figure with no data still gets a
file that says so, so the report never links to a missing image.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from caspo_lite.eval import metrics as M
from caspo_lite.eval.report import GroupSummary, labelled_steps, short_model

log = logging.getLogger(__name__)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


_ROUND_DIR = re.compile(r"round-\d+")


def model_slug(ref: str) -> str:
    """A file-name part for a model reference: the file stem or folder name of a path.

    A training round's folder (or a GGUF inside one) is named after its run as well, since
    comparing the same round of two runs is the usual case: ``runs/a/round-1`` -> ``a_round-1``.
    """
    path = Path(ref)
    name = path.stem if ref.endswith(".gguf") else path.name
    if _ROUND_DIR.fullmatch(path.name):
        name = f"{path.parent.name}_{path.name}"
    elif ref.endswith(".gguf") and _ROUND_DIR.fullmatch(path.parent.name):
        name = f"{path.parent.parent.name}_{path.parent.name}_{path.stem}"
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return keep.strip("_.") or "model"


def _empty(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)


def reliability_diagram(groups: Sequence[GroupSummary], model: str, out: Path, slug: str = "") -> Path:
    """Accuracy vs mean confidence per bin, one line per strategy, diagonal = perfect."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect")
    drawn = False
    for g in groups:
        if g.model != model:
            continue
        pts = [(b.confidence, b.accuracy, b.count) for b in g.bins if b.count]
        if not pts:
            continue
        xs, ys, ns = zip(*pts, strict=True)
        ece = g.metrics.get("calib/ece")
        label = f"{g.strategy} (ECE {ece.fmt()})" if ece else g.strategy
        if g.calibration is not None:
            label = f"{g.strategy} calibrated (ECE {ece.fmt() if ece else 'n/a'})"
        line = ax.plot(xs, ys, marker="o", label=label)[0]
        raw = [(b.confidence, b.accuracy) for b in g.bins_raw if b.count]
        if g.calibration is not None and raw:  # the raw score beside it, same colour, dashed
            ece_raw = g.metrics.get("calib/ece_raw")
            rx, ry = zip(*raw, strict=True)
            ax.plot(
                rx,
                ry,
                marker="x",
                ls="--",
                color=line.get_color(),
                alpha=0.6,
                label=f"{g.strategy} raw (ECE {ece_raw.fmt() if ece_raw else 'n/a'})",
            )
        drawn = True
    if not drawn:
        _empty(ax, "no confidences in [0, 1]")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
    ax.set_title(f"Reliability: {short_model(model, 48)}", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    path = out / f"reliability_{slug or model_slug(model)}.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def risk_coverage_plot(groups: Sequence[GroupSummary], model: str, out: Path, slug: str = "") -> Path:
    """Risk (error rate) of the answers kept vs the share kept, most confident first, per strategy.

    Beside the reliability diagram: ECE says whether the numbers mean what they say, this says
    whether they sort right answers first (lower curve = better; AURC is its area).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    drawn = False
    for g in groups:
        if g.model != model or not g.risk_coverage:
            continue
        aurc = g.metrics.get("select/aurc")
        cov, risk = zip(*g.risk_coverage, strict=True)
        line = ax.plot(cov, risk, label=f"{g.strategy} (AURC {aurc.fmt() if aurc else 'n/a'})")[0]
        if g.calibration is not None and g.risk_coverage_raw:
            aurc_raw = g.metrics.get("select/aurc_raw")
            rc, rr = zip(*g.risk_coverage_raw, strict=True)
            ax.plot(
                rc,
                rr,
                ls="--",
                color=line.get_color(),
                alpha=0.6,
                label=f"{g.strategy} raw (AURC {aurc_raw.fmt() if aurc_raw else 'n/a'})",
            )
        drawn = True
    if not drawn:
        _empty(ax, "no answers")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="coverage (share answered)", ylabel="risk (share wrong)")
    ax.set_title(f"Risk-coverage: {short_model(model, 44)}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    path = out / f"risk_coverage_{slug or model_slug(model)}.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def accuracy_vs_tokens(groups: Sequence[GroupSummary], out: Path) -> Path:
    """One point per (model, strategy): mean generated tokens per problem vs accuracy."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for g in groups:
        acc, tok = g.metrics.get("eval/accuracy"), g.metrics.get("search/tokens")
        if acc is None or tok is None or acc.value is None or tok.value is None:
            continue
        ax.scatter([tok.value], [acc.value], s=40)
        ax.annotate(
            f"{g.strategy} ({model_slug(g.model)})",
            (tok.value, acc.value),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
        drawn = True
    if not drawn:
        _empty(ax, "no results")
    ax.set(
        xlabel="generated tokens per problem", ylabel="accuracy", title="Accuracy vs cost", ylim=(-0.05, 1.05)
    )
    path = out / "accuracy_vs_tokens.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def step_confidence_histograms(records: Sequence[dict[str, Any]], out: Path, signal: str = "entropy") -> Path:
    """Histograms of step confidence (``signal``) for correct vs wrong steps, one panel per model."""
    plt = _pyplot()
    models = list(dict.fromkeys(r["model"] for r in records)) or ["(none)"]
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        steps = labelled_steps(r for r in records if r["model"] == model)
        drawn = False
        for label, color in ((M.STEP_CORRECT, "tab:green"), (M.STEP_WRONG, "tab:red")):
            vals = [s["signals"].get(signal) for s in steps if s["label"] == label]
            vals = [v for v in vals if v is not None]
            if vals:
                ax.hist(vals, bins=20, alpha=0.55, color=color, label=f"{label} ({len(vals)})")
                drawn = True
        if not drawn:
            _empty(ax, "no labelled steps")
        else:
            ax.legend(fontsize=8)
        ax.set(xlabel=f"step confidence ({signal})", ylabel="steps")
        ax.set_title(short_model(model, 40), fontsize=10)
    path = out / f"step_confidence_{signal}.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def write_plots(groups: Sequence[GroupSummary], records: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """Every plot of the report into ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    paths, used = [], set()
    for model in dict.fromkeys(g.model for g in groups):
        slug = model_slug(model)
        while slug in used:  # two models named alike (e.g. two round folders' gguf)
            slug += "_"
        used.add(slug)
        paths.append(reliability_diagram(groups, model, out, slug))
        paths.append(risk_coverage_plot(groups, model, out, slug))
    paths.append(accuracy_vs_tokens(groups, out))
    paths.append(step_confidence_histograms(records, out))
    log.info("wrote %d plots to %s", len(paths), out)
    return paths
