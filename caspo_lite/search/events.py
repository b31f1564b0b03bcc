"""Events every search strategy yields: one stream, three consumers (CLI, TUI, tests).

Past-tense, frozen dataclasses. A branch id is unique within one search; ``parent`` links a
forked branch to where it forked, so a consumer can rebuild the reasoning tree from the
stream alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from caspo_lite.confidence import TokenStats


@dataclass(frozen=True, slots=True)
class BranchStarted:
    branch: int
    parent: int | None  # None for a root branch
    step_index: int  # index of the first step this branch will write
    reason: str = ""  # "root", "fork", "warmup", "sample"


@dataclass(frozen=True, slots=True)
class TokenGenerated:
    branch: int
    token_id: int
    text: str
    confidence: float
    logprob: float
    stats: TokenStats | None = None  # every signal, only when the search records all (eval)


@dataclass(frozen=True, slots=True)
class StepDone:
    branch: int
    step_index: int
    text: str
    step_confidence: float
    path_confidence: float
    token_confidences: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class BranchPruned:
    branch: int
    path_confidence: float
    threshold: float
    reason: str  # e.g. "below prune threshold", "beam full", "deepconf window"


@dataclass(frozen=True, slots=True)
class BranchFinished:
    branch: int
    text: str  # the whole solution text of this path
    answer: str | None  # extracted final answer (None if none could be extracted)
    path_confidence: float
    n_tokens: int
    stop_reason: str  # "eos", "stop string", "max tokens"
    step_confidences: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class AnswerChosen:
    answer: str | None
    confidence: float
    branch: int | None  # the winning path (None when voting had no single winner)
    strategy: str
    n_tokens: int  # all generated tokens, every branch
    n_branches: int
    n_pruned: int
    elapsed_s: float
    votes: dict[str, float] = field(default_factory=dict)
    reason: str = ""  # how the search stopped / how the answer was picked (e.g. a fallback)
    # decode calls, rows per decode, prunes by reason, time to answer; CaT adds its threshold,
    # early stop and tokens saved against SC (see CaT.counters)
    counters: dict[str, Any] = field(default_factory=dict)


SearchEvent = BranchStarted | TokenGenerated | StepDone | BranchPruned | BranchFinished | AnswerChosen
