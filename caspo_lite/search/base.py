"""What every strategy shares: the protocol, config checks, votes, and `run_search`.

A strategy is a generator of events over one engine session; `run_search` is the one place
that collects the stream into a `SearchResult` (CLI, eval and tests use it; the TUI consumes
the events directly through ``on_event``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from caspo_lite.confidence import PATH_MODES, SIGNALS
from caspo_lite.config import ConfidenceSection, SearchSection, StepsSection
from caspo_lite.engines.base import Engine
from caspo_lite.errors import ConfigError
from caspo_lite.search.events import AnswerChosen, BranchFinished, BranchPruned, SearchEvent
from caspo_lite.search.factory import build_runner, step_rule
from caspo_lite.search.runner import Runner
from caspo_lite.steps import StepRule
from caspo_lite.tasks.base import Prompt

ExtractFn = Callable[[str], str | None]


class Strategy(Protocol):
    name: str

    def run(self, engine: Engine, prompt: Prompt, extract_answer: ExtractFn) -> Iterator[SearchEvent]: ...


def check_search(search: SearchSection, confidence: ConfidenceSection, steps: StepsSection) -> StepRule:
    """Validate the knobs once, up front; ConfigError names the field and the valid range."""
    search.validate()
    if confidence.signal not in SIGNALS:
        raise ConfigError(f"confidence.signal = {confidence.signal!r}: choose one of {', '.join(SIGNALS)}")
    if confidence.path_mode not in PATH_MODES:
        raise ConfigError(
            f"confidence.path_mode = {confidence.path_mode!r}: choose one of {', '.join(PATH_MODES)}"
        )
    return step_rule(steps)


@dataclass
class StrategyBase:
    """Holds the sections; `runner` builds the shared decode loop for one search."""

    search: SearchSection = field(default_factory=SearchSection)
    confidence: ConfidenceSection = field(default_factory=ConfidenceSection)
    steps: StepsSection = field(default_factory=StepsSection)
    record_all_signals: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        self.rule = check_search(self.search, self.confidence, self.steps)

    def runner(
        self,
        engine: Engine,
        prompt: Prompt,
        extract_answer: ExtractFn,
        n_branches: int,
        greedy: bool = False,
        extra_signal: str | None = None,
    ) -> Runner:
        return build_runner(
            engine,
            prompt,
            extract_answer,
            n_branches,
            self.search,
            self.confidence,
            rule=self.rule,
            greedy=greedy,
            record_all=self.record_all_signals,
            extra_signal=extra_signal,
        )

    def chosen(
        self, runner: Runner, answer: str | None, conf: float, branch: int | None, **kw: object
    ) -> AnswerChosen:
        n_pruned = sum(1 for b in runner.pruned if not getattr(b, "stopped", False))
        counters: dict[str, Any] = {
            **runner.decode_counters(),
            "prunes": dict(runner.prune_reasons),
            "time_to_answer_s": runner.elapsed_s,
            **kw.pop("counters", {}),  # type: ignore[dict-item]
        }
        return AnswerChosen(
            answer=answer,
            confidence=float(conf),
            branch=branch,
            strategy=self.name,
            n_tokens=runner.n_tokens,
            n_branches=runner.n_started,
            n_pruned=n_pruned,
            elapsed_s=runner.elapsed_s,
            counters=counters,
            **kw,  # type: ignore[arg-type]
        )


def drive(runner: Runner) -> Iterator[SearchEvent]:
    """Advance every live branch until none is left."""
    while runner.live:
        yield from runner.advance()


def weighted_vote(
    finished: list[BranchFinished], weight: Callable[[BranchFinished], float]
) -> tuple[str | None, dict[str, float], BranchFinished | None]:
    """Sum ``weight`` per extracted answer; ties go to the answer with the surest single path.

    Returns (winner, votes, the winner's most confident path).
    """
    votes: dict[str, float] = {}
    best: dict[str, BranchFinished] = {}
    for f in finished:
        if f.answer is None:
            continue
        votes[f.answer] = votes.get(f.answer, 0.0) + float(weight(f))
        if f.answer not in best or f.path_confidence > best[f.answer].path_confidence:
            best[f.answer] = f
    if not votes:
        return None, {}, None
    winner = max(votes, key=lambda a: (votes[a], best[a].path_confidence))
    return winner, votes, best[winner]


def most_confident(finished: list[BranchFinished]) -> BranchFinished | None:
    """The finished path with an answer and the highest path confidence (first wins ties)."""
    best: BranchFinished | None = None
    for f in finished:
        if f.answer is not None and (best is None or f.path_confidence > best.path_confidence):
            best = f
    return best


@dataclass
class SearchResult:
    answer: str | None
    confidence: float
    strategy: str
    paths: list[BranchFinished]
    events: list[SearchEvent]
    n_tokens: int
    n_branches: int
    n_pruned: int
    elapsed_s: float
    tokens_per_s: float
    reason: str = ""
    cancelled: bool = False
    pruned: list[BranchPruned] = field(default_factory=list)


def run_search(
    engine: Engine,
    prompt: Prompt,
    strategy: Strategy,
    extract_answer: ExtractFn,
    on_event: Callable[[SearchEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SearchResult:
    """Run one search to its AnswerChosen, collecting every event.

    ``should_stop`` is polled between events (i.e. between tokens): when it returns True the
    strategy's generator is closed (its session freed) and the result is marked cancelled.
    """
    t0 = time.perf_counter()
    events: list[SearchEvent] = []
    final: AnswerChosen | None = None
    cancelled = False
    gen = strategy.run(engine, prompt, extract_answer)
    try:
        for ev in gen:
            events.append(ev)
            if on_event is not None:
                on_event(ev)
            if isinstance(ev, AnswerChosen):
                final = ev
            if should_stop is not None and final is None and should_stop():
                cancelled = True
                break
    finally:
        gen.close()
    elapsed = time.perf_counter() - t0
    paths = [e for e in events if isinstance(e, BranchFinished)]
    pruned = [e for e in events if isinstance(e, BranchPruned)]
    n_tokens = final.n_tokens if final else sum(1 for e in events if type(e).__name__ == "TokenGenerated")
    return SearchResult(
        answer=final.answer if final else None,
        confidence=final.confidence if final else 0.0,
        strategy=getattr(strategy, "name", "?"),
        paths=paths,
        events=events,
        n_tokens=n_tokens,
        n_branches=final.n_branches if final else len({getattr(e, "branch", None) for e in events}),
        n_pruned=final.n_pruned if final else len(pruned),
        elapsed_s=elapsed,
        tokens_per_s=n_tokens / elapsed if elapsed > 0 else 0.0,
        reason=(final.reason if final else "cancelled"),
        cancelled=cancelled,
        pruned=pruned,
    )
