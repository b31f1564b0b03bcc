"""From per-problem records to metrics, summary.json and the report table.

A record is one line of ``problems.jsonl`` (see `caspo_lite.eval.runner.problem_record`):
the problem, the strategy's answer and confidence, cost, and every finished path with its
labelled steps and per-signal step confidences. Everything here is a pure function of the
records, so a resumed eval and a fresh one report the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from caspo_lite.answer_signals import ANSWER_SIGNALS, signals_from_record
from caspo_lite.eval import metrics as M
from caspo_lite.eval.trace import STEP_SIGNALS

# Columns of the report table: (metric name, header, digits).
TABLE_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("eval/accuracy", "acc", 3),
    ("eval/step_reliability", "step-rel", 3),
    ("calib/ece", "ECE", 3),
    ("calib/brier", "Brier", 3),
    ("calib/auroc", "AUROC", 3),
    ("calib/ece_raw", "ECE raw", 3),
    ("select/acc_at_50", "acc@50%", 3),
    ("select/aurc", "AURC", 3),
    ("step_auroc/entropy", "stepAUC H", 3),
    ("step_auroc/margin", "margin", 3),
    ("step_auroc/maxprob", "maxprob", 3),
    ("step_auroc/deepconf", "deepconf", 3),
    ("step_auroc/logprob", "logprob", 3),
    ("step/entropy_correct", "H ok", 3),
    ("step/entropy_wrong", "H wrong", 3),
    ("search/tokens", "tokens", 1),
    ("search/latency_s", "lat s", 2),
    ("search/tokens_per_s", "tok/s", 1),
    ("search/decode_calls", "decodes", 1),
    ("search/rows_per_decode", "rows/dec", 2),
    ("search/pruned_by_confidence", "conf-pruned", 2),
    ("search/early_stop", "early stop", 2),
)


@dataclass
class GroupSummary:
    """The metrics of one (model, strategy) pair."""

    model: str
    strategy: str
    n_problems: int
    metrics: dict[str, M.Metric]
    bins: list[M.ReliabilityBin] = field(default_factory=list)
    bins_raw: list[M.ReliabilityBin] = field(
        default_factory=list
    )  # of the raw score (= bins if uncalibrated)
    calibration: dict[str, Any] | None = None  # the map behind calib/* (fit split and size), None = raw
    risk_coverage: list[tuple[float, float]] = field(default_factory=list)  # shown confidence
    risk_coverage_raw: list[tuple[float, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "strategy": self.strategy,
            "n_problems": self.n_problems,
            "metrics": {name: m.to_json() for name, m in self.metrics.items()},
            "reliability_bins": [b.to_json() for b in self.bins],
            "reliability_bins_raw": [b.to_json() for b in self.bins_raw],
            "calibration": self.calibration if self.calibration is not None else "uncalibrated",
            "risk_coverage": _thin(self.risk_coverage),
            "risk_coverage_raw": _thin(self.risk_coverage_raw),
        }


def _thin(curve: Sequence[tuple[float, float]], points: int = 21) -> list[list[float]]:
    """At most ``points`` (coverage, risk) pairs of a curve, for summary.json."""
    if len(curve) <= points:
        return [[round(c, 4), round(r, 4)] for c, r in curve]
    idx = sorted({round(i * (len(curve) - 1) / (points - 1)) for i in range(points)})
    return [[round(curve[i][0], 4), round(curve[i][1], 4)] for i in idx]


def chosen_path(record: dict[str, Any]) -> dict[str, Any] | None:
    """The path whose answer the strategy returned (None when no path gave it)."""
    idx = record.get("chosen_path")
    paths = record.get("paths") or []
    return paths[idx] if isinstance(idx, int) and 0 <= idx < len(paths) else None


def labelled_steps(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every labelled step of every finished path, up to and including its first wrong step.

    A step shared by several paths (a CaT fork inherits its parent's steps) is one tree node
    (``node``) and counts once per problem: its first labelled occurrence.
    """
    out = []
    for rec in records:
        seen: set[str] = set()
        for path in rec.get("paths") or []:
            steps = path.get("steps") or []
            labels = [s.get("label", "unknown") for s in steps]
            for step in steps[: M.usable_steps(labels)]:
                if step.get("label") in (M.STEP_CORRECT, M.STEP_WRONG):
                    node = step.get("node")
                    if node is not None:
                        if node in seen:
                            continue
                        seen.add(node)
                    out.append(step)
    return out


def _step_metrics(records: Sequence[dict[str, Any]]) -> dict[str, M.Metric]:
    steps = labelled_steps(records)
    out: dict[str, M.Metric] = {}
    for signal in STEP_SIGNALS:
        name = f"step_auroc/{signal}"
        pairs = [(s["signals"].get(signal), s["label"] == M.STEP_CORRECT) for s in steps]
        pairs = [(c, y) for c, y in pairs if c is not None]
        if not pairs and steps:
            out[name] = M.undefined(name, "the search recorded no per-token stats for this signal")
        else:
            out[name] = M.auroc([c for c, _ in pairs], [y for _, y in pairs], name=name)
    with_h = [s for s in steps if s.get("entropy_nats") is not None]
    out.update(M.mean_by_label([s["entropy_nats"] for s in with_h], [s["label"] for s in with_h]))
    n_ok = sum(1 for s in steps if s["label"] == M.STEP_CORRECT)
    out["step/n_labelled"] = M.Metric("step/n_labelled", float(len(steps)), len(steps))
    out["step/accuracy"] = (
        M.Metric("step/accuracy", n_ok / len(steps), len(steps))
        if steps
        else M.undefined("step/accuracy", "no labelled steps")
    )
    return out


def _num(value: Any) -> float:
    """A record's number, NaN where it is missing (the metrics turn NaN into a null + reason)."""
    return float(value) if isinstance(value, int | float) else float("nan")


def _bins(conf: Sequence[float], correct: Sequence[bool]) -> list[M.ReliabilityBin]:
    try:
        return M.reliability_bins(
            [c for c in conf if c == c], [y for c, y in zip(conf, correct, strict=True) if c == c]
        )
    except ValueError:  # confidences that are not probabilities: no diagram (ece says why)
        return []


def _confidence_metrics(
    conf: Sequence[float], correct: Sequence[bool], suffix: str, abstain_below: float | None
) -> dict[str, M.Metric]:
    """calib/* and select/* of one confidence (``suffix`` '' = the one users see, '_raw')."""
    out = {
        f"calib/ece{suffix}": M.ece(conf, correct, name=f"calib/ece{suffix}"),
        f"calib/brier{suffix}": M.brier(conf, correct, name=f"calib/brier{suffix}"),
        f"calib/auroc{suffix}": M.auroc(conf, correct, name=f"calib/auroc{suffix}"),
        f"select/aurc{suffix}": M.aurc(conf, correct, name=f"select/aurc{suffix}"),
    }
    for cov in (50, 80):
        name = f"select/acc_at_{cov}{suffix}"
        out[name] = M.accuracy_at_coverage(conf, correct, cov / 100, name=name)
    if abstain_below is not None:
        kept = [y for c, y in zip(conf, correct, strict=True) if c >= abstain_below]
        name = f"select/coverage_at_threshold{suffix}"
        out[name] = M.Metric(name, len(kept) / len(conf), len(conf)) if conf else M.undefined(name, "none")
        name = f"select/accuracy_answered{suffix}"
        out[name] = M.accuracy(kept, name=name) if kept else M.undefined(name, "every answer was 'not sure'")
    return out


def summarize_group(
    model: str,
    strategy: str,
    records: Sequence[dict[str, Any]],
    calibration: Any = None,
    abstain_below: float | None = None,
) -> GroupSummary:
    """All metrics of one (model, strategy) from its problem records.

    ``calibration`` (an `AnswerCalibration`) turns each answer's signals into the P(correct) a
    user is shown: calib/* and select/* are computed on it, calib/*_raw and select/*_raw on the
    raw search confidence. Without one both are the raw confidence. ``abstain_below`` adds the
    share answered and the accuracy on it at that threshold.
    """
    correct = [bool(r["correct"]) for r in records]
    raw = [_num(r.get("confidence")) for r in records]
    signals = [signals_from_record(r) for r in records]
    conf = raw
    if calibration is not None:
        probs = [calibration.prob_of(sig, r.get("answer")) for sig, r in zip(signals, records, strict=True)]
        conf = [float("nan") if p is None else p for p in probs]
    out: dict[str, M.Metric] = {"eval/accuracy": M.accuracy(correct)}
    chosen = [chosen_path(r) for r in records]
    out["eval/step_reliability"] = M.step_reliability(
        correct, [[s.get("label") for s in (p or {}).get("steps", [])] for p in chosen]
    )
    out.update(_confidence_metrics(conf, correct, "", abstain_below))
    out.update(_confidence_metrics(raw, correct, "_raw", abstain_below))
    rate = M.accuracy(correct).value
    out["calib/brier_base_rate"] = (
        M.brier([rate] * len(correct), correct, name="calib/brier_base_rate")
        if rate is not None
        else M.undefined("calib/brier_base_rate", "no problems")
    )
    answered = [
        (sig, y) for sig, y, r in zip(signals, correct, records, strict=True) if r.get("answer") is not None
    ]
    for sig_name in ANSWER_SIGNALS:
        name = f"answer_auroc/{sig_name}"
        pairs = [(sig[sig_name], y) for sig, y in answered if sig.get(sig_name) is not None]
        out[name] = M.auroc([c for c, _ in pairs], [y for _, y in pairs], name=name)
    paths = [p for r in records for p in r.get("paths") or []]
    out["calib/path_auroc"] = M.auroc(
        [_num(p.get("path_confidence")) for p in paths],
        [bool(p.get("correct")) for p in paths],
        name="calib/path_auroc",
    )
    out.update(_step_metrics(records))
    tokens = [r["n_tokens"] for r in records]
    latency = [r["latency_s"] for r in records]
    out["search/tokens"] = M.mean("search/tokens", tokens)
    out["search/latency_s"] = M.mean("search/latency_s", latency)
    total_s = sum(latency)
    out["search/tokens_per_s"] = (
        M.Metric("search/tokens_per_s", sum(tokens) / total_s, len(records))
        if total_s > 0
        else M.undefined("search/tokens_per_s", "no measured time", len(records))
    )
    out["search/branches"] = M.mean("search/branches", [r.get("n_branches", 0) for r in records])
    out["search/pruned"] = M.mean("search/pruned", [r.get("n_pruned", 0) for r in records])
    out.update(_counter_metrics(records))
    cal_info = None
    if calibration is not None:
        cal_info = {"signal": calibration.signal, "method": calibration.method, "source": calibration.source}
        cal_info.update({k: v for k, v in calibration.fit.items() if k != "records"})
    finite = [(c, y) for c, y in zip(conf, correct, strict=True) if c == c]
    finite_raw = [(c, y) for c, y in zip(raw, correct, strict=True) if c == c]
    return GroupSummary(
        model,
        strategy,
        len(records),
        out,
        _bins(conf, correct),
        _bins(raw, correct),
        cal_info,
        list(zip(*M.risk_coverage([c for c, _ in finite], [y for _, y in finite]), strict=True)),
        list(zip(*M.risk_coverage([c for c, _ in finite_raw], [y for _, y in finite_raw]), strict=True)),
    )


def _counter_metrics(records: Sequence[dict[str, Any]]) -> dict[str, M.Metric]:
    """The search's own counters (decode calls, prunes by reason, early stop), when recorded."""
    counted = [r["counters"] for r in records if isinstance(r.get("counters"), dict)]
    if not counted:
        return {}
    out: dict[str, M.Metric] = {}
    for key in ("decode_calls", "rows_per_decode", "time_to_answer_s", "tokens_saved_vs_sc"):
        vals = [float(c[key]) for c in counted if isinstance(c.get(key), int | float)]
        if vals:
            out[f"search/{key}"] = M.mean(f"search/{key}", vals)
    n = len(counted)
    by_conf = sum(1 for c in counted if (c.get("prunes") or {}).get("confidence", 0) > 0)
    out["search/pruned_by_confidence"] = M.Metric("search/pruned_by_confidence", by_conf / n, n)
    early = sum(1 for c in counted if c.get("early_stop"))
    out["search/early_stop"] = M.Metric("search/early_stop", early / n, n)
    return out


def summarize(
    records: Iterable[dict[str, Any]],
    calibrations: Mapping[tuple[str, str], Any] | None = None,
    abstain_below: float | None = None,
) -> list[GroupSummary]:
    """One GroupSummary per (model, strategy), in first-seen order.

    ``calibrations`` maps (model, strategy) to its `AnswerCalibration` (missing = uncalibrated).
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault((rec["model"], rec["strategy"]), []).append(rec)
    cals = calibrations or {}
    return [summarize_group(m, s, recs, cals.get((m, s)), abstain_below) for (m, s), recs in groups.items()]


def summary_json(groups: Sequence[GroupSummary], meta: dict[str, Any]) -> dict[str, Any]:
    return {**meta, "results": [g.to_json() for g in groups]}


# The narrower table printed in a terminal (report.md has every column).
CONSOLE_COLUMNS: tuple[str, ...] = (
    "eval/accuracy",
    "eval/step_reliability",
    "calib/ece",
    "calib/brier",
    "calib/auroc",
    "calib/ece_raw",
    "select/aurc",
    "step_auroc/entropy",
    "search/tokens",
    "search/latency_s",
    "search/tokens_per_s",
)


def short_model(ref: str, width: int = 28) -> str:
    """A model reference short enough for a table cell (the tail of a long path)."""
    return ref if len(ref) <= width else "..." + ref[-(width - 3) :]


def table_rows(
    groups: Sequence[GroupSummary], columns: Sequence[str] | None = None
) -> tuple[list[str], list[list[str]]]:
    """Header and text rows of the report table (n/a where a metric is undefined)."""
    cols = [c for c in TABLE_COLUMNS if columns is None or c[0] in columns]
    header = ["model", "strategy", "n", *(h for _, h, _ in cols)]
    rows = []
    for g in groups:
        cells = [g.metrics[name].fmt(d) if name in g.metrics else "n/a" for name, _, d in cols]
        rows.append([short_model(g.model), g.strategy, str(g.n_problems), *cells])
    return header, rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(groups: Sequence[GroupSummary], meta: dict[str, Any], plots: Sequence[str] = ()) -> str:
    """report.md: the table, the reasons for every n/a, and links to the plots."""
    header, rows = table_rows(groups)
    parts = [
        f"# caspo-lite eval: {meta.get('task', '?')}",
        "",
        ", ".join(f"{k}={meta[k]}" for k in ("n", "k", "seed", "split") if k in meta),
        "",
        markdown_table(header, rows),
        "",
        "Metric definitions: docs/metrics.md. ECE uses 15 equal-width bins; step AUROC scores each "
        "signal's step confidence against the labeler's correct/wrong, steps up to the first wrong one.",
        "",
        *_calibration_lines(groups),
    ]
    missing = [
        f"- {g.model} / {g.strategy}: `{name}`: {m.reason}"
        for g in groups
        for name, m in g.metrics.items()
        if m.value is None
    ]
    if missing:
        parts += ["", "## Undefined metrics", "", *missing]
    if plots:
        parts += ["", "## Plots", "", *(f"![{p}]({p})" for p in plots)]
    return "\n".join(parts) + "\n"


def _calibration_lines(groups: Sequence[GroupSummary]) -> list[str]:
    """Which confidence calib/* measures, per group: the calibrated P(correct) or the raw score."""
    lines = ["Answer confidence in calib/* and select/* (the `_raw` columns: the search's own score):", ""]
    for g in groups:
        c = g.calibration
        what = (
            f"{c.get('method')} on `{c.get('signal')}`, fitted on {c.get('task', '?')} {c.get('split', '?')} "
            f"n={c.get('n', '?')}"
            if c
            else "uncalibrated (raw score)"
        )
        lines.append(f"- {g.model} / {g.strategy}: {what}")
    return lines


COMPARE_METRICS: tuple[str, ...] = ("eval/accuracy", "search/tokens", "search/latency_s")


def ratios_to_baseline(groups: Sequence[GroupSummary], baseline: str = "sc") -> list[dict[str, Any]]:
    """Per (model, strategy): accuracy, tokens, latency and each one's ratio to ``baseline``.

    A ratio is None (with the reason) when the baseline is missing or its value is 0 or
    undefined: the CaT-vs-SC claim is "same accuracy at fewer tokens", so a ratio must never
    silently become inf.
    """
    base = {g.model: g for g in groups if g.strategy == baseline}
    rows = []
    for g in groups:
        row: dict[str, Any] = {"model": g.model, "strategy": g.strategy, "n": g.n_problems}
        ref = base.get(g.model)
        for name in COMPARE_METRICS:
            m = g.metrics[name]
            row[name] = m.value
            b = ref.metrics[name].value if ref is not None else None
            if ref is None:
                row[f"{name}/ratio"], row[f"{name}/ratio_reason"] = None, f"no {baseline} run for {g.model}"
            elif m.value is None or not b:
                row[f"{name}/ratio"], row[f"{name}/ratio_reason"] = None, f"{baseline} value is {b!r}"
            else:
                row[f"{name}/ratio"] = m.value / b
        rows.append(row)
    return rows
