"""Model-based step labelers (DESIGN §1.3): ``rollout`` (Math-Shepherd) and ``judge`` (an LLM judge).

Both follow the `caspo_lite.labelers.Labeler` protocol and are registered there under their
names when this module is imported (`register`). They need an engine, so they are built by
the training loop, not by the pure labelers module. The prompt the solution was sampled with
travels in ``problem.meta["prompt_text"]`` (set by the label stage).

Only steps up to the first wrong one are labelled: later ones are never used for pairs, and
each label costs k rollouts or one judge call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from caspo_lite.engines.base import Engine
from caspo_lite.labelers import Label, register_labeler
from caspo_lite.sampling import Sampler
from caspo_lite.search.events import BranchFinished
from caspo_lite.search.runner import Runner
from caspo_lite.steps import StepRule
from caspo_lite.tasks.base import Problem, Prompt, Task

JUDGE_TEMPLATE = (
    "You are checking one step of a solution to a math problem.\n"
    "Problem: {question}\nCorrect final answer: {gold}\n"
    "Solution so far:\n{prefix}\nNext step: {step}\n"
    "Is the next step correct? Reply with one word, CORRECT or WRONG.\nVerdict:"
)
_VERDICT = re.compile(r"\b(correct|wrong|incorrect)\b", re.IGNORECASE)


def _run(
    engine: Engine, text: str, n: int, sampler: Sampler, task: Task, rule: StepRule, max_tokens: int
) -> list[str]:
    """n completions of raw ``text``; returns their texts."""
    runner = Runner(
        engine, Prompt(text=text), task.extract_answer, n, sampler, step_rule=rule, max_tokens=max_tokens
    )
    runner.open()
    out: list[str] = []
    try:
        for _ in range(n):
            runner.start(reason="sample")
        while runner.live:
            out.extend(ev.text for ev in runner.advance() if isinstance(ev, BranchFinished))
    finally:
        runner.close()
    return out


@dataclass
class RolloutLabeler:
    """A step is correct when at least ``min_frac`` of ``k`` completions from its end reach gold."""

    engine: Engine
    k: int = 4
    min_frac: float = 0.5
    max_tokens: int = 192
    temperature: float = 0.8
    seed: int = 0
    rule: StepRule = StepRule()
    name: str = "rollout"

    def label(self, problem: Problem, steps: Sequence[str], task: Task) -> list[Label]:
        base = str(problem.meta.get("prompt_text", problem.question + "\n"))
        labels: list[Label] = []
        for i in range(len(steps)):
            prefix = "".join(steps[: i + 1])
            answer = task.extract_answer(prefix)
            if answer is not None:  # the step states a final answer: grade it directly
                ok = task.grade(answer, problem.answer)
            else:
                sampler = Sampler(self.temperature, 1.0, seed=self.seed * 1_000_003 + i)
                texts = _run(self.engine, base + prefix, self.k, sampler, task, self.rule, self.max_tokens)
                hits = sum(task.grade(task.extract_answer(prefix + t), problem.answer) for t in texts)
                ok = hits >= self.min_frac * self.k
            labels.append(Label.CORRECT if ok else Label.WRONG)
            if not ok:
                labels.extend([Label.UNKNOWN] * (len(steps) - i - 1))
                break
        return labels


def parse_verdict(text: str) -> Label:
    m = _VERDICT.search(text)
    if m is None:
        return Label.UNKNOWN
    return Label.CORRECT if m.group(1).lower() == "correct" else Label.WRONG


@dataclass
class JudgeLabeler:
    """An LLM judge reads problem, gold answer, prefix and step; answers CORRECT or WRONG (greedy)."""

    engine: Engine
    max_tokens: int = 8
    template: str = JUDGE_TEMPLATE
    name: str = "judge"

    def label(self, problem: Problem, steps: Sequence[str], task: Task) -> list[Label]:
        labels: list[Label] = []
        for i, step in enumerate(steps):
            text = self.template.format(
                question=problem.question,
                gold=problem.answer,
                prefix="".join(steps[:i]) or "(none)",
                step=step.strip(),
            )
            (verdict,) = _run(
                self.engine, text, 1, Sampler(0.0), task, StepRule(r"\n", 1, self.max_tokens), self.max_tokens
            )
            label = parse_verdict(verdict)
            labels.append(label)
            if label is Label.WRONG:
                labels.extend([Label.UNKNOWN] * (len(steps) - i - 1))
                break
        return labels


def register() -> None:
    register_labeler("rollout", RolloutLabeler)
    register_labeler("judge", JudgeLabeler)


register()
