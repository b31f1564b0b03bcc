"""How far the `openai` engine's entropy bounds sit from the exact entropy, on a real model.

Starts llama-cpp-python's own server (``python -m llama_cpp.server``) on the model's GGUF,
samples ``--samples`` completions of task prompts through `OpenAIEngine` with top-k logprobs,
then teacher-forces the same tokens through the in-process llama.cpp engine and compares each
token's exact entropy H with the bounds [H_lo, H_hi]. Prints, per k: the share of tokens the
bounds bracket, mean / p95 / max of H - H_lo and H_hi - H (nats), and the mean absolute error
of the entropy confidence exp(-H) when computed from either bound.

Run: flock /tmp/caspo-heavy.lock .venv/bin/python bench/openai_entropy_gap.py --model smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np


def start_server(gguf: Path, port: int, threads: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--n_ctx", "2048", "--n_threads", str(threads), "--model_alias", "m"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("llama_cpp.server did not start") from None
            time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--task", default="arith")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--ks", default="5,20")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("runs/openai_entropy_gap.json"))
    args = ap.parse_args()

    from caspo_lite.confidence import ConfidenceScorer
    from caspo_lite.engines import resolve_gguf
    from caspo_lite.engines.llama_cpp import LlamaCppEngine, render_chat_template
    from caspo_lite.engines.openai import OpenAIEngine
    from caspo_lite.serve.server import free_port
    from caspo_lite.tasks import get_task

    gguf = resolve_gguf(args.model)
    local = LlamaCppEngine(gguf, n_ctx=2048, n_threads=args.threads)
    by_text: dict[str, list[int]] = {}
    for i in range(local.n_vocab):
        by_text.setdefault(local.token_text(i), []).append(i)
    task = get_task(args.task)
    problems = task.load(n=args.samples, seed=0, split="test")
    port = free_port()
    proc = start_server(gguf, port, args.threads)
    scorer = ConfidenceScorer("entropy")
    results = {}
    try:
        for k in (int(x) for x in args.ks.split(",")):
            remote = OpenAIEngine(f"http://127.0.0.1:{port}/v1", "m", local.n_vocab, top_logprobs=k)
            rows = []  # (exact, lower, upper)
            for i, p in enumerate(problems):
                prompt = task.prompt(p)
                text = prompt.text
                if text is None:
                    text = render_chat_template(
                        local.chat_template, prompt.messages, local.bos_text, local.eos_text
                    )
                got = remote.complete(text, args.max_tokens, 0.8, seed=i, stop=prompt.stop)
                session = local.session(1)
                row = session.prefill(local.tokenize(text, special=True), 0)
                for tok in got.tokens:
                    ids = by_text.get(tok.text, [])
                    if len(ids) != 1:
                        break  # an ambiguous token text: stop teacher forcing this sample
                    rows.append((scorer.stats(row).entropy, tok.entropy_lower, tok.entropy_upper))
                    row = session.decode({0: ids[0]})[0]
                session.close()
            remote.close()
            h, lo, hi = (np.array(c) for c in zip(*rows, strict=True))
            results[f"k={k}"] = {
                "tokens": len(rows),
                "bracketed_share": float(np.mean((lo - 1e-3 <= h) & (h <= hi + 1e-3))),
                "exact_minus_lower": {
                    "mean": float(np.mean(h - lo)),
                    "p95": float(np.percentile(h - lo, 95)),
                    "max": float(np.max(h - lo)),
                },
                "upper_minus_exact": {
                    "mean": float(np.mean(hi - h)),
                    "p95": float(np.percentile(hi - h, 95)),
                    "max": float(np.max(hi - h)),
                },
                "conf_abs_err_lower": float(np.mean(np.abs(np.exp(-lo) - np.exp(-h)))),
                "conf_abs_err_upper": float(np.mean(np.abs(np.exp(-hi) - np.exp(-h)))),
                "mean_exact_entropy": float(np.mean(h)),
            }
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        local.close()
    out = {"model": args.model, "V": local.n_vocab, "task": args.task, "samples": args.samples, **results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    assert all(math.isfinite(v["exact_minus_lower"]["mean"]) for v in results.values())


if __name__ == "__main__":
    main()
