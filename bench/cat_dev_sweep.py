"""Choose CaT's defaults on dev: replay self-consistency's K paths under each CaT setting.

With ``beam_width = k`` CaT starts the same K independent roots self-consistency samples; what
it changes is when each path stops: pruned at a step boundary below the threshold, or cut when
the search stops early (accept, consensus, decided). So one ``sc`` eval on dev (its paths with
their steps' confidences and token counts) answers, for every (prune percentile, accept,
consensus) on a grid, which answer CaT would give and how many tokens it would spend, without
decoding again. A replay, not a measurement: the real run samples a different RNG stream once a
path is pruned; `bench/cat_vs_sc.py` measures the chosen setting.

Refuses eval folders of the heldout or test split (defaults are never chosen there).

Usage:
    python bench/cat_dev_sweep.py runs/dev_sc [--calibration runs/dev_sc/calibration.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from caspo_lite.calibration_file import read_calibration
from caspo_lite.cat_fit import FIT_SPLITS
from caspo_lite.confidence import geometric_mean
from caspo_lite.eval.runner import CONFIG_FILE, RECORDS_FILE, read_records
from caspo_lite.search.cat_calibration import threshold_for


def replay(
    paths: list[dict], threshold: float, accept: float, consensus: float
) -> tuple[str | None, int, bool]:
    """(answer, tokens, stopped early) of CaT over one problem's K sampled paths."""
    events = []  # (token time, order, kind, path index, path confidence)
    for i, p in enumerate(paths):
        steps = [s for s in p.get("steps") or [] if s.get("confidence") is not None]
        t = 0
        confs: list[float] = []
        for s in steps[:-1]:  # the last step ends the path (the answer line): never a prune point
            t += int(s.get("n_tokens") or 0)
            confs.append(float(s["confidence"]))
            events.append((t, 1, "boundary", i, geometric_mean(confs)))
        events.append((int(p["n_tokens"]), 0, "finish", i, float(p["path_confidence"])))
    events.sort()
    live = set(range(len(paths)))
    end = {i: int(p["n_tokens"]) for i, p in enumerate(paths)}
    finished: list[int] = []
    early = False
    for t, _, kind, i, conf in events:
        if i not in live:
            continue
        if kind == "boundary":
            if conf < threshold and (len(live) > 1 or finished):
                live.discard(i)
                end[i] = t
            continue
        live.discard(i)
        finished.append(i)
        ans = paths[i].get("answer")
        if ans is not None and conf >= accept:
            for j in live:
                end[j] = t
            return ans, sum(end.values()), bool(live)
        votes: dict[str, float] = {}
        for j in finished:
            a = paths[j].get("answer")
            if a is not None:
                votes[a] = votes.get(a, 0.0) + float(paths[j]["path_confidence"])
        with_answer = [j for j in finished if paths[j].get("answer") is not None]
        if live and consensus <= 1.0 and len(with_answer) >= 2:
            ranked = sorted(votes.values(), reverse=True)
            share = ranked[0] / sum(ranked)
            second = ranked[1] if len(ranked) > 1 else 0.0
            if share >= consensus or ranked[0] - second > len(live):
                early = True
                for j in live:
                    end[j] = t
                live = set()
                break
    votes = {}
    for j in finished:
        a = paths[j].get("answer")
        if a is not None:
            votes[a] = votes.get(a, 0.0) + float(paths[j]["path_confidence"])
    answer = max(votes, key=votes.get) if votes else None
    return answer, sum(end.values()), early


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("eval_dir", type=Path)
    ap.add_argument("--calibration", type=Path, default=None)
    args = ap.parse_args(argv)
    meta = json.loads((args.eval_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    if meta.get("split") not in FIT_SPLITS:
        print(f"error: {args.eval_dir} is split {meta.get('split')!r}; sweep on dev only", file=sys.stderr)
        return 2
    records = [r for r in read_records(args.eval_dir / RECORDS_FILE) if r["strategy"] == "sc"]
    correct_paths = {r["problem_id"]: {p.get("answer"): p["correct"] for p in r["paths"]} for r in records}
    sc_acc = sum(r["correct"] for r in records) / len(records)
    sc_tok = sum(r["n_tokens"] for r in records) / len(records)
    cal = read_calibration(args.calibration) if args.calibration else None
    section = (cal or {}).get("cat")
    print(f"# dev replay over {len(records)} problems; sc: acc {sc_acc:.3f}, tokens {sc_tok:.1f}")
    print("pctl | threshold | accept | consensus | acc | tokens | tokens/sc | early | pruned")
    rows = []
    grid = (
        (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95),  # prune percentile (0 = no pruning)
        (0.8, 0.85, 0.9, 0.95, 1.01),  # accept
        (0.5, 0.6, 0.7, 0.8, 0.9, 1.01),  # consensus
    )
    for pctl, accept, cons in itertools.product(*grid):
        thr = threshold_for(section, pctl, "entropy", "geomean") if section else None
        thr = 0.0 if pctl == 0 or thr is None else thr
        acc = tok = early = pruned = 0
        for r in records:
            answer, tokens, stop = replay(r["paths"], thr, accept, cons)
            acc += bool(correct_paths[r["problem_id"]].get(answer, False)) if answer is not None else 0
            tok += tokens
            early += stop
            pruned += any(
                geometric_mean([s["confidence"] for s in p["steps"][: j + 1]]) < thr
                for p in r["paths"]
                for j in range(max(0, len(p["steps"]) - 1))
            )
        n = len(records)
        rows.append((pctl, thr, accept, cons, acc / n, tok / n, tok / n / sc_tok, early / n, pruned / n))

    def show(row: tuple) -> None:
        print(" | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))

    for row in sorted(rows, key=lambda x: (-x[4], x[5]))[:10]:
        show(row)
    print("# Pareto front: fewest tokens at each accuracy")
    best_tok = float("inf")
    for row in sorted(rows, key=lambda x: (-x[4], x[5])):
        if row[5] < best_tok:
            best_tok = row[5]
            show(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
