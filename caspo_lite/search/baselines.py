"""The baselines CaT is measured against, on the same engine, budget and events.

- greedy: one path, argmax decoding.
- sc: self-consistency@K; K samples decoded together in one batch, majority vote.
- bon: best-of-N; the same K samples, the answer of the most confident path.
- deepconf: DeepConf-online (Fu et al. 2025): warm-up traces set a threshold at a percentile
  of their lowest sliding-window group confidence (DeepConf token confidence, window 16);
  later traces stop as soon as their window confidence falls below it; the answer is a vote
  weighted by each kept trace's lowest group confidence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from caspo_lite.engines.base import Engine
from caspo_lite.search.base import ExtractFn, StrategyBase, drive, most_confident, weighted_vote
from caspo_lite.search.events import SearchEvent
from caspo_lite.search.runner import Runner
from caspo_lite.tasks.base import Prompt


@dataclass
class Greedy(StrategyBase):
    name: str = "greedy"

    def run(self, engine: Engine, prompt: Prompt, extract_answer: ExtractFn) -> Iterator[SearchEvent]:
        runner = self.runner(engine, prompt, extract_answer, 1, greedy=True)
        try:
            runner.open()
            yield runner.start(None, "root")[1]
            yield from drive(runner)
        finally:
            runner.close()
        f = runner.finished[0]
        yield self.chosen(runner, f.answer, f.path_confidence, f.branch, reason=f.stop_reason)


@dataclass
class SelfConsistency(StrategyBase):
    name: str = "sc"

    def sample_all(self, runner: Runner) -> Iterator[SearchEvent]:
        runner.open()
        for _ in range(self.search.k):
            yield runner.start(None, "sample")[1]
        yield from drive(runner)

    def run(self, engine: Engine, prompt: Prompt, extract_answer: ExtractFn) -> Iterator[SearchEvent]:
        runner = self.runner(engine, prompt, extract_answer, self.search.k)
        try:
            yield from self.sample_all(runner)
        finally:
            runner.close()
        yield self.pick(runner)

    def pick(self, runner: Runner):  # noqa: ANN201 - AnswerChosen
        answer, votes, best = weighted_vote(runner.finished, lambda f: 1.0)
        if answer is None:
            return self.chosen(runner, None, 0.0, None, reason="no sample gave an answer")
        share = votes[answer] / sum(votes.values())
        return self.chosen(
            runner, answer, share, best.branch if best else None, votes=votes, reason="majority vote"
        )


@dataclass
class BestOfN(SelfConsistency):
    name: str = "bon"

    def pick(self, runner: Runner):  # noqa: ANN201 - AnswerChosen
        best = most_confident(runner.finished)
        if best is None:
            return self.chosen(runner, None, 0.0, None, reason="no sample gave an answer")
        return self.chosen(
            runner, best.answer, best.path_confidence, best.branch, reason="most confident path"
        )


def lowest_group(confs: list[float], window: int) -> float:
    """DeepConf's lowest group confidence: min over sliding windows of the mean (all if short)."""
    if not confs:
        return 0.0
    arr = np.asarray(confs, dtype=np.float64)
    if arr.size <= window:
        return float(arr.mean())
    c = np.concatenate(([0.0], np.cumsum(arr)))
    return float(((c[window:] - c[:-window]) / window).min())


@dataclass
class DeepConfOnline(StrategyBase):
    name: str = "deepconf"
    window: int = 16

    def run(self, engine: Engine, prompt: Prompt, extract_answer: ExtractFn) -> Iterator[SearchEvent]:
        s = self.search
        n_warm = max(1, min(s.warmup, s.k))
        n_rest = s.k - n_warm
        runner = self.runner(engine, prompt, extract_answer, max(n_warm, n_rest, 1), extra_signal="deepconf")
        group: dict[int, float] = {}  # branch id -> lowest group confidence
        try:
            runner.open()
            warm_ids = []
            for _ in range(n_warm):
                b, ev = runner.start(None, "warmup")
                warm_ids.append(b.id)
                yield ev
            yield from self._drive(runner, group, None)
            warm = [group[i] for i in warm_ids if i in group]
            threshold = float(np.percentile(warm, s.prune_percentile)) if warm else 0.0
            for _ in range(n_rest):
                yield runner.start(None, "sample")[1]
            yield from self._drive(runner, group, threshold)
        finally:
            runner.close()
        kept = [f for f in runner.finished if group.get(f.branch, 0.0) >= threshold]
        answer, votes, best = weighted_vote(kept or runner.finished, lambda f: group.get(f.branch, 0.0))
        if answer is None:
            yield self.chosen(runner, None, 0.0, None, reason="no trace gave an answer")
            return
        total = sum(votes.values()) or 1.0
        yield self.chosen(
            runner,
            answer,
            votes[answer] / total,
            best.branch if best else None,
            votes=votes,
            reason=f"confidence-weighted vote (threshold {threshold:.3g})",
        )

    def _drive(
        self, runner: Runner, group: dict[int, float], threshold: float | None
    ) -> Iterator[SearchEvent]:
        """Advance all traces; with a threshold, stop a trace whose last window falls below it."""
        w = self.window
        while runner.live:
            before = list(runner.live)
            yield from runner.advance()
            for b in before:
                live = b in runner.live and threshold is not None and len(b.extra_conf) >= w
                if live and float(np.mean(b.extra_conf[-w:])) < threshold:
                    yield runner.prune(b, threshold, "deepconf window")
                if b not in runner.live:
                    group[b.id] = lowest_group(b.extra_conf, w)
