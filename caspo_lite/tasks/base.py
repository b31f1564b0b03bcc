"""The task contract: load problems, build prompts, extract and grade answers.

One grader serves evaluation, pair labelling and search (nanochat's habit): a task's
`extract_answer` and `grade` are the single definition of "right" everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = dict[str, str]  # {"role": ..., "content": ...}


@dataclass(frozen=True)
class Problem:
    """One problem with its gold answer (and gold steps when the source has them)."""

    id: str
    question: str
    answer: str  # gold final answer, normalised text (e.g. "1200", "\\frac{1}{2}")
    gold_steps: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prompt:
    """What to feed a model: chat messages, or raw completion text (few-shot)."""

    messages: tuple[Message, ...] = ()
    text: str | None = None  # when set, used verbatim instead of a chat template
    stop: tuple[str, ...] = ()  # strings that end a solution (e.g. "\nQ:" for few-shot)


@runtime_checkable
class Task(Protocol):
    name: str

    def load(self, n: int | None = None, seed: int = 0, split: str = "test") -> list[Problem]: ...

    def prompt(self, problem: Problem) -> Prompt: ...

    def extract_answer(self, text: str) -> str | None: ...

    def grade(self, predicted: str | None, gold: str) -> bool: ...
