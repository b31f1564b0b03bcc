"""Issue #16's targets, printed from held-out eval folders: is the shown confidence calibrated?

For each (model, strategy) of each eval folder: accuracy, calibrated vs raw ECE / Brier / AUROC,
the constant-base-rate Brier a calibrated Brier must beat, AURC and accuracy at 50% / 80%
coverage (calibrated vs raw path confidence), and every answer signal's AUROC. The
calibration used is the model's own (`caspo-lite calibrate`, fitted on dev only); the held-out
split is never fitted on (calibrate refuses it).

Usage (measured on 2 shared CPU cores, CASPO_LITE_THREADS=1, base SmolLM2-135M Q4_1):

    caspo-lite eval --model smollm2-135m --task arith --split dev --n 200 \\
        --strategies greedy --out runs/cal-dev-greedy
    caspo-lite eval --model smollm2-135m --task arith --split dev --n 200 \\
        --strategies cat --out runs/cal-dev-cat
    caspo-lite calibrate --model smollm2-135m --from runs/cal-dev-greedy --strategy greedy
    caspo-lite calibrate --model smollm2-135m --from runs/cal-dev-cat --strategy cat
    caspo-lite eval --model smollm2-135m --task arith --split heldout --n 200 \\
        --strategies greedy --out runs/cal-heldout-greedy
    caspo-lite eval --model smollm2-135m --task arith --split heldout --n 200 \\
        --strategies cat --out runs/cal-heldout-cat
    .venv/bin/python bench/answer_calibration.py runs/cal-heldout-greedy runs/cal-heldout-cat
    # measured 2026-12-04 (heldout, 200 problems each; maps fitted on dev, 200 problems):
    #   greedy acc 0.170: Platt on `path`; ECE 0.066 (raw 0.621), Brier 0.135 (raw 0.522,
    #     base rate 0.141), AURC 0.744 = raw, acc@50% 0.230 = raw
    #   cat    acc 0.245: Platt on `path`; ECE 0.031 (raw 0.564), Brier 0.179 (raw 0.499,
    #     base rate 0.185), AURC 0.675 = raw, acc@50% 0.300 = raw
"""

from __future__ import annotations

import argparse
from pathlib import Path

from caspo_lite.eval.report import summarize
from caspo_lite.eval.runner import RECORDS_FILE, load_calibrations, read_records


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("evals", nargs="+", type=Path, help="eval folders (problems.jsonl)")
    args = ap.parse_args(argv)
    for folder in args.evals:
        records = read_records(folder / RECORDS_FILE)
        for g in summarize(records, load_calibrations(records)):
            m = {k: v.value for k, v in g.metrics.items()}
            c = g.calibration
            what = (
                f"{c['method']} on {c['signal']}, fitted on {c.get('task')} {c.get('split')} n={c.get('n')}"
                if c
                else "uncalibrated"
            )
            print(f"\n## {folder}: {g.model} / {g.strategy}  n={g.n_problems}  acc={m['eval/accuracy']:.3f}")
            print(f"calibration: {what}")
            for name in (
                "calib/ece",
                "calib/brier",
                "calib/auroc",
                "select/aurc",
                "select/acc_at_50",
                "select/acc_at_80",
            ):
                shown, raw = m.get(name), m.get(f"{name}_raw")
                print(f"  {name:<18} shown {_fmt(shown)}   raw {_fmt(raw)}")
            print(f"  calib/brier_base_rate {m['calib/brier_base_rate']:.4f}")
            signals = [(k.split("/", 1)[1], v) for k, v in m.items() if k.startswith("answer_auroc/")]
            print(
                "  answer AUROC: "
                + ", ".join(f"{k} {'n/a' if v is None else f'{v:.3f}'}" for k, v in signals)
            )


if __name__ == "__main__":
    main()
