"""Search strategies by name: greedy, sc, bon, deepconf, cat, cat-verify.

One registry for the CLI, eval and the TUI: ``get_strategy(name, search, confidence, steps)``
validates the knobs and returns an object whose ``run(engine, prompt, extract_answer)``
yields events; ``run_search`` collects them into a `SearchResult`.
"""

from __future__ import annotations

from caspo_lite.config import ConfidenceSection, SearchSection, StepsSection
from caspo_lite.errors import ConfigError
from caspo_lite.search.base import SearchResult, Strategy, StrategyBase, run_search
from caspo_lite.search.baselines import BestOfN, DeepConfOnline, Greedy, SelfConsistency
from caspo_lite.search.cat import CaT, CaTVerify
from caspo_lite.search.factory import build_runner, step_rule

STRATEGY_NAMES = ("greedy", "sc", "bon", "deepconf", "cat", "cat-verify")
_REGISTRY: dict[str, type[StrategyBase]] = {
    "greedy": Greedy,
    "sc": SelfConsistency,
    "bon": BestOfN,
    "deepconf": DeepConfOnline,
    "cat": CaT,
    "cat-verify": CaTVerify,
}


def get_strategy(
    name: str,
    search: SearchSection | None = None,
    confidence: ConfidenceSection | None = None,
    steps: StepsSection | None = None,
    record_all_signals: bool = False,
) -> Strategy:
    """The strategy called ``name``; ConfigError (one line) for an unknown name or bad knobs."""
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ConfigError(f"unknown search strategy {name!r}; choose one of {', '.join(STRATEGY_NAMES)}")
    return cls(
        search=search or SearchSection(),
        confidence=confidence or ConfidenceSection(),
        steps=steps or StepsSection(),
        record_all_signals=record_all_signals,
    )


__all__ = [
    "STRATEGY_NAMES",
    "SearchResult",
    "Strategy",
    "build_runner",
    "get_strategy",
    "run_search",
    "step_rule",
]
