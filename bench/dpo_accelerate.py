"""One `tiny-ci` round with its DPO stage in 1 process vs under `accelerate launch` with N processes.

Prints, per process count, the DPO stage's wall time (from the round's ledger), its steps and
its reward margin, and the whole round's wall time. On a CPU box this measures the launch's
overhead (N Python processes importing torch + trl, a gloo process group), not a speed-up:
the gain of DDP comes from N GPUs.

Run: flock /tmp/caspo-heavy.lock .venv/bin/python bench/dpo_accelerate.py --processes 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", default="1,2")
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    rows = []
    for n in (int(x) for x in args.processes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            sets = [
                "rounds.n=1",
                "rounds.dev_eval=false",
                f"dpo.max_steps={args.steps}",
                f"dpo.num_processes={n}",
            ]
            cmd = [
                sys.executable,
                "-m",
                "caspo_lite.cli",
                "train",
                "--recipe",
                str(REPO / "recipes/tiny-ci.toml"),
            ]
            cmd += [a for s in sets for a in ("--set", s)] + ["--out", str(out)]
            t0 = time.perf_counter()
            p = subprocess.run(
                cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
            )
            wall = time.perf_counter() - t0
            if p.returncode != 0:
                raise SystemExit(p.stderr[-2000:])
            dpo = json.loads((out / "round-1" / "ledger.json").read_text())["stages"]["dpo"]
            rows.append(
                {
                    "processes": n,
                    "dpo_s": round(dpo["time_s"], 1),
                    "steps": dpo["steps"],
                    "reward_margin": round(dpo["reward_margin"], 4),
                    "round_s": round(wall, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
