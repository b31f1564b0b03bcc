"""The tables and plot of RESULTS.md, computed from `caspo-lite eval` folders (never typed in).

Why a script: every number in RESULTS.md must come with the command that made it. This
reads the eval folders' ``problems.jsonl`` (the same pure `summarize` as ``summary.json``),
adds Wilson intervals and paired differences against a base model (`caspo_lite.eval.compare`)
and prints markdown. ECE, Brier, AURC and accuracy at 50% coverage are those of the confidence a
user is shown: the model's answer calibration where it has one (as `caspo-lite eval` applies it),
with the raw ECE and the base-rate Brier in brackets. ``--plot`` also draws accuracy / ECE /
entropy gap per model.

Usage:
    .venv/bin/python bench/results_tables.py main --eval runs/eval-arith-heldout \\
        --label runs/smollm2-arith/round-0=base --label runs/smollm2-arith/round-1="CASPO r1" \\
        --base base --plot docs/results/arith_rounds.png
    .venv/bin/python bench/results_tables.py signals --eval runs/eval-arith-heldout --label ...
    .venv/bin/python bench/results_tables.py strategies --eval runs/eval-arith-heldout \\
        --model runs/smollm2-arith/round-2
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from caspo_lite.eval.compare import discordant_counts, paired_difference, paired_outcomes, wilson_interval
from caspo_lite.eval.report import GroupSummary, markdown_table, ratios_to_baseline, summarize
from caspo_lite.eval.runner import RECORDS_FILE, load_calibrations, read_records
from caspo_lite.eval.trace import STEP_SIGNALS


def _fmt(group: GroupSummary, name: str, digits: int = 3) -> str:
    metric = group.metrics.get(name)
    return metric.fmt(digits) if metric is not None else "n/a"


def gap_value(group: GroupSummary) -> float | None:
    """Mean step entropy of wrong minus correct steps (the paper's "entropy gap"), or None."""
    ok, wrong = group.metrics.get("step/entropy_correct"), group.metrics.get("step/entropy_wrong")
    if ok is None or wrong is None or ok.value is None or wrong.value is None:
        return None
    return wrong.value - ok.value


def _gap(group: GroupSummary) -> str:
    gap = gap_value(group)
    return "n/a" if gap is None else f"{gap:+.3f}"


def parse_labels(pairs: Sequence[str]) -> dict[str, str]:
    """``ref=name`` flags as {ref: name} (a model without a label keeps its reference)."""
    out = {}
    for item in pairs:
        ref, sep, name = item.partition("=")
        if not sep or not ref or not name:
            raise SystemExit(f"error: --label {item!r}: write it as MODEL_REF=NAME")
        out[ref] = name
    return out


def load(eval_dirs: Sequence[Path]) -> list[dict]:
    records = []
    for d in eval_dirs:
        path = d / RECORDS_FILE
        if not path.is_file():
            raise SystemExit(f"error: {path}: no eval records; run `caspo-lite eval --out {d}` first")
        records += read_records(path)
    return records


def outcomes(records: Sequence[dict], model: str, strategy: str) -> dict[str, bool]:
    return {
        r["problem_id"]: bool(r["correct"])
        for r in records
        if (r["model"], r["strategy"]) == (model, strategy)
    }


def main_table(records: Sequence[dict], labels: dict[str, str], base: str | None) -> str:
    """One row per (model, strategy): accuracy with CI, paired change vs base, calibration, steps, cost."""
    name_of = {ref: labels.get(ref, ref) for ref in {r["model"] for r in records}}
    base_ref = next((ref for ref, name in name_of.items() if base in (name, ref)), None)
    if base is not None and base_ref is None:
        raise SystemExit(f"error: --base {base!r}: no model of that name or reference in these eval folders")
    header = ["model", "strategy", "n", "accuracy [95% CI]", "Δ vs base (paired) [95% CI]", "gained/lost",
              "step-rel", "ECE (raw)", "Brier (base rate)", "AUROC", "AURC", "acc@50%", "step AUROC (H)",
              "H correct", "H wrong", "gap", "tokens", "latency s"]  # fmt: skip
    rows = []
    for g in summarize(records, load_calibrations(list(records))):
        mine = outcomes(records, g.model, g.strategy)
        acc = wilson_interval(list(mine.values()))
        delta, moved = "—", "—"
        base_row = outcomes(records, base_ref, g.strategy) if base_ref is not None else {}
        if base_row and g.model != base_ref:
            a, b = paired_outcomes(base_row, mine)
            delta = paired_difference(a, b).fmt(signed=True)
            moved = "{}/{}".format(*discordant_counts(a, b))
        rows.append(
            [
                name_of[g.model],
                g.strategy,
                str(g.n_problems),
                acc.fmt(),
                delta,
                moved,
                _fmt(g, "eval/step_reliability"),
                f"{_fmt(g, 'calib/ece')} ({_fmt(g, 'calib/ece_raw')})",
                f"{_fmt(g, 'calib/brier')} ({_fmt(g, 'calib/brier_base_rate')})",
                _fmt(g, "calib/auroc"),
                _fmt(g, "select/aurc"),
                _fmt(g, "select/acc_at_50"),
                _fmt(g, "step_auroc/entropy"),
                _fmt(g, "step/entropy_correct"),
                _fmt(g, "step/entropy_wrong"),
                _gap(g),
                _fmt(g, "search/tokens", 1),
                _fmt(g, "search/latency_s", 2),
            ]  # fmt: skip
        )
    return markdown_table(header, rows)


def signals_table(records: Sequence[dict], labels: dict[str, str]) -> str:
    """Step-correctness AUROC of every confidence signal, per (model, strategy)."""
    header = ["model", "strategy", "labelled steps", *STEP_SIGNALS]
    rows = [
        [
            labels.get(g.model, g.model),
            g.strategy,
            _fmt(g, "step/n_labelled", 0),
            *(_fmt(g, f"step_auroc/{s}") for s in STEP_SIGNALS),
        ]  # fmt: skip
        for g in summarize(records)
    ]
    return markdown_table(header, rows)


def strategies_table(records: Sequence[dict], model: str) -> str:
    """Accuracy, tokens and latency of each strategy on one model, with ratios to sc."""
    mine = [r for r in records if r["model"] == model]
    if not mine:
        raise SystemExit(f"error: no records for model {model!r} in these eval folders")
    header = ["strategy", "n", "accuracy [95% CI]", "tokens", "latency s", "acc / sc", "tokens / sc",
              "latency / sc"]  # fmt: skip
    rows = []
    for row in ratios_to_baseline(summarize(mine), baseline="sc"):
        acc = wilson_interval(list(outcomes(mine, model, row["strategy"]).values()))
        cells = [row["strategy"], str(acc.n), acc.fmt()]
        cells += [_num(row["search/tokens"], 1), _num(row["search/latency_s"], 2)]
        cells += [_num(row[f"{m}/ratio"], 2) for m in ("eval/accuracy", "search/tokens", "search/latency_s")]
        rows.append(cells)
    return markdown_table(header, rows)


def _num(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def plot_rounds(records: Sequence[dict], labels: dict[str, str], out: Path) -> Path:
    """Accuracy (Wilson CI), ECE and step-entropy gap per model, one colour per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = summarize(records, load_calibrations(list(records)))
    models = list(dict.fromkeys(g.model for g in groups))
    strategies = list(dict.fromkeys(g.strategy for g in groups))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    width = 0.8 / max(1, len(strategies))
    for j, strategy in enumerate(strategies):
        xs, acc, err, ece, gap = [], [], [[], []], [], []
        for i, model in enumerate(models):
            g = next((g for g in groups if (g.model, g.strategy) == (model, strategy)), None)
            if g is None:
                continue
            iv = wilson_interval(list(outcomes(records, model, strategy).values()))
            xs.append(i + (j - (len(strategies) - 1) / 2) * width)
            acc.append(iv.value)
            err[0].append(iv.value - iv.low)
            err[1].append(iv.high - iv.value)
            ece.append(g.metrics["calib/ece"].value or 0.0)
            gap.append(gap_value(g) or 0.0)
        axes[0].bar(xs, acc, width, yerr=err, capsize=3, label=strategy)
        axes[1].bar(xs, ece, width, label=strategy)
        axes[2].bar(xs, gap, width, label=strategy)
    names = [labels.get(m, m) for m in models]
    for ax, title in zip(axes, ("accuracy (95% Wilson CI)", "ECE of the shown confidence (lower is better)",
                                "step entropy gap: wrong - correct (nats)"), strict=True):  # fmt: skip
        ax.set_xticks(range(len(models)), names, rotation=20, ha="right")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("table", choices=("main", "signals", "strategies"))
    ap.add_argument("--eval", type=Path, action="append", required=True, help="eval folder (repeatable)")
    ap.add_argument("--label", action="append", default=[], help="MODEL_REF=NAME (repeatable)")
    ap.add_argument("--base", default=None, help="name (or ref) of the model every Δ is taken against")
    ap.add_argument("--model", default=None, help="strategies: the model reference to tabulate")
    ap.add_argument("--plot", type=Path, default=None, help="main: also write the per-model bar plot here")
    ap.add_argument("--strategies", default=None, help="main/signals: only these (comma-separated)")
    args = ap.parse_args(argv)
    labels = parse_labels(args.label)
    records = load(args.eval)
    if args.strategies and args.table != "strategies":
        keep = {s.strip() for s in args.strategies.split(",") if s.strip()}
        records = [r for r in records if r["strategy"] in keep]
    if args.table == "main":
        print(main_table(records, labels, args.base))
        if args.plot:
            print(f"\nplot: {plot_rounds(records, labels, args.plot)}", file=sys.stderr)
    elif args.table == "signals":
        print(signals_table(records, labels))
    else:
        if not args.model:
            raise SystemExit("error: strategies needs --model MODEL_REF")
        print(strategies_table(records, args.model))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
