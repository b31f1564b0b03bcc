"""Pairs per training problem of a recipe's round 1, and what the prefix resampling costs (issue #13).

Runs the round's first three stages only (sample -> label -> pairs, the same library calls as
`caspo_lite.train.rounds.run_round`, no DPO), then prints, on the *same* labelled samples:

- pairs per problem with the other samples as the only alternatives (``alt_samples = 0``) and
  with the recipe's resampling + rank-2 fallback, by type and by origin of the other side;
- the resampling time next to the sampling time;
- the pair count of every mode (``step``, ``answer``, ``both``, ``step-nofilter``; the last one
  with the alternatives sampled for the step candidates only, so a lower bound).

Resumable like a round: the stage files go to ``--out`` (samples.jsonl, labels.jsonl,
alternatives.jsonl) and a rerun continues. Heavy: run it under the shared lock, e.g.

    CASPO_LITE_THREADS=2 flock /tmp/caspo-heavy.lock python bench/pairs_yield.py \\
        --recipe recipes/smollm2-135m-arith-cpu.toml --out runs/pairs-yield
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from caspo_lite.runs import RunDir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipe", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="key=value override")
    ap.add_argument(
        "--fresh-alternatives",
        action="store_true",
        help="resample the alternatives again (keeps samples and labels): compare alternative settings",
    )
    args = ap.parse_args()

    from caspo_lite.labeler_registry import get_labeler
    from caspo_lite.pairs import MODES, build_pairs
    from caspo_lite.train.alternatives import AltStats, add_alternatives
    from caspo_lite.train.config import load_train_config
    from caspo_lite.train.labeling import label_round, to_problem_samples
    from caspo_lite.train.ledger import JsonlAppender, read_jsonl
    from caspo_lite.train.problems import build_task, split_problems
    from caspo_lite.train.rounds import _labeler, _tokenizer, base_policy, open_engine
    from caspo_lite.train.sampling import sample_round

    cfg = load_train_config(args.recipe, args.overrides)
    run = RunDir(args.out)
    run.root.mkdir(parents=True, exist_ok=True)
    rd = run.round(1)
    rd.root.mkdir(parents=True, exist_ok=True)
    task = build_task(cfg)
    train, _dev = split_problems(task, cfg)
    policy = base_policy(cfg, run)
    engine = open_engine(cfg, policy)
    timing_file = rd.root / "bench_times.json"
    times = json.loads(timing_file.read_text()) if timing_file.exists() else {}
    if args.fresh_alternatives:
        rd.alternatives.unlink(missing_ok=True)
        times.pop("alternatives_s", None)
    try:
        if "sample_s" not in times:
            t0 = time.perf_counter()
            with JsonlAppender(rd.samples, "problem_id") as out:
                sample_round(engine, task, train, cfg, 1, out, _tokenizer(policy.hf_dir))
            times["sample_s"] = round(time.perf_counter() - t0, 1)
            timing_file.write_text(json.dumps(times))
        samples = read_jsonl(rd.samples, "problem_id")
        labeler = _labeler(cfg, lambda: engine, get_labeler)
        with JsonlAppender(rd.labels, "problem_id") as out:
            label_round(samples, labeler, task, out, None, {p.id: p for p in train})
        labels = {r["problem_id"]: r for r in read_jsonl(rd.labels, "problem_id")}
        problems = [to_problem_samples(s, labels[s["problem_id"]]) for s in samples]
        stats = AltStats()
        with_alts = add_alternatives(
            engine,
            task,
            problems,
            samples,
            cfg,
            1,
            labeler,
            store=rd.alternatives,
            sources={p.id: p for p in train},
            stats=stats,
        )
        if "alternatives_s" not in times:  # a resumed run only timed its own part
            times["alternatives_s"] = round(stats.time_s, 1)
            timing_file.write_text(json.dumps(times))
    finally:
        engine.close()

    rule = cfg.pairs.rule()
    n = len(problems)
    plain, plain_rep = build_pairs(problems, rule)
    pairs, rep = build_pairs(with_alts, rule)
    by_mode = {mode: len(build_pairs(with_alts, replace(rule, mode=mode))[0]) for mode in MODES}
    result = {
        "recipe": str(args.recipe),
        "overrides": args.overrides,
        "problems": n,
        "alt_samples": cfg.pairs.alt_samples,
        "max_per_problem": rule.max_per_problem,
        "pairs_per_problem_samples_only": round(len(plain) / n, 3),
        "pairs_per_problem": round(len(pairs) / n, 3),
        "samples_only": plain_rep.summary(),
        "with_alternatives": rep.summary(),
        "alternatives": stats.summary(),
        "pairs_by_mode": by_mode,
        "pairs_by_mode_note": "step-nofilter uses the alternatives sampled for the step candidates only",
        **{f"time/{k}": v for k, v in times.items()},
    }
    text = json.dumps(result, indent=1)
    (rd.root / "bench_pairs_yield.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
