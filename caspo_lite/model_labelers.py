"""Model-based step labelers (docs/design.md §1.3): ``rollout`` (Math-Shepherd) and ``judge`` (an LLM judge).

Both follow the `caspo_lite.labelers.Labeler` protocol; `caspo_lite.labeler_registry` names
them. They need an engine, so the caller (the training loop, `caspo-lite label`) builds them
with one; the pure labelers module stays free of engines. The prompt the solution was sampled with
travels in ``problem.meta["prompt_text"]`` (set by the label stage).

Only steps up to the first wrong one are labelled: later ones are never used for pairs, and
each label costs k rollouts or one judge call.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

from caspo_lite.engines.base import Engine
from caspo_lite.errors import ConfigError
from caspo_lite.labelers import Label, StepVerdict, explain_solution
from caspo_lite.search.events import BranchFinished
from caspo_lite.search.factory import build_runner
from caspo_lite.steps import StepRule
from caspo_lite.tasks.base import Problem, Prompt, Task

JUDGE_TEMPLATE = (
    "You are checking one step of a solution to a math problem.\n"
    "Problem: {question}\nCorrect final answer: {gold}\n"
    "Solution so far:\n{prefix}\nNext step: {step}\n"
    "Is the next step correct? Reply with one word, CORRECT or WRONG.\nVerdict:"
)
_VERDICT = re.compile(r"\b(correct|wrong|incorrect)\b", re.IGNORECASE)
_ANSWER_STEP = re.compile(r"(?i)answer|####|\\boxed")


def _run(
    engine: Engine,
    text: str,
    n: int,
    sampling: SimpleNamespace,
    task: Task,
    rule: StepRule,
    stop: tuple[str, ...] = (),
) -> list[str]:
    """n completions of raw ``text`` (ended by `stop` as the sampler ends them); their texts.

    ``sampling`` carries temperature, top_p, seed and max_tokens, as the factory reads them.
    """
    runner = build_runner(engine, Prompt(text=text, stop=stop), task.extract_answer, n, sampling, rule=rule)
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


def problem_seed(seed: int, problem_id: str, step: int) -> int:
    """A seed per (run seed, problem, step): problems no longer share the rollouts of step i."""
    return (seed * 1_000_003 + zlib.crc32(problem_id.encode("utf-8")) * 1009 + step) % (2**31 - 1)


def _joined(steps: Sequence[str]) -> str:
    """Steps as solution text: sampled steps keep their newline, user steps get one."""
    return "".join(s if s.endswith("\n") else s + "\n" for s in steps)


@dataclass
class RolloutLabeler:
    """A step is correct when at least ``min_frac`` of ``k`` completions from its end reach gold.

    Completions run from the prompt the solution was sampled with (``problem.meta
    ["prompt_text"]``, else the task's prompt) and stop where the sampler stops (the task
    prompt's stop strings). Seeds differ per problem and step (`problem_seed`), and the
    verdict of a prefix is cached, so sibling solutions that share a prefix are rolled out
    once. With ``mode="verify+rollout"`` the problem-aware verify labeler decides every step
    it can, and rollouts label only the steps it leaves unknown.
    """

    engine: Engine
    k: int = 4
    min_frac: float = 0.5
    max_tokens: int = 192
    temperature: float = 0.8
    seed: int = 0
    rule: StepRule = StepRule()
    mode: str = "rollout"  # or "verify+rollout"
    name: str = "rollout"
    cache: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)
    rollouts: int = 0  # completions run so far (the cost; the cache keeps it down)

    def __post_init__(self) -> None:
        if self.mode not in ("rollout", "verify+rollout"):
            raise ConfigError(
                f"rollout labeler: mode must be 'rollout' or 'verify+rollout', got {self.mode!r}"
            )

    def _base(self, problem: Problem, task: Task) -> tuple[str, tuple[str, ...]]:
        prompt = task.prompt(problem)
        text = problem.meta.get("prompt_text") or prompt.text
        if text is None:
            text = "\n".join(m["content"] for m in prompt.messages) + "\n"
        return str(text), tuple(prompt.stop)

    def _reaches_gold(self, problem: Problem, task: Task, steps: Sequence[str], i: int) -> bool:
        prefix = _joined(steps[: i + 1])
        key = (problem.id, prefix)
        if key not in self.cache:
            answer = task.extract_answer(steps[i]) if _ANSWER_STEP.search(steps[i]) else None
            if answer is not None:  # the step states a final answer: grade it directly
                self.cache[key] = task.grade(answer, problem.answer)
            else:
                base, stop = self._base(problem, task)
                sampling = SimpleNamespace(
                    temperature=self.temperature,
                    top_p=1.0,
                    seed=problem_seed(self.seed, problem.id, i),
                    max_tokens=self.max_tokens,
                )
                texts = _run(self.engine, base + prefix, self.k, sampling, task, self.rule, stop)
                self.rollouts += len(texts)
                hits = sum(task.grade(task.extract_answer(prefix + t), problem.answer) for t in texts)
                self.cache[key] = hits >= self.min_frac * self.k
        return self.cache[key]

    def label(self, problem: Problem, steps: Sequence[str], task: Task) -> list[Label]:
        return [v.label for v in self.explain(problem, steps, task)]

    def explain(self, problem: Problem, steps: Sequence[str], task: Task) -> list[StepVerdict]:
        checked = explain_solution(problem, steps, task) if self.mode == "verify+rollout" else None
        verdicts: list[StepVerdict] = []
        for i in range(len(steps)):
            if checked is not None and checked[i].label is not Label.UNKNOWN:
                verdict = checked[i]
            else:
                ok = self._reaches_gold(problem, task, steps, i)
                verdict = StepVerdict(Label.CORRECT if ok else Label.WRONG, "rollout")
            verdicts.append(verdict)
            if verdict.label is Label.WRONG:
                verdicts.extend([StepVerdict(Label.UNKNOWN, "after_wrong")] * (len(steps) - i - 1))
                break
        return verdicts


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
                self.engine,
                text,
                1,
                SimpleNamespace(temperature=0.0, top_p=1.0, seed=0, max_tokens=self.max_tokens),
                task,
                StepRule(r"\n", 1, self.max_tokens),
            )
            label = parse_verdict(verdict)
            labels.append(label)
            if label is Label.WRONG:
                labels.extend([Label.UNKNOWN] * (len(steps) - i - 1))
                break
        return labels


def verify_rollout(**options: object) -> RolloutLabeler:
    """The combined labeler: verify where it decides, rollouts where it says unknown."""
    return RolloutLabeler(**{**options, "mode": "verify+rollout", "name": "verify+rollout"})  # type: ignore[arg-type]
