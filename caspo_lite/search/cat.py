"""CaT — Confidence-aware Thought: best-first tree search at step granularity (DESIGN §1.6).

1. The prompt is decoded once; ``branch_factor`` root paths fork from it.
2. All live paths advance together, one token each per batch.
3. At a step boundary a path's step and path confidence are known. Below the prune
   threshold it is dropped (its KV cells freed). A survivor forks into ``branch_factor``
   children (itself plus forks) while the budget ``k`` (paths started) allows; at most
   ``beam_width`` paths live at once: when the beam is full a surer path takes the place
   of the least confident live one ("beam full").
4. A path that writes a final answer (EOS, a stop string, or a complete ``Answer:`` line)
   finishes. The search stops when a finished answer reaches ``accept_threshold``, when every
   started path has ended and the budget is spent, or at ``max_tokens`` per path.
5. Answer: the finished path with the highest path confidence, or (``selection = "vote"``)
   a path-confidence-weighted vote. If no path finished with an answer, the most confident
   pruned or partial path's answer is used and the reason says so.

The threshold is absolute (``prune_threshold >= 0``) or calibrated per problem: the
``prune_percentile``-th percentile of the path confidences seen at the first ``warmup``
step boundaries of each path (as DeepConf calibrates on warm-up traces). Until calibration
completes nothing is pruned on confidence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from caspo_lite.engines.base import Engine
from caspo_lite.search.base import ExtractFn, StrategyBase, most_confident, weighted_vote
from caspo_lite.search.events import AnswerChosen, BranchFinished, SearchEvent
from caspo_lite.search.runner import Branch, Runner
from caspo_lite.tasks.base import Prompt


@dataclass
class CaT(StrategyBase):
    name: str = "cat"

    def run(self, engine: Engine, prompt: Prompt, extract_answer: ExtractFn) -> Iterator[SearchEvent]:
        s = self.search
        width = s.beam_width
        runner = self.runner(engine, prompt, extract_answer, width)
        self.threshold: float | None = s.prune_threshold if s.prune_threshold >= 0 else None
        self.calibration: list[float] = []
        accepted: BranchFinished | None = None
        try:
            runner.open()
            for _ in range(max(1, min(s.branch_factor, s.k, width))):
                yield runner.start(None, "root")[1]
            while runner.live or runner.n_started < s.k:
                if not runner.live:  # every path ended or was pruned: new roots while budget allows
                    for _ in range(max(1, min(s.branch_factor, s.k - runner.n_started, width))):
                        yield runner.start(None, "restart")[1]
                for ev in runner.advance():
                    yield ev
                    if (
                        isinstance(ev, BranchFinished)
                        and ev.answer is not None
                        and ev.path_confidence >= s.accept_threshold
                        and accepted is None
                    ):
                        accepted = ev
                if accepted is not None:
                    for b in list(runner.live):
                        b.stopped = True
                        yield runner.prune(b, s.accept_threshold, "stopped: answer accepted")
                    break
                yield from self._at_boundaries(runner)
        finally:
            runner.close()
        yield self._choose(runner, accepted)

    # -- step boundaries -------------------------------------------------------------------------

    def _calibrate(self, boundary: list[Branch]) -> None:
        s = self.search
        for b in boundary:
            if b.n_steps <= s.warmup:
                self.calibration.append(b.path_conf)
        if any(b.n_steps > s.warmup for b in boundary) and self.calibration:
            self.threshold = float(np.percentile(self.calibration, s.prune_percentile))

    def _at_boundaries(self, runner: Runner) -> Iterator[SearchEvent]:
        s = self.search
        boundary = [b for b in runner.live if b.at_boundary]
        if not boundary:
            return
        if self.threshold is None:
            self._calibrate(boundary)
        threshold = self.threshold
        survivors = []
        for b in boundary:
            if threshold is not None and b.path_conf < threshold:
                yield runner.prune(b, threshold, "below prune threshold")
            else:
                survivors.append(b)
        survivors.sort(key=lambda b: -b.path_conf)
        for parent in survivors:
            for _ in range(s.branch_factor - 1):
                if runner.n_started >= s.k or parent not in runner.live:
                    break
                if len(runner.live) >= s.beam_width:
                    others = [b for b in runner.live if b is not parent]
                    weakest = min(others, key=lambda b: b.path_conf, default=None)
                    if weakest is None or weakest.path_conf >= parent.path_conf:
                        break
                    yield runner.prune(weakest, parent.path_conf, "beam full")
                yield runner.start(parent, "fork")[1]

    # -- the answer ------------------------------------------------------------------------------

    def _choose(self, runner: Runner, accepted: BranchFinished | None) -> AnswerChosen:
        s = self.search
        if accepted is not None:
            return self.chosen(
                runner,
                accepted.answer,
                accepted.path_confidence,
                accepted.branch,
                reason=f"accepted: path confidence >= {s.accept_threshold:g}",
            )
        with_answer = [f for f in runner.finished if f.answer is not None]
        if with_answer and s.selection == "vote":
            answer, votes, best = weighted_vote(with_answer, lambda f: f.path_confidence)
            assert best is not None
            return self.chosen(
                runner,
                answer,
                best.path_confidence,
                best.branch,
                votes=votes,
                reason="confidence-weighted vote",
            )
        best = most_confident(with_answer)
        if best is not None:
            return self.chosen(
                runner, best.answer, best.path_confidence, best.branch, reason="most confident path"
            )
        # Fallback: nothing finished with an answer; use the surest pruned or partial path.
        partial = [(b.path_conf, b.id, runner.extract_answer(b.text)) for b in runner.pruned]
        partial += [(f.path_confidence, f.branch, f.answer) for f in runner.finished]
        partial = [p for p in partial if p[2] is not None] or partial
        if not partial:
            return self.chosen(runner, None, 0.0, None, reason="no path produced anything")
        conf, bid, answer = max(partial, key=lambda p: p[0])
        why = (
            "all paths pruned" if runner.pruned and not runner.finished else "no path finished with an answer"
        )
        return self.chosen(
            runner, answer, conf, bid, reason=f"fallback: {why}; used the most confident partial path"
        )
