"""Search strategies by name: greedy, sc, bon, deepconf, cat, cat-verify.

One registry for the CLI, eval and the TUI: ``get_strategy(name, search, confidence, steps)``
validates the knobs and returns an object whose ``run(engine, prompt, extract_answer)``
yields events; ``run_search`` collects them into a `SearchResult`.
"""

from __future__ import annotations

from caspo_lite.config import ConfidenceSection, SearchSection, StepsSection
from caspo_lite.registry import Registry
from caspo_lite.search.base import SearchResult, Strategy, StrategyBase, run_search
from caspo_lite.search.baselines import BestOfN, DeepConfOnline, Greedy, SelfConsistency
from caspo_lite.search.cat import CaT, CaTVerify
from caspo_lite.search.factory import build_runner, step_rule

STRATEGIES: Registry[type[StrategyBase]] = Registry(
    "search strategy",
    {
        "greedy": Greedy,
        "sc": SelfConsistency,
        "bon": BestOfN,
        "deepconf": DeepConfOnline,
        "cat": CaT,
        "cat-verify": CaTVerify,
    },
)
STRATEGY_NAMES = STRATEGIES.names
# what `eval` runs when no strategy is named: cat-verify costs a second search per answer, so it
# is measured only when asked and reported as its own row
EVAL_DEFAULT_STRATEGIES = tuple(n for n in STRATEGY_NAMES if n != "cat-verify")


def get_strategy(
    name: str,
    search: SearchSection | None = None,
    confidence: ConfidenceSection | None = None,
    steps: StepsSection | None = None,
    record_all_signals: bool = False,
) -> Strategy:
    """The strategy called ``name``; ConfigError (one line) for an unknown name or bad knobs."""
    return STRATEGIES[name](
        search=search or SearchSection(),
        confidence=confidence or ConfidenceSection(),
        steps=steps or StepsSection(),
        record_all_signals=record_all_signals,
    )


__all__ = [
    "EVAL_DEFAULT_STRATEGIES",
    "STRATEGIES",
    "STRATEGY_NAMES",
    "SearchResult",
    "Strategy",
    "build_runner",
    "get_strategy",
    "run_search",
    "step_rule",
]
