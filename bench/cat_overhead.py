"""What confidence costs per token, and how our decode loop compares with llama-cpp-python's own.

Figures (SmolLM2-135M by default, all CPU threads):
1. confidence share: time in ConfidenceScorer.score (one O(V) pass on the logits view) as a
   share of the decode time per token, per signal (target <= 2% for entropy);
2. single-branch tokens/s of our engine loop (decode + numpy sampling + confidence) and of
   the whole greedy search (events, steps) against `Llama.create_completion` on the same
   model, prompt and token count (target >= 0.95x).

Run: .venv/bin/python bench/cat_overhead.py [--model smollm2-135m] [--tokens 128] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from caspo_lite.confidence import SIGNALS, ConfidenceScorer
from caspo_lite.config import SearchSection
from caspo_lite.engines import load_engine, resolve_gguf
from caspo_lite.sampling import Sampler
from caspo_lite.search import get_strategy, run_search
from caspo_lite.tasks import get_task

PROMPT_QUESTION = "What is 14 + 7 - 5 + 9?"


def engine_loop(engine, prompt_ids: list[int], n: int, scorer: ConfidenceScorer | None):  # noqa: ANN001, ANN201
    """Greedy loop on one branch; returns (tokens, decode_s, confidence_s, total_s)."""
    sampler = Sampler(0.0)
    t0 = time.perf_counter()
    s = engine.session(1)
    row = s.prefill(prompt_ids, 0)
    tokens, dec, conf = [], 0.0, 0.0
    for _ in range(n):
        tok = sampler.sample(row)
        if scorer is not None:
            c0 = time.perf_counter()
            scorer.score(row, tok)
            conf += time.perf_counter() - c0
        tokens.append(tok)
        d0 = time.perf_counter()
        row = s.decode({0: tok})[0]
        dec += time.perf_counter() - d0
    s.close()
    return tokens, dec, conf, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    threads = args.threads or os.cpu_count() or 1
    path = resolve_gguf(args.model)
    engine = load_engine(args.model, n_threads=threads, n_ctx=2048)
    task = get_task("arith")
    prompt = task.prompt(task.load(n=1)[0])
    prompt_text = prompt.text or ""
    ids = engine.render(prompt)
    print(
        f"model {args.model} ({path.name}), quant {path.stem.split('.')[-1]}, vocab {engine.n_vocab}, "
        f"threads {threads}, prompt {len(ids)} tokens, {args.tokens} generated tokens, best of {args.repeats}"
    )

    engine_loop(engine, ids, 8, None)  # warm up
    print("\n1. confidence cost per token (share of decode time)")
    for signal in SIGNALS:
        best = min(
            (engine_loop(engine, ids, args.tokens, ConfidenceScorer(signal)) for _ in range(args.repeats)),
            key=lambda r: r[2],
        )
        _, dec, conf, _ = best
        print(
            f"   {signal:9s} {1e6 * conf / args.tokens:7.1f} us/token = {100 * conf / dec:5.2f}% of decode "
            f"({1e3 * dec / args.tokens:.2f} ms/token)"
        )
    allsig = ConfidenceScorer("entropy")
    row = np.random.default_rng(0).normal(size=engine.n_vocab).astype(np.float32)
    t0 = time.perf_counter()
    for _ in range(200):
        allsig.stats(row, 1)
    print(f"   all signals (stats) {1e6 * (time.perf_counter() - t0) / 200:.1f} us/token")

    print("\n2. single-branch tokens/s (prompt + generation, same prompt and token count)")
    ours = min(
        (engine_loop(engine, ids, args.tokens, ConfidenceScorer("entropy")) for _ in range(args.repeats)),
        key=lambda r: r[3],
    )
    our_tps = args.tokens / ours[3]
    search = SearchSection(max_tokens=args.tokens)
    greedy = get_strategy("greedy", search)
    runs = [run_search(engine, prompt, greedy, lambda _t: None) for _ in range(args.repeats)]
    best_run = min(runs, key=lambda r: r.elapsed_s / max(r.n_tokens, 1))
    search_tps = best_run.n_tokens / best_run.elapsed_s
    reps = range(args.repeats)
    same_n = min(
        (engine_loop(engine, ids, best_run.n_tokens, ConfidenceScorer("entropy")) for _ in reps),
        key=lambda r: r[3],
    )
    loop_same_tps = best_run.n_tokens / same_n[3]
    engine.close()

    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(path), n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    vocab = llm._model.vocab
    no_eos = {t: -1e9 for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)}

    def reference(n_tokens: int) -> tuple[float, str]:
        """Best tokens/s of create_completion for exactly n_tokens (EOS banned), and its text."""
        times, text = [], ""
        for _ in range(args.repeats):
            llm.reset()
            t0 = time.perf_counter()
            out = llm.create_completion(prompt_text, max_tokens=n_tokens, temperature=0.0, logit_bias=no_eos)
            times.append(time.perf_counter() - t0)
            text = out["choices"][0]["text"]
        return n_tokens / min(times), text

    ref_tps, ref_text = reference(args.tokens)
    ref_m_tps, _ = reference(best_run.n_tokens)
    our_text = "".join(load_engine(args.model, n_threads=1).token_text(t) for t in ours[0])
    print(f"   llama-cpp-python create_completion : {ref_tps:7.1f} tok/s ({args.tokens} tokens, EOS banned)")
    print(f"   caspo-lite engine loop (+entropy)  : {our_tps:7.1f} tok/s = {our_tps / ref_tps:.2f}x")
    print(
        f"   caspo-lite greedy search (events)  : {search_tps:7.1f} tok/s vs {ref_m_tps:.1f} for the same "
        f"{best_run.n_tokens} tokens = {search_tps / ref_m_tps:.2f}x"
    )
    print(
        f"   greedy search vs engine loop        : {search_tps:7.1f} vs {loop_same_tps:.1f} tok/s "
        f"on the same {best_run.n_tokens} tokens = {search_tps / loop_same_tps:.2f}x (target >= 0.95x)"
    )
    same = next((i for i, (a, b) in enumerate(zip(our_text, ref_text, strict=False)) if a != b), None)
    where = "identical" if same is None else f"first differs at char {same} (a near-tie in Q4 logits)"
    print(f"   greedy text vs create_completion: {where}")


if __name__ == "__main__":
    main()
