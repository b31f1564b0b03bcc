"""Alternatives at a prefix (``pairs.alt_samples = m``): resampled steps, then the rank-2 fallback.

The cheap source of alternatives is the other samples of the same problem that share the
prefix (pairs.py does that on its own). They are rarely enough: long solutions seldom share
long prefixes, so most A/B candidates found no opposite-label step (0.69 pairs a problem on
the default recipe before this module was on). For every candidate prefix that still lacks a
step with the label it needs, this module:

1. samples m continuations of that one step in one batched llama.cpp call (the prefix is
   decoded once and forked: `Runner`), each stopped at its first step boundary;
2. labels the distinct ones in order in the prefix's context, stopping as soon as every
   candidate at the prefix has its own step with the label it needs (origin ``resample``);
3. for an A candidate (correct, unsure) still without a wrong alternative: forces the
   rank-2 token at the step's least confident *content* position, completes the step
   greedily and labels it (origin ``rank2``: the second most probable token, docs/design.md §1.4).
   Content = a token with a letter or digit: the least confident token of a step is most
   often its line end or a space, and swapping those yields the same step in other clothes.

Per problem the result is one ``alternatives.jsonl`` line, so a run killed mid-stage resumes
at the next problem and, the seeds being derived from (seed, round, problem, prefix), ends
with the same pairs as an uninterrupted one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from caspo_lite.confidence import ConfidenceScorer, step_confidence
from caspo_lite.labelers import Label, label_next_step
from caspo_lite.pairs import (
    CORRECT,
    WRONG,
    PairRule,
    ProblemSamples,
    Step,
    candidate,
    mode_thresholds,
    used_steps,
)
from caspo_lite.search.events import BranchFinished, StepDone, TokenGenerated
from caspo_lite.search.factory import build_runner
from caspo_lite.steps import StepRule, StepSegmenter
from caspo_lite.tasks.base import Problem, Prompt, Task
from caspo_lite.train.config import TrainConfig
from caspo_lite.train.ledger import JsonlAppender, fault_point, read_jsonl
from caspo_lite.train.sampling import problem_seed


@dataclass
class AltStats:
    """What the stage did (merged into ``pairs_report.json``; counts summed over problems)."""

    counts: Counter = field(default_factory=Counter)
    time_s: float = 0.0

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {f"alt/{k}": v for k, v in sorted(self.counts.items())}
        out["alt/time_s"] = round(self.time_s, 3)
        return out


def _rule(cfg: TrainConfig) -> StepRule:
    return StepRule(cfg.steps.delimiter, cfg.steps.min_step_tokens, cfg.steps.max_step_tokens)


def sample_steps(
    engine: Any, text: str, m: int, cfg: TrainConfig, seed: int, task: Task
) -> list[tuple[str, list[float], list[int]]]:
    """m next steps after raw ``text`` in one batched call: (step text, token confidences, ids)."""
    runner = build_runner(
        engine,
        Prompt(text=text),
        task.extract_answer,
        m,
        cfg.sample,
        replace(cfg.confidence, path_mode="geomean"),
        cfg.steps,
        max_tokens=cfg.steps.max_step_tokens,
        seed=seed,
    )
    pieces: dict[int, list[str]] = {}
    confs: dict[int, list[float]] = {}
    ids: dict[int, list[int]] = {}
    done: set[int] = set()
    runner.open()
    try:
        for _ in range(m):
            b, _ev = runner.start(reason="sample")
            pieces[b.id], confs[b.id], ids[b.id] = [], [], []
        while runner.live:
            for ev in runner.advance():
                if isinstance(ev, TokenGenerated) and ev.branch not in done:
                    pieces[ev.branch].append(ev.text)
                    confs[ev.branch].append(ev.confidence)
                    ids[ev.branch].append(int(ev.token_id))
                elif isinstance(ev, StepDone | BranchFinished):
                    done.add(ev.branch)
            for b in list(runner.live):
                if b.id in done:
                    runner.prune(b, 0.0, "step done")
    finally:
        runner.close()
    order = sorted(pieces)
    return [("".join(pieces[i]), confs[i], ids[i]) for i in order if "".join(pieces[i]).strip()]


def rank2_step(engine: Any, text: str, own: Step, rule: StepRule, signal: str) -> Step | None:
    """``own`` with its least confident token replaced by the best other token, completed greedily.

    The prefix ``text`` is decoded, then ``own``'s stored ids up to its least confident content
    token j (one with a letter or digit); at j the most probable content token other than
    ``own``'s is forced (the rank-2 token when ``own`` took the argmax), and the step goes on
    greedily to its boundary. None when ``own`` has no stored ids or no content token.
    """
    ids, confs = list(own.token_ids), list(own.token_confidences)
    if not ids or len(ids) != len(confs):
        return None
    content = [k for k, t in enumerate(ids) if _is_content(engine.token_text(t))]
    if not content:
        return None
    j = min(content, key=lambda k: (confs[k], k))
    own_piece = engine.token_text(ids[j]).strip()
    scorer = ConfidenceScorer(signal)
    session = engine.session(1)
    try:
        row = session.prefill(engine.render(Prompt(text=text)), 0)
        for tok in ids[:j]:
            row = session.decode({0: tok})[0]
        row = np.asarray(row, dtype=np.float32)
        forced = next(
            (
                int(t)
                for t in np.argsort(-row, kind="stable")
                if int(t) not in engine.eos_ids
                and _is_content(piece := engine.token_text(int(t)))
                and piece.strip() != own_piece
            ),
            None,
        )
        if forced is None:
            return None
        toks, tconfs = ids[:j] + [forced], confs[:j] + [scorer.score(row, forced)[0]]
        seg = StepSegmenter(rule)
        closed = any([seg.push(engine.token_text(t)) for t in toks])
        while not closed and len(toks) < rule.max_step_tokens:
            row = np.asarray(session.decode({0: toks[-1]})[0], dtype=np.float32)
            tok = int(np.argmax(row))
            if tok in engine.eos_ids:
                break
            toks.append(tok)
            tconfs.append(scorer.score(row, tok)[0])
            closed = seg.push(engine.token_text(tok))
    finally:
        session.close()
    step_text = "".join(engine.token_text(t) for t in toks)
    if not step_text.strip():
        return None
    return Step(step_text, step_confidence(tconfs), tuple(tconfs), Label.UNKNOWN, tuple(toks), "rank2")


def _is_content(piece: str) -> bool:
    return any(ch.isalnum() for ch in piece)


def label_alternative(labeler: Any, task: Task, problem: Problem, prefix: Sequence[str], alt: str) -> str:
    """The alternative step's label in context (a partial solution must not be graded as final)."""
    answer = task.extract_answer(alt)
    if answer is not None:
        return CORRECT if task.grade(answer, problem.answer) else WRONG
    if getattr(labeler, "name", "") == "verify":  # the problem-aware checks, in the prefix's context
        return str(label_next_step(problem, prefix, alt, task).label)
    return str(labeler.label(problem, [*prefix, alt], task)[-1] if prefix or alt else Label.UNKNOWN)


@dataclass
class _Need:
    """One prefix of one problem: the labels its candidates still lack, and its A candidates."""

    index: int
    prefix: str
    prefix_steps: list[str]
    wants: Counter = field(default_factory=Counter)  # label -> candidates at the prefix needing it
    a_steps: list[Step] = field(default_factory=list)


def _needs(ps: ProblemSamples, th: Any, rule: PairRule, counts: Counter) -> list[_Need]:
    """Candidate prefixes where the samples hold fewer distinct steps of a needed label than
    candidates need one (a model that is sure of a wrong step samples it again and again: each
    occurrence can only be paired with a *different* alternative, or it is a duplicate)."""
    have: dict[tuple[int, str], dict[str, set[str]]] = {}
    needs: dict[tuple[int, str], _Need] = {}
    for sol in ps.solutions:
        steps = used_steps(sol.steps)
        for i, st in enumerate(steps):
            prefix = "".join(s.text for s in steps[:i])
            have.setdefault((i, prefix), {}).setdefault(st.label, set()).add(st.text)
            cand = candidate(st, th, rule)
            if cand is None:
                continue
            counts[f"candidates_{cand[0]}"] += 1
            need = needs.setdefault((i, prefix), _Need(i, prefix, [s.text for s in steps[:i]]))
            need.wants[cand[1]] += 1
            if cand[0] == "A":
                need.a_steps.append(st)
    out = []
    for key, need in sorted(needs.items()):
        for label, texts in have.get(key, {}).items():  # distinct alternatives the samples have
            if label in need.wants:
                need.wants[label] -= len(texts)
        need.wants = +need.wants  # drop labels no longer needed
        if need.wants:
            out.append(need)
        else:
            counts["prefixes_covered_by_samples"] += 1
    return out


def _alternatives_at(
    engine: Any,
    task: Task,
    ps: ProblemSamples,
    problem: Problem,
    need: _Need,
    cfg: TrainConfig,
    round_index: int,
    labeler: Any,
    counts: Counter,
) -> list[Step]:
    seed = problem_seed(cfg.sample.seed, round_index, f"{ps.problem_id}/alt/{need.index}/{need.prefix}")
    found: list[Step] = []
    wants = Counter(need.wants)
    counts["prefixes_resampled"] += 1
    drawn = sample_steps(engine, ps.prompt + need.prefix, cfg.pairs.alt_samples, cfg, seed, task)
    counts["steps_sampled"] += len(drawn)
    seen: set[str] = set()
    for text, confs, ids in drawn:
        if not +wants:
            break  # every candidate at the prefix has its own opposite-label alternative: stop
        if text in seen:
            continue  # the same step again: no new alternative, not worth a label
        seen.add(text)
        label = label_alternative(labeler, task, problem, need.prefix_steps, text)
        counts["steps_labelled"] += 1
        found.append(Step(text, step_confidence(confs), tuple(confs), label, tuple(ids), "resample"))
        if wants[label] > 0:
            counts[f"resample_found_{label}"] += 1
            wants[label] -= 1
    if wants[WRONG] > 0 and need.a_steps:  # the A fallback: the rank-2 token at the least sure spot
        own = min(need.a_steps, key=lambda s: (s.confidence, s.text))
        counts["rank2_tried"] += 1
        alt = rank2_step(engine, ps.prompt + need.prefix, own, _rule(cfg), cfg.confidence.signal)
        if alt is not None and alt.text != own.text:
            alt = replace(alt, label=label_alternative(labeler, task, problem, need.prefix_steps, alt.text))
            found.append(alt)
            if alt.label == WRONG:
                counts["rank2_found_wrong"] += 1
    return found


def _step_record(st: Step) -> dict[str, Any]:
    return {
        "text": st.text,
        "confidence": st.confidence,
        "token_confidences": list(st.token_confidences),
        "label": st.label,
        "token_ids": list(st.token_ids),
        "origin": st.origin,
    }


def _from_record(rec: dict[str, Any]) -> dict[tuple[int, str], tuple[Step, ...]]:
    return {
        (int(a["index"]), a["prefix"]): tuple(
            Step(
                s["text"],
                float(s["confidence"]),
                tuple(s["token_confidences"]),
                s["label"],
                tuple(int(t) for t in s["token_ids"]),
                s["origin"],
            )
            for s in a["steps"]
        )
        for a in rec["alternatives"]
    }


def add_alternatives(
    engine: Any,
    task: Task,
    problems: Sequence[ProblemSamples],
    samples: Sequence[dict],
    cfg: TrainConfig,
    round_index: int,
    labeler: Any,
    store: Path | None = None,
    sources: Mapping[str, Problem] | None = None,
    stats: AltStats | None = None,
) -> list[ProblemSamples]:
    """``problems`` with resampled / rank-2 alternatives at their A/B candidate prefixes.

    Args:
        store: ``alternatives.jsonl`` of the round: problems already in it are read back,
            new ones appended (resume after a kill).
        sources: the loaded problems by id (gold structure for the verify labels, as in the
            label stage).
        stats: filled with counts and the stage's sampling time.
    """
    stats = stats if stats is not None else AltStats()
    rule = cfg.pairs.rule()
    th = mode_thresholds(problems, rule)
    appender = JsonlAppender(store, "problem_id") if store else None  # drops a partial last line
    old = {r["problem_id"]: r for r in read_jsonl(store, "problem_id")} if store else {}
    t0 = time.perf_counter()
    out = []
    try:
        for ps, rec in zip(problems, samples, strict=True):
            if ps.problem_id in old:
                stats.counts.update(old[ps.problem_id].get("counts", {}))
                out.append(replace(ps, alternatives=_from_record(old[ps.problem_id])))
                continue
            problem = Problem(
                rec["problem_id"], rec["question"], rec["gold"], meta={"prompt_text": rec["prompt"]}
            )
            source = (sources or {}).get(ps.problem_id)
            if source is not None:
                problem = replace(problem, gold_steps=source.gold_steps, meta={**source.meta, **problem.meta})
            counts: Counter = Counter()
            alts: dict[tuple[int, str], tuple[Step, ...]] = {}
            for need in _needs(ps, th, rule, counts):
                found = _alternatives_at(engine, task, ps, problem, need, cfg, round_index, labeler, counts)
                alts[(need.index, need.prefix)] = tuple(found)
            stats.counts.update(counts)
            if appender is not None:
                appender.append(
                    {
                        "problem_id": ps.problem_id,
                        "alternatives": [
                            {"index": i, "prefix": p, "steps": [_step_record(s) for s in steps]}
                            for (i, p), steps in sorted(alts.items())
                        ],
                        "counts": dict(counts),
                    }
                )
                fault_point("alternatives", len(appender.done))
            out.append(replace(ps, alternatives=alts))
    finally:
        if appender is not None:
            appender.close()
    stats.time_s += time.perf_counter() - t0
    return out
