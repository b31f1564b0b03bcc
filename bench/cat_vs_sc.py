"""CaT vs self-consistency (and the other baselines) on the same engine, problems and K.

Every strategy runs on one loaded engine, the same seeded problems and the same budget K;
the table gives accuracy, generated tokens and latency per problem, and each one's ratio to
`sc` (CaT's claim: SC-level accuracy for fewer tokens), the paired accuracy difference to `sc`
with its bootstrap interval, and CaT's counters (decode calls, rows per decode, share of problems
with a confidence prune and with an early stop). Step labelling and the extra per-token signals
are off: this bench measures answers and cost only (`caspo-lite eval` does the calibration side).
CaT reads the model's calibration (`caspo-lite calibrate-cat`, fitted on dev) or `--calibration`.

Usage (about 1-3 min on 2 CPU cores for the tiny model; SmolLM2-135M ~60 tok/s):
    .venv/bin/python bench/cat_vs_sc.py --model tiny --task arith --n 10 --k 4
    .venv/bin/python bench/cat_vs_sc.py --model smollm2-135m --n 20 --k 8 --json
Results are also written (resumably) to --out (default: a fresh temp folder).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from caspo_lite.config import load_config
from caspo_lite.errors import CaspoError
from caspo_lite.eval.report import COMPARE_METRICS, ratios_to_baseline, summarize
from caspo_lite.eval.runner import (
    RECORDS_FILE,
    EvalSpec,
    ProblemEvaluated,
    iter_eval,
    read_records,
)
from caspo_lite.search import EVAL_DEFAULT_STRATEGIES


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


EXTRA = (
    ("search/decode_calls", 1),
    ("search/rows_per_decode", 2),
    ("search/pruned_by_confidence", 2),
    ("search/early_stop", 2),
)


def paired_to_sc(records: list[dict]) -> dict[tuple[str, str], str]:
    """(model, strategy) -> accuracy minus sc's on the same problems, with its 95% interval."""
    from caspo_lite.eval.compare import paired_difference, paired_outcomes

    by: dict[tuple[str, str], dict[str, bool]] = {}
    for r in records:
        by.setdefault((r["model"], r["strategy"]), {})[str(r["problem_id"])] = bool(r["correct"])
    out = {}
    for (model, strategy), outcomes in by.items():
        base = by.get((model, "sc"))
        if base is None or strategy == "sc":
            continue
        a, b = paired_outcomes(base, outcomes)
        out[(model, strategy)] = paired_difference(a, b).fmt(signed=True)
    return out


def render(rows: list[dict], paired: dict[tuple[str, str], str] | None = None) -> str:
    header = ["model", "strategy", "n", "acc", "tokens", "latency_s", "acc/sc", "tokens/sc", "latency/sc"]
    header += ["acc-sc [95% CI]", "decodes", "rows/dec", "conf-pruned", "early-stop"]
    lines = [" | ".join(header)]
    for r in rows:
        vals = [r[m] for m in COMPARE_METRICS] + [r[f"{m}/ratio"] for m in COMPARE_METRICS]
        digits = [3, 1, 3, 2, 2, 2]
        extra = [_fmt(r.get(m), d) for m, d in EXTRA]
        lines.append(
            " | ".join(
                [
                    r["model"],
                    r["strategy"],
                    str(r["n"]),
                    *(_fmt(v, d) for v, d in zip(vals, digits, strict=True)),
                    (paired or {}).get((r["model"], r["strategy"]), "—"),
                    *extra,
                ]
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--task", default="arith")
    ap.add_argument("--data", default=None, help="task data file (JSONL tasks)")
    ap.add_argument("--strategies", default=",".join(EVAL_DEFAULT_STRATEGIES))
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="test", help="task split (arith: train, dev, test, heldout)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--engine", default="llama_cpp")
    ap.add_argument("--calibration", default="", help="calibration.json for CaT (default: the model's own)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = ap.parse_args(argv)

    cfg = load_config(
        None,
        [f"search.max_tokens={args.max_tokens}", f"search.calibration={json.dumps(args.calibration)}"]
        + args.overrides,
    )
    out = args.out or Path(tempfile.mkdtemp(prefix="cat_vs_sc-"))
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if "sc" not in strategies:
        strategies.append("sc")  # the baseline every ratio is taken against
    try:
        spec = EvalSpec(
            models=[args.model],
            task=args.task,
            task_path=args.data,
            strategies=strategies,
            out=out,
            k=args.k,
            n=args.n,
            seed=args.seed,
            split=args.split,
            engine_kind=args.engine,
            search=cfg.search,
            confidence=cfg.confidence,
            steps=cfg.steps,
            label_steps=False,
            record_all_signals=False,  # a latency run: only the signal the search uses
        )
        t0 = time.perf_counter()
        for ev in iter_eval(spec):
            if isinstance(ev, ProblemEvaluated):
                print(
                    f"  {ev.strategy:9s} {ev.problem_id:14s} {'ok ' if ev.correct else 'bad'} "
                    f"{ev.n_tokens:5d} tok {ev.latency_s:6.2f} s",
                    file=sys.stderr,
                )
    except CaspoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    records = read_records(out / RECORDS_FILE)
    groups = summarize(records)
    rows = ratios_to_baseline(groups, baseline="sc")
    for g, row in zip(groups, rows, strict=True):
        for m, _ in EXTRA:
            row[m] = g.metrics[m].value if m in g.metrics else None
    paired = paired_to_sc(records)
    if args.json:
        print(
            json.dumps(
                {
                    "model": args.model,
                    "task": args.task,
                    "split": args.split,
                    "n": args.n,
                    "k": args.k,
                    "rows": rows,
                    "paired_to_sc": {f"{m}/{st}": v for (m, st), v in paired.items()},
                },
                indent=2,
            )
        )
    else:
        print(
            f"# CaT vs SC: {args.model} on {args.task} ({args.split}), n={args.n}, K={args.k}, "
            f"max_tokens={args.max_tokens} ({time.perf_counter() - t0:.0f} s, records in {out})"
        )
        print(render(rows, paired))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
