"""The sampling stage on a remote endpoint: N whole completions per problem, then the same steps.

A remote endpoint (engines/openai.py) returns each solution whole, with per-token top-k
logprobs. This module turns them into the very record `sample_problem` writes: the tokens are
replayed through the same `StepSegmenter`, a path ends where the in-process runner would end
it (a stop string, or a step that closes a complete ``Answer:`` line), and each token's
confidence comes from its top-k logprobs — for the entropy signal through the bound the config
names (``sample.entropy_bound``), since top-k logprobs only bound the entropy. Each solution
records the engine that produced it and, for entropy, the bound used.

Token ids are not recorded (``token_ids`` is empty): endpoints return token texts, and nothing
downstream of sampling (labels, pairs, DPO) reads ids.
"""

from __future__ import annotations

from typing import Any

from caspo_lite.confidence import step_confidence
from caspo_lite.engines.openai import OpenAIEngine, RemoteCompletion, topk_confidence
from caspo_lite.errors import ConfigError
from caspo_lite.search.runner import _ANSWER_LINE
from caspo_lite.steps import StepRule, StepSegmenter
from caspo_lite.tasks.base import Problem, Prompt, Task
from caspo_lite.train.config import TrainConfig
from caspo_lite.train.sample_record import Trace, prompt_text, steps_of


def replay(
    completion: RemoteCompletion,
    rule: StepRule,
    stops: tuple[str, ...],
    extract_answer: Any,
    max_tokens: int,
    confidence: Any,
) -> tuple[Trace, str, str]:
    """(trace, solution text, stop reason) of one remote completion, cut as the runner cuts."""
    trace = Trace([], [], [], [])
    seg = StepSegmenter(rule)
    step_start = 0
    reason = "max tokens" if completion.finish_reason == "length" else "eos"
    cut_text: str | None = None
    for tok in completion.tokens:
        trace.pieces.append(tok.text)
        trace.confs.append(confidence(tok))
        text = "".join(trace.pieces)
        hit = next((s for s in stops if s in "".join(trace.pieces[-8:])), None)
        if hit is not None:
            cut_text, reason = text[: text.rfind(hit)], "stop string"
            break
        if seg.push(tok.text):
            trace.step_lens.append(len(trace.pieces) - step_start)
            step_start = len(trace.pieces)
            if _ANSWER_LINE.search(text[-400:]) and extract_answer(text) is not None:
                reason = "answer"
                break
        if len(trace.pieces) >= max_tokens:
            reason = "max tokens"
            break
    else:
        if completion.finish_reason != "length" and stops:
            reason = "stop string"  # the endpoint stopped at one of our stop strings (or EOS)
    if len(trace.pieces) > step_start:
        trace.step_lens.append(len(trace.pieces) - step_start)
    return trace, cut_text if cut_text is not None else "".join(trace.pieces), reason


def sample_problem_remote(
    engine: OpenAIEngine,
    task: Task,
    problem: Problem,
    cfg: TrainConfig,
    seed: int,
    tokenizer: Any | None,
    n: int,
    prompt: Prompt,
) -> dict[str, Any]:
    """`sample_problem`'s record, sampled as ``n`` concurrent requests to the endpoint."""
    text = prompt_text(prompt, tokenizer)
    sc = cfg.sample
    stops = tuple(s for s in prompt.stop if s)
    completions = engine.sample(text, n, sc.max_tokens, sc.temperature, sc.top_p, seed, stops)
    rule = StepRule(cfg.steps.delimiter, cfg.steps.min_step_tokens, cfg.steps.max_step_tokens)
    signal, bound = cfg.confidence.signal, sc.entropy_bound

    def confidence(tok: Any) -> float:
        return topk_confidence(tok.top_logprobs, signal, bound, engine.n_vocab)

    solutions = []
    for i, completion in enumerate(completions):
        trace, solution_text, reason = replay(
            completion, rule, stops, task.extract_answer, sc.max_tokens, confidence
        )
        steps = steps_of(trace, solution_text)
        for st in steps:
            st["confidence"] = step_confidence(st["token_confidences"])
        answer = task.extract_answer(solution_text)
        solutions.append(
            {
                "index": i,
                "text": "".join(st["text"] for st in steps),
                "answer": answer,
                "correct": bool(task.grade(answer, problem.answer)) if answer is not None else False,
                "stop_reason": reason,
                "n_tokens": len(trace.pieces),
                "steps": steps,
                "engine": completion.engine,
                "entropy_bound": bound if signal == "entropy" else None,
            }
        )
    return {
        "problem_id": problem.id,
        "question": problem.question,
        "gold": problem.answer,
        "prompt": text,
        "seed": seed,
        "solutions": solutions,
    }


def open_remote_engine(cfg: TrainConfig, round_index: int, tokenizer: Any | None = None) -> OpenAIEngine:
    """The `openai` engine of round ``round_index`` (``sample.endpoint_model`` with ``{round}`` filled).

    The endpoint must serve the round's current policy (round 0: the base model; later rounds:
    the previous round's weights, e.g. as a vLLM LoRA module named by the ``{round}`` pattern).
    The API key comes from the environment (CASPO_LITE_ENDPOINT_KEY), never from a recipe,
    since recipes are copied into every round folder.
    """
    import os

    sc = cfg.sample
    n_vocab = sc.endpoint_vocab or (len(tokenizer) if tokenizer is not None else 0)
    if n_vocab < 2:
        raise ConfigError(
            "sample.endpoint_vocab = 0 and no policy tokenizer to read V from; set sample.endpoint_vocab"
        )
    return OpenAIEngine(
        sc.endpoint,
        sc.endpoint_model.replace("{round}", str(round_index)),
        n_vocab,
        api_key=os.environ.get("CASPO_LITE_ENDPOINT_KEY") or None,
        top_logprobs=sc.top_logprobs,
        concurrency=sc.concurrency,
    )
