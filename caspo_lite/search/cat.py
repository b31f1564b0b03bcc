"""CaT — Confidence-aware Thought: a confidence-pruned tree search at step granularity (docs/design.md §1.6).

1. The prompt is decoded once; ``min(k, beam_width)`` root paths fork from it at once, so the
   first decode already fills the batch self-consistency would use.
2. All live paths advance together, one token each per batch.
3. At a step boundary a path's step and path confidence are known. Below the prune threshold it
   is dropped (reason ``confidence``; its KV cells freed). While the budget ``k`` (paths started)
   is not spent and the beam has room, the survivor whose last step was the least sure forks
   (``branch_factor - 1`` children): branching where the model hesitated. A full beam lets a
   surer parent's fork replace the least confident live path (reason ``beam``).
4. A path that writes a final answer (EOS, a stop string, or a complete ``Answer:`` line)
   finishes. The search stops early when a finished path's confidence reaches
   ``accept_threshold`` (``accept``), when the confidence-weighted vote share of the leading
   answer among >= 2 finished paths reaches ``consensus`` (``consensus``), or when the live
   paths could no longer overturn the vote even if each kept its current confidence
   (``decided``; off with the consensus stop, ``consensus > 1``); the live paths are then cut
   ("stopped: ..."). New roots after the tree empties only with ``restart``.
5. Answer: a confidence-weighted vote (``selection = "vote"``) or the finished path with the
   highest path confidence (``"max"``); without any finished answer, the surest pruned or
   partial path's answer, and the reason says so.

The prune threshold is absolute (``prune_threshold >= 0``), or the ``prune_percentile``-th
percentile of path confidences the model's calibration recorded on dev problems (section
``cat`` of calibration.json, `caspo_lite.search.cat_calibration`), so it fires at the very first
step boundary; without a calibration for this signal, the percentile of the roots' own path
confidences at their first step boundary (the warm-up paths) sets it. The accept test uses the
model's calibrated P(correct) (section ``answer``) when there is one, else the path confidence.

`CaTVerify` (strategy ``cat-verify``) also prunes, at once, a path whose just-closed step fails
the exact arithmetic check of the ``verify`` labeler (`caspo_lite.labelers.verify_step`: no gold
answer is used at inference), reason ``verify``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from caspo_lite.engines.base import Engine
from caspo_lite.labelers import Label, verify_step
from caspo_lite.search.base import ExtractFn, StrategyBase, most_confident, weighted_vote
from caspo_lite.search.cat_calibration import SECTION, answer_probability, load_calibration, threshold_for
from caspo_lite.search.events import AnswerChosen, BranchFinished, SearchEvent
from caspo_lite.search.runner import Branch, Runner
from caspo_lite.tasks.base import Prompt

PRUNE_CONFIDENCE = "confidence"
PRUNE_BEAM = "beam"
PRUNE_VERIFY = "verify"
STOPPED = "stopped: "  # prefix of the reasons of paths cut because the search ended early


@dataclass
class _Stop:
    reason: str  # accept / consensus / decided
    value: float  # the figure that cleared its bar
    accepted: BranchFinished | None = None


@dataclass
class CaT(StrategyBase):
    name: str = "cat"

    # -- the loop --------------------------------------------------------------------------------

    def run(self, engine: Engine, prompt: Prompt, extract_answer: ExtractFn) -> Iterator[SearchEvent]:
        s = self.search
        width = min(s.beam_width, s.k)
        runner = self.runner(engine, prompt, extract_answer, width)
        calibration = load_calibration(engine, s.calibration)  # cached: read once per model file
        self.p_correct: Callable[[BranchFinished], float] | None = answer_probability(calibration)
        self.threshold, self.threshold_source = self._initial_threshold(calibration)
        self.warm: dict[int, float] = {}  # root id -> path confidence at its first boundary
        self.roots: set[int] = set()
        stop: _Stop | None = None
        try:
            runner.open()
            for _ in range(width):
                b, ev = runner.start(None, "root")
                self.roots.add(b.id)
                yield ev
            while runner.live or (s.restart and runner.n_started < s.k):
                if not runner.live:  # only when asked: a new wave of roots
                    for _ in range(min(width, s.k - runner.n_started)):
                        yield runner.start(None, "restart")[1]
                done: list[BranchFinished] = []
                for ev in runner.advance():
                    yield ev
                    if isinstance(ev, BranchFinished):
                        done.append(ev)
                if done:
                    stop = self._should_stop(runner, done)
                if stop is not None:
                    for b in list(runner.live):
                        b.stopped = True
                        yield runner.prune(b, stop.value, STOPPED + stop.reason)
                    break
                yield from self._at_boundaries(runner)
        finally:
            runner.close()
        yield self._choose(runner, stop)

    # -- thresholds ------------------------------------------------------------------------------

    def _initial_threshold(self, calibration: dict[str, Any] | None) -> tuple[float | None, str]:
        s, c = self.search, self.confidence
        if s.prune_threshold >= 0:
            return float(s.prune_threshold), "fixed"
        section = (calibration or {}).get(SECTION)
        t = threshold_for(section, s.prune_percentile, c.signal, c.path_mode)
        if t is not None:
            return t, "calibration"
        return None, "warm-up"

    def _warm_up(self, runner: Runner, boundary: list[Branch]) -> None:
        """Set the threshold once every root has closed its first step (or ended before it)."""
        for b in boundary:
            if b.id in self.roots and b.n_steps == 1:
                self.warm[b.id] = b.path_conf
        live_roots = {b.id for b in runner.live if b.id in self.roots and b.n_steps == 0}
        if self.warm and not live_roots:
            self.threshold = float(np.percentile(list(self.warm.values()), self.search.prune_percentile))

    # -- step boundaries -------------------------------------------------------------------------

    def _rejects(self, b: Branch) -> str | None:
        """Why the path must go at this boundary (None = it may stay)."""
        t = self.threshold
        if t is not None and b.path_conf < t:
            return PRUNE_CONFIDENCE
        return None

    def _at_boundaries(self, runner: Runner) -> Iterator[SearchEvent]:
        s = self.search
        boundary = [b for b in runner.live if b.at_boundary]
        if not boundary:
            return
        if self.threshold is None:
            self._warm_up(runner, boundary)
            if self.threshold is not None:  # just set: judge every root that waited for it
                boundary = [b for b in runner.live if b.n_steps >= 1]
        judged = [(b, self._rejects(b)) for b in boundary]
        keep_one = (
            not runner.finished and all(r is not None for _, r in judged) and len(judged) == len(runner.live)
        )
        if keep_one:  # never prune the last paths away: the surest one continues
            best = max(judged, key=lambda br: br[0].path_conf)[0]
            judged = [(b, None if b is best else r) for b, r in judged]
        survivors = []
        for b, why in judged:
            if why is not None:
                yield runner.prune(b, self.threshold if self.threshold is not None else -1.0, why)
            elif b.at_boundary:
                survivors.append(b)
        if runner.n_started >= s.k or s.branch_factor < 2:
            return
        survivors.sort(key=lambda b: b.step_confs[-1] if b.step_confs else 1.0)  # least sure step first
        width = min(s.beam_width, s.k)
        for parent in survivors:
            for _ in range(s.branch_factor - 1):
                if runner.n_started >= s.k or parent not in runner.live:
                    return
                if len(runner.live) >= width:
                    others = [b for b in runner.live if b is not parent]
                    weakest = min(others, key=lambda b: b.path_conf, default=None)
                    if weakest is None or weakest.path_conf >= parent.path_conf:
                        break
                    yield runner.prune(weakest, parent.path_conf, PRUNE_BEAM)
                yield runner.start(parent, "fork")[1]

    # -- early stop ------------------------------------------------------------------------------

    def answer_confidence(self, f: BranchFinished) -> float:
        """The confidence the accept test reads: calibrated P(correct) when the model has a map."""
        return self.p_correct(f) if self.p_correct is not None else f.path_confidence

    def _should_stop(self, runner: Runner, done: list[BranchFinished]) -> _Stop | None:
        s = self.search
        for f in done:
            if f.answer is not None and self.answer_confidence(f) >= s.accept_threshold:
                return _Stop("accept", s.accept_threshold, f)
        if not runner.live or s.consensus > 1.0:
            return None
        finished = [f for f in runner.finished if f.answer is not None]
        if len(finished) < 2:
            return None
        _, votes, _ = weighted_vote(finished, lambda f: f.path_confidence)
        ranked = sorted(votes.values(), reverse=True)
        total = sum(ranked)
        share = ranked[0] / total if total > 0 else 0.0
        if share >= s.consensus:
            return _Stop("consensus", s.consensus)
        second = ranked[1] if len(ranked) > 1 else 0.0
        if ranked[0] - second > sum(b.path_conf for b in runner.live):
            return _Stop("decided", share)
        return None

    # -- the answer ------------------------------------------------------------------------------

    def _choose(self, runner: Runner, stop: _Stop | None) -> AnswerChosen:
        s = self.search
        kw: dict[str, Any] = {"counters": self.counters(runner, stop)}
        if stop is not None and stop.accepted is not None:
            a = stop.accepted
            return self.chosen(
                runner, a.answer, a.path_confidence, a.branch,
                reason=f"accepted: confidence >= {s.accept_threshold:g}", **kw,
            )  # fmt: skip
        early = f"stopped on {stop.reason}; " if stop is not None else ""
        with_answer = [f for f in runner.finished if f.answer is not None]
        if with_answer and s.selection == "vote":
            answer, votes, best = weighted_vote(with_answer, lambda f: f.path_confidence)
            assert best is not None
            return self.chosen(
                runner, answer, best.path_confidence, best.branch, votes=votes,
                reason=early + "confidence-weighted vote", **kw,
            )  # fmt: skip
        best = most_confident(with_answer)
        if best is not None:
            return self.chosen(
                runner, best.answer, best.path_confidence, best.branch,
                reason=early + "most confident path", **kw,
            )  # fmt: skip
        # Fallback: nothing finished with an answer; use the surest pruned or partial path.
        partial = [(b.path_conf, b.id, runner.extract_answer(b.text)) for b in runner.pruned]
        partial += [(f.path_confidence, f.branch, f.answer) for f in runner.finished]
        partial = [p for p in partial if p[2] is not None] or partial
        if not partial:
            return self.chosen(runner, None, 0.0, None, reason="no path produced anything", **kw)
        conf, bid, answer = max(partial, key=lambda p: p[0])
        why = (
            "all paths pruned" if runner.pruned and not runner.finished else "no path finished with an answer"
        )
        return self.chosen(
            runner, answer, conf, bid, reason=f"fallback: {why}; used the most confident partial path", **kw
        )

    def counters(self, runner: Runner, stop: _Stop | None) -> dict[str, Any]:
        """CaT's own figures: threshold and its source, prunes by reason, early stop, tokens.

        ``tokens_shared`` is exact: tokens a fork inherited, which K independent samples
        would each decode again. ``tokens_cut`` estimates what the cut paths (pruned, stopped,
        never started) would still have generated, at the mean length of the finished paths.
        """
        s = self.search
        lengths = [f.n_tokens for f in runner.finished]
        mean_len = sum(lengths) / len(lengths) if lengths else 0.0
        shared = runner.n_inherited
        cut = sum(max(0.0, mean_len - len(b.tokens)) for b in runner.pruned)
        cut += max(0, s.k - runner.n_started) * mean_len
        return {
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "early_stop": stop.reason if stop is not None else None,
            "n_roots": len(self.roots),
            "tokens_shared": int(shared),
            "tokens_cut": round(cut),
            "tokens_saved_vs_sc": int(shared) + round(cut),
        }


@dataclass
class CaTVerify(CaT):
    """CaT that also drops a path whose last step fails the exact arithmetic check (see module doc)."""

    name: str = "cat-verify"

    def _rejects(self, b: Branch) -> str | None:
        step = "".join(b.pieces[b.last_step_start : b.step_start])
        if step.strip() and verify_step(step) is Label.WRONG:
            return PRUNE_VERIFY
        return super()._rejects(b)
