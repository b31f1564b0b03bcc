"""Round sampling: N solutions per training problem from the current policy, with per-token confidence.

The N solutions of one problem are N root branches of one engine session (the prompt is
decoded once and forked), advanced together by the search `Runner` — the same decode loop,
confidence scorer and step segmenter that inference uses, so training-time and test-time
step confidences are the same numbers. On CPU the engine is llama.cpp on a lossless (f32/f16)
GGUF export of the policy; on a GPU it can be transformers.

Determinism: problem ``i`` of round ``r`` samples with the seed ``problem_seed(seed, r, id)``
and a fresh session, so a problem's record does not depend on which problems ran before it in
this process. That is what makes a resumed run byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from caspo_lite.confidence import step_confidence
from caspo_lite.engines.base import Engine
from caspo_lite.search.events import BranchFinished, TokenGenerated
from caspo_lite.search.factory import build_runner
from caspo_lite.tasks.base import Problem, Prompt, Task
from caspo_lite.train.config import TrainConfig
from caspo_lite.train.ledger import fault_point
from caspo_lite.train.remote_sampling import sample_problem_remote
from caspo_lite.train.sample_record import Trace, problem_seed, prompt_text, steps_of

log = logging.getLogger(__name__)


def sample_problem(
    engine: Engine,
    task: Task,
    problem: Problem,
    cfg: TrainConfig,
    seed: int,
    tokenizer: Any | None = None,
    n: int | None = None,
    prompt: Prompt | None = None,
) -> dict[str, Any]:
    """The samples record of one problem (see layout.py), graded but not yet step-labelled."""
    prompt = prompt or task.prompt(problem)
    n = n or cfg.sample.n
    if getattr(engine, "remote", False):  # whole completions from an endpoint (engines/openai.py)
        return sample_problem_remote(engine, task, problem, cfg, seed, tokenizer, n, prompt)
    runner = build_runner(
        engine, prompt, task.extract_answer, n, cfg.sample, cfg.confidence, cfg.steps, seed=seed
    )
    traces: dict[int, Trace] = {}
    finished: dict[int, BranchFinished] = {}
    runner.open()
    try:
        for _ in range(n):
            b, _ev = runner.start(reason="sample")
            traces[b.id] = Trace([], [], [], [])
        while runner.live:
            for ev in runner.advance():
                if isinstance(ev, TokenGenerated):
                    t = traces[ev.branch]
                    t.tokens.append(ev.token_id)
                    t.pieces.append(ev.text)
                    t.confs.append(ev.confidence)
                elif isinstance(ev, BranchFinished):
                    finished[ev.branch] = ev
                elif hasattr(ev, "token_confidences"):  # StepDone
                    traces[ev.branch].step_lens.append(len(ev.token_confidences))
    finally:
        runner.close()
    solutions = []
    for i in range(n):
        fin = finished[i]
        steps = steps_of(traces[i], fin.text)
        for st in steps:
            st["confidence"] = step_confidence(st["token_confidences"])
        answer = fin.answer
        solutions.append(
            {
                "index": i,
                "text": "".join(st["text"] for st in steps),
                "answer": answer,
                "correct": bool(task.grade(answer, problem.answer)) if answer is not None else False,
                "stop_reason": fin.stop_reason,
                "n_tokens": fin.n_tokens,
                "steps": steps,
                "engine": engine.name,
            }
        )
    return {
        "problem_id": problem.id,
        "question": problem.question,
        "gold": problem.answer,
        "prompt": prompt_text(prompt, tokenizer),
        "seed": seed,
        "solutions": solutions,
    }


def sample_round(
    engine: Engine,
    task: Task,
    problems: Sequence[Problem],
    cfg: TrainConfig,
    round_index: int,
    appender: Any,
    tokenizer: Any | None = None,
    on_problem: Callable[[int, int], None] | None = None,
) -> int:
    """Sample every problem not yet in ``appender`` (a JsonlAppender); returns how many were new."""
    new = 0
    for i, problem in enumerate(problems):
        if problem.id in appender.done:
            if on_problem:
                on_problem(i + 1, len(problems))
            continue
        seed = problem_seed(cfg.sample.seed, round_index, problem.id)
        appender.append(sample_problem(engine, task, problem, cfg, seed, tokenizer))
        new += 1
        fault_point("sample", len(appender.done))
        if on_problem:
            on_problem(i + 1, len(problems))
    return new
