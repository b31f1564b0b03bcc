"""Tokens/s of W branches decoded together (one batch per token) vs the same W one after another.

All W branches fork one decoded prompt (KV cells shared, `llama_memory_seq_cp`), then each
generates T tokens, sampled at temperature 0.8 so they diverge. "together": one
`llama_decode` per token for all W; "one by one": the W branches in turn, each alone.
Target: W=8 together >= 1.6x one by one (notes/feasibility.md appendix measured ~1.66x).

Run: .venv/bin/python bench/branching.py [--model smollm2-135m] [--tokens 48] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import time

from caspo_lite.engines import load_engine, resolve_gguf
from caspo_lite.sampling import Sampler
from caspo_lite.tasks import get_task


def together(engine, ids: list[int], w: int, n: int) -> float:  # noqa: ANN001
    s = engine.session(w + 1)
    row0 = s.prefill(ids, 0).copy()
    sampler = Sampler(0.8, seed=0)
    rows = {}
    for seq in range(1, w + 1):
        s.fork(0, seq)
        rows[seq] = row0
    t0 = time.perf_counter()
    for _ in range(n):
        rows = s.decode({seq: sampler.sample(row) for seq, row in rows.items()})
    dt = time.perf_counter() - t0
    s.close()
    return w * n / dt


def one_by_one(engine, ids: list[int], w: int, n: int) -> float:  # noqa: ANN001
    s = engine.session(w + 1)
    row0 = s.prefill(ids, 0).copy()
    sampler = Sampler(0.8, seed=0)
    t0 = time.perf_counter()
    for seq in range(1, w + 1):
        s.fork(0, seq)
        row = row0
        for _ in range(n):
            row = s.decode({seq: sampler.sample(row)})[seq]
        s.free(seq)
    dt = time.perf_counter() - t0
    s.close()
    return w * n / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--widths", default="1,2,4,8,16")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    threads = args.threads or os.cpu_count() or 1
    path = resolve_gguf(args.model)
    engine = load_engine(args.model, n_threads=threads, n_ctx=4096)
    task = get_task("arith")
    ids = engine.render(task.prompt(task.load(n=1)[0]))
    print(
        f"model {args.model} ({path.name}), quant {path.stem.split('.')[-1]}, threads {threads}, "
        f"prompt {len(ids)} tokens, {args.tokens} tokens per branch"
    )
    together(engine, ids, 2, 4)  # warm up
    print(f"{'W':>3} {'together tok/s':>15} {'one-by-one tok/s':>17} {'speed-up':>9}")
    for w in (int(x) for x in args.widths.split(",")):
        a = b = 0.0
        for _ in range(args.repeats):  # interleaved, best of each: a burst of load hits both sides alike
            a = max(a, together(engine, ids, w, args.tokens))
            b = max(b, one_by_one(engine, ids, w, args.tokens))
        print(f"{w:>3} {a:>15.1f} {b:>17.1f} {a / b:>8.2f}x")
    engine.close()


if __name__ == "__main__":
    main()
