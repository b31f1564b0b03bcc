"""The one place a `Runner` is built from config sections.

Why: search strategies, training's sampling, alternatives, the dev-set scorer and the model
labelers all decode through a Runner; building it from the same sections here means a new knob
(a signal, a step rule, a sampling cut) reaches every caller at once.
"""

from __future__ import annotations

from typing import Any

from caspo_lite.config import ConfidenceSection, StepsSection
from caspo_lite.engines.base import Engine
from caspo_lite.errors import ConfigError
from caspo_lite.sampling import Sampler
from caspo_lite.search.runner import ExtractFn, Runner
from caspo_lite.steps import StepRule
from caspo_lite.tasks.base import Prompt


def step_rule(steps: StepsSection) -> StepRule:
    """The steps section as a StepRule; ConfigError (one line) for a bad delimiter or bounds."""
    try:
        return StepRule(steps.delimiter, steps.min_step_tokens, steps.max_step_tokens)
    except Exception as exc:  # re.error or ValueError from StepRule's own checks
        raise ConfigError(f"steps: {exc}") from None


def build_runner(
    engine: Engine,
    prompt: Prompt,
    extract_answer: ExtractFn,
    n_branches: int,
    sampling: Any,
    confidence: ConfidenceSection | None = None,
    steps: StepsSection | None = None,
    *,
    rule: StepRule | None = None,
    greedy: bool = False,
    max_tokens: int | None = None,
    record_all: bool = False,
    extra_signal: str | None = None,
    seed: int | None = None,
) -> Runner:
    """A Runner for ``n_branches`` paths.

    ``sampling`` is any section with ``temperature``, ``top_p`` and ``max_tokens`` (and ``seed``
    unless given): the search section, or training's sample section.
    """
    conf = confidence or ConfidenceSection()
    if rule is None:
        rule = step_rule(steps or StepsSection())
    s_seed = seed if seed is not None else int(getattr(sampling, "seed", 0))
    sampler = Sampler(0.0 if greedy else sampling.temperature, sampling.top_p, s_seed)
    return Runner(
        engine,
        prompt,
        extract_answer,
        n_branches,
        sampler,
        signal=conf.signal,
        path_mode=conf.path_mode,
        step_rule=rule,
        max_tokens=max_tokens if max_tokens is not None else sampling.max_tokens,
        record_all=record_all,
        extra_signal=extra_signal,
    )
