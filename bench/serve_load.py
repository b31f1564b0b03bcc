"""`caspo-lite serve` under load: N requests from C concurrent `openai` clients vs `solve` in one process.

Starts the real server (``python -m caspo_lite.cli serve``) as a subprocess on a free port,
sends ``--n`` arith questions (test split) through the `openai` Python client from
``--clients`` threads (chat route, ``caspo.task = arith``, the strategy and K in
``extra_body``), and records per-request latency and the searched tokens. Then it solves the
same questions with the same search and seeds through `solve_question` in this process, one
after another, on one engine with ``--threads`` threads. Prints: all answered?, p50/p95 latency,
tokens/s and answers/s of both, and whether the two gave the same answers.

Run (heavy: under the shared lock, 1 llama.cpp thread per worker):
  flock /tmp/caspo-heavy.lock .venv/bin/python bench/serve_load.py --model smollm2-135m \
      --n 50 --clients 8 --workers 2 --threads 1 --out runs/serve_load.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url.replace("/v1", "/health"), timeout=2):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start (exit {proc.poll()})") from None
            time.sleep(0.5)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads per worker (and for solve)")
    ap.add_argument("--strategy", default="cat")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--task", default="arith")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-solve", action="store_true", help="only the server side")
    ap.add_argument("--out", type=Path, default=Path("runs/serve_load.json"))
    args = ap.parse_args()

    import openai

    from caspo_lite.serve.server import free_port
    from caspo_lite.tasks import get_task

    task = get_task(args.task)
    problems = task.load(n=args.n, seed=args.seed, split="test")
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    cmd = [sys.executable, "-m", "caspo_lite.cli", "serve", "--model", args.model, "--port", str(port)]
    cmd += ["--workers", str(args.workers), "--threads", str(args.threads), "--ctx", "4096"]
    cmd += ["--queue", str(max(16, args.clients * 2))]
    log_path = args.out.with_suffix(".server.log")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_up(url, proc)
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=1800)
        model_id = client.models.list().data[0].id
        caspo = {"strategy": args.strategy, "k": args.k, "task": args.task}

        def ask(i: int) -> dict:
            t0 = time.perf_counter()
            try:
                r = client.chat.completions.create(
                    model=model_id,
                    messages=[{"role": "user", "content": problems[i].question}],
                    max_tokens=args.max_tokens,
                    seed=args.seed + i,
                    extra_body={"caspo": caspo},
                )
            except openai.APIError as exc:
                return {"i": i, "ok": False, "error": str(exc), "latency_s": time.perf_counter() - t0}
            c = r.model_extra["caspo"]
            return {
                "i": i,
                "ok": True,
                "latency_s": time.perf_counter() - t0,
                "tokens": c["tokens"],
                "answer": c["answer"],
                "prunes": c["prunes"],
                "saved": c["tokens_saved_vs_sc"],
            }

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as ex:
            served = list(ex.map(ask, range(len(problems))))
        server_wall = time.perf_counter() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    ok = [r for r in served if r["ok"]]
    lat = [r["latency_s"] for r in ok]
    tokens = sum(r["tokens"] for r in ok)
    summary: dict = {
        "config": vars(args) | {"out": str(args.out)},
        "server": {
            "requests": len(served),
            "answered": len(ok),
            "errors": [r["error"] for r in served if not r["ok"]][:5],
            "wall_s": round(server_wall, 2),
            "p50_latency_s": round(pct(lat, 50), 2),
            "p95_latency_s": round(pct(lat, 95), 2),
            "tokens": tokens,
            "tokens_per_s": round(tokens / server_wall, 1),
            "answers_per_s": round(len(ok) / server_wall, 3),
            "accuracy": sum(bool(task.grade(r["answer"], problems[r["i"]].answer)) for r in ok)
            / len(problems),
        },
    }
    if not args.skip_solve:
        from dataclasses import replace

        from caspo_lite.config import SearchSection
        from caspo_lite.engines import load_engine
        from caspo_lite.solve import solve_question

        engine = load_engine(args.model, n_threads=args.threads, n_ctx=4096)
        base = SearchSection(strategy=args.strategy, k=args.k, max_tokens=args.max_tokens)
        rows = []
        t0 = time.perf_counter()
        for i, p in enumerate(problems):
            t1 = time.perf_counter()
            s = solve_question(
                engine, p.question, args.strategy, replace(base, seed=args.seed + i), task_name=args.task
            )
            rows.append(
                {
                    "latency_s": time.perf_counter() - t1,
                    "tokens": s.result.n_tokens,
                    "answer": s.result.answer,
                }
            )
        wall = time.perf_counter() - t0
        engine.close()
        lat1 = [r["latency_s"] for r in rows]
        tok1 = sum(r["tokens"] for r in rows)
        by_i = {r["i"]: r["answer"] for r in ok}
        summary["solve_one_process"] = {
            "wall_s": round(wall, 2),
            "p50_latency_s": round(pct(lat1, 50), 2),
            "p95_latency_s": round(pct(lat1, 95), 2),
            "tokens": tok1,
            "tokens_per_s": round(tok1 / wall, 1),
            "answers_per_s": round(len(rows) / wall, 3),
            "accuracy": sum(
                bool(task.grade(r["answer"], p.answer)) for r, p in zip(rows, problems, strict=True)
            )
            / len(problems),
            "same_answers_as_server": sum(by_i.get(i) == r["answer"] for i, r in enumerate(rows)),
        }
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"(host: {os.cpu_count()} cores; server log: {log_path})")


if __name__ == "__main__":
    main()
