"""Confidence-filtered step pairs, the heart of CASPO (docs/design.md §1.4). Pure: no I/O, no models.

At the prefix q_i = (problem, s_1..s_{i-1}) of a sampled solution:

- **A, unsure-right**: s_i is correct but its confidence is below the ``low`` threshold.
  chosen = s_i, rejected = an alternative step at q_i labelled wrong (the most confident one:
  the model's likeliest mistake there is the most useful thing to push down).
- **B, sure-wrong**: s_i is the first wrong step and its confidence is at least ``high``.
  rejected = s_i, chosen = an alternative at q_i labelled correct (the most confident one).
  Confidently wrong steps come first when the per-problem cap bites.
- Correct, confident steps give no pair: they are already aligned.

Only steps up to and including a solution's first wrong step are used; later steps are
conditioned on an error. Alternatives at q_i are (a) steps of *other* sampled solutions of the
same problem whose earlier steps are textually identical, and (b) steps resampled at q_i by the
engine (``ProblemSamples.alternatives``: ``resample`` = sampled at the prefix, ``rank2`` = the
rank-2 token forced at the step's least confident position). Every pair records where its
other side came from (``Pair.origin``). Thresholds are percentiles of the round's step
confidences by default, or absolute.

Modes (``pairs.mode``):
- ``step``: CASPO, the confidence-filtered A/B pairs above.
- ``answer``: the Iterative-RPO-style ablation: whole correct vs whole wrong solutions.
- ``both``: the step pairs plus the answer pairs of the same samples, deduplicated, one set.
- ``step-nofilter``: step pairs at every used step (every correct step is an A candidate,
  every first wrong step a B candidate): isolates what the confidence filter adds.

Example:
    >>> ps = ProblemSamples("p1", "Q: 1+1?\\n", [sol_a, sol_b])    # doctest: +SKIP
    >>> pairs, report = build_pairs([ps], PairRule())              # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

CORRECT, WRONG, UNKNOWN = "correct", "wrong", "unknown"
LABELS = (CORRECT, WRONG, UNKNOWN)
MODES = ("step", "answer", "both", "step-nofilter")
STEP_MODES = ("step", "both", "step-nofilter")  # modes that build step pairs
ORIGINS = ("sample", "resample", "rank2")


@dataclass(frozen=True)
class Step:
    """One step of a sampled solution. ``text`` keeps its trailing delimiter so that the
    concatenation of a solution's step texts is exactly the generated text."""

    text: str
    confidence: float
    token_confidences: tuple[float, ...] = ()
    label: str = UNKNOWN
    token_ids: tuple[int, ...] = ()  # the ids the sampler generated (empty when unknown)
    origin: str = "sample"  # sample (a sampled solution), resample or rank2 (an alternative)


@dataclass(frozen=True)
class Solution:
    index: int  # sample index within the problem (stable: identifies the source of a pair side)
    steps: tuple[Step, ...]
    correct: bool | None = None  # final answer graded against the gold answer
    source: str = "sample"  # "sample" or "resample"

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.steps)

    @property
    def confidence(self) -> float:
        if not self.steps:
            return 1.0
        return float(np.exp(np.mean([np.log(max(s.confidence, 1e-12)) for s in self.steps])))


@dataclass(frozen=True)
class ProblemSamples:
    problem_id: str
    prompt: str  # the rendered model prompt (chat template applied, or few-shot text)
    solutions: Sequence[Solution]
    # extra alternatives resampled at a prefix: key = number of prefix steps + the prefix text
    alternatives: dict[tuple[int, str], tuple[Step, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class PairRule:
    """The knobs of pair construction (mirrors the ``[pairs]`` config section)."""

    mode: str = "step"
    low_percentile: float = 30.0
    high_percentile: float = 50.0
    low_abs: float = -1.0  # >= 0 overrides the percentile
    high_abs: float = -1.0
    max_per_problem: int = 8
    types: tuple[str, ...] = ("A", "B")

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"pairs.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("low_percentile", "high_percentile"):
            value = getattr(self, name)
            if not 0.0 <= value <= 100.0:
                raise ValueError(f"pairs.{name} must be in [0, 100], got {value}")
        if self.max_per_problem < 1:
            raise ValueError(f"pairs.max_per_problem must be >= 1, got {self.max_per_problem}")
        bad = set(self.types) - {"A", "B"}
        if bad:
            raise ValueError(f"pairs.types may hold only 'A' and 'B', got {sorted(bad)}")


@dataclass(frozen=True)
class Thresholds:
    low: float  # A: correct steps strictly below this are "unsure"
    high: float  # B: wrong steps at or above this are "sure"


@dataclass(frozen=True)
class Pair:
    """One preference pair; the JSONL record of the round's step-wise dataset."""

    problem_id: str
    type: str  # "A", "B" or "answer"
    step_index: int  # index of the contested step (0 for answer pairs)
    prompt: str  # model prompt + prefix steps: the DPO "prompt" column
    prefix_steps: tuple[str, ...]
    chosen: str
    rejected: str
    chosen_label: str
    rejected_label: str
    chosen_confidence: float
    rejected_confidence: float
    chosen_token_confidences: tuple[float, ...]
    rejected_token_confidences: tuple[float, ...]
    chosen_source: str  # "sample:<j>", "resample:<k>" or "rank2:<k>"
    rejected_source: str
    origin: str = "sample"  # where the other side (not the candidate step) came from: ORIGINS
    chosen_token_ids: tuple[int, ...] = ()  # ids the sampler generated for the side (empty: unknown)
    rejected_token_ids: tuple[int, ...] = ()

    def to_record(self) -> dict:
        rec = asdict(self)
        rec["prefix_steps"] = list(self.prefix_steps)
        rec["chosen_token_confidences"] = list(self.chosen_token_confidences)
        rec["rejected_token_confidences"] = list(self.rejected_token_confidences)
        rec["chosen_token_ids"] = list(self.chosen_token_ids)
        rec["rejected_token_ids"] = list(self.rejected_token_ids)
        return rec

    @classmethod
    def from_record(cls, rec: dict) -> Pair:
        data = dict(rec)
        for key in (
            "prefix_steps",
            "chosen_token_confidences",
            "rejected_token_confidences",
            "chosen_token_ids",
            "rejected_token_ids",
        ):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


@dataclass
class PairReport:
    """What a round's pair construction produced (logged and written to metrics)."""

    n_problems: int = 0
    n_solutions: int = 0
    n_steps_used: int = 0
    thresholds: Thresholds | None = None
    by_type: Counter = field(default_factory=Counter)
    candidates: Counter = field(default_factory=Counter)  # A/B steps found, before alternatives
    no_alternative: Counter = field(default_factory=Counter)  # A/B steps with no usable alternative
    duplicates: int = 0
    capped: int = 0
    by_origin: Counter = field(default_factory=Counter)  # kept pairs by type/origin of the other side

    def summary(self) -> dict:
        total = sum(self.by_type.values())
        return {
            "pairs/total": total,
            "pairs/A": self.by_type.get("A", 0),
            "pairs/B": self.by_type.get("B", 0),
            "pairs/answer": self.by_type.get("answer", 0),
            "pairs/share_A": (self.by_type.get("A", 0) / total) if total else 0.0,
            "pairs/yield_per_problem": (total / self.n_problems) if self.n_problems else 0.0,
            "pairs/candidates_A": self.candidates.get("A", 0),
            "pairs/candidates_B": self.candidates.get("B", 0),
            "pairs/no_alternative_A": self.no_alternative.get("A", 0),
            "pairs/no_alternative_B": self.no_alternative.get("B", 0),
            "pairs/duplicates": self.duplicates,
            "pairs/capped": self.capped,
            **{f"pairs/origin_{key}": n for key, n in sorted(self.by_origin.items())},
            "pairs/threshold_low": self.thresholds.low if self.thresholds else None,
            "pairs/threshold_high": self.thresholds.high if self.thresholds else None,
        }


def used_steps(steps: Sequence[Step]) -> tuple[Step, ...]:
    """Steps up to and including the first wrong one (later steps are conditioned on an error)."""
    for i, step in enumerate(steps):
        if step.label == WRONG:
            return tuple(steps[: i + 1])
    return tuple(steps)


def compute_thresholds(confidences: Iterable[float], rule: PairRule) -> Thresholds:
    """Percentiles of the round's step-confidence distribution, unless absolute values are set.

    With no confidences at all the thresholds make every step "unsure" and "sure" (no filter),
    which only matters for empty rounds.
    """
    arr = np.asarray(list(confidences), dtype=np.float64)
    if rule.low_abs >= 0:
        low = rule.low_abs
    else:
        low = float(np.percentile(arr, rule.low_percentile)) if arr.size else float("inf")
    if rule.high_abs >= 0:
        high = rule.high_abs
    else:
        high = float(np.percentile(arr, rule.high_percentile)) if arr.size else float("-inf")
    return Thresholds(low=low, high=high)


def round_confidences(problems: Iterable[ProblemSamples]) -> list[float]:
    """The step confidences the percentile thresholds are taken over (used steps of samples)."""
    return [s.confidence for ps in problems for sol in ps.solutions for s in used_steps(sol.steps)]


def _alternatives(ps: ProblemSamples, sol: Solution, i: int, prefix: str) -> list[tuple[Step, str]]:
    """Labelled steps at the same prefix from other samples, then resampled ones."""
    out: list[tuple[Step, str]] = []
    for other in ps.solutions:
        if other.index == sol.index or len(other.steps) <= i:
            continue
        head = used_steps(other.steps)
        if len(head) <= i or any(s.label == WRONG for s in head[:i]):
            continue
        if "".join(s.text for s in head[:i]) != prefix:
            continue
        alt = head[i]
        if alt.text != sol.steps[i].text:
            out.append((alt, f"{other.source}:{other.index}"))
    for k, alt in enumerate(ps.alternatives.get((i, prefix), ())):
        if alt.text != sol.steps[i].text:
            out.append((alt, f"{alt.origin}:{k}"))
    return out


def _pair(
    ps: ProblemSamples, kind: str, i: int, steps: Sequence[Step], own: Step, own_src: str, alt: Step, src: str
) -> Pair:
    chosen, rejected, c_src, r_src = (own, alt, own_src, src) if kind == "A" else (alt, own, src, own_src)
    return Pair(
        problem_id=ps.problem_id,
        type=kind,
        step_index=i,
        prompt=ps.prompt + "".join(s.text for s in steps[:i]),
        prefix_steps=tuple(s.text for s in steps[:i]),
        chosen=chosen.text,
        rejected=rejected.text,
        chosen_label=chosen.label,
        rejected_label=rejected.label,
        chosen_confidence=chosen.confidence,
        rejected_confidence=rejected.confidence,
        chosen_token_confidences=tuple(chosen.token_confidences),
        rejected_token_confidences=tuple(rejected.token_confidences),
        chosen_source=c_src,
        rejected_source=r_src,
        origin=alt.origin,
        chosen_token_ids=tuple(chosen.token_ids),
        rejected_token_ids=tuple(rejected.token_ids),
    )


def candidate(step: Step, th: Thresholds, rule: PairRule) -> tuple[str, str] | None:
    """(pair type, label the alternative needs) when a used step is an A or B candidate."""
    if step.label == CORRECT and step.confidence < th.low and "A" in rule.types:
        return "A", WRONG
    if step.label == WRONG and step.confidence >= th.high and "B" in rule.types:
        return "B", CORRECT
    return None


def mode_thresholds(problems: Sequence[ProblemSamples], rule: PairRule) -> Thresholds:
    """The A/B thresholds of the mode: none at all (every step qualifies) for ``step-nofilter``."""
    if rule.mode == "step-nofilter":
        return Thresholds(low=float("inf"), high=float("-inf"))
    return compute_thresholds(round_confidences(problems), rule)


def _step_pairs(ps: ProblemSamples, th: Thresholds, rule: PairRule, report: PairReport) -> list[list[Pair]]:
    """One list of options per A/B candidate step, best alternative first.

    The first option uses the most confident alternative (the model's likeliest mistake for
    A, its surest right step for B); later options are the next alternatives, used when the
    first would duplicate a pair already taken (a step can be both an A's rejected side and a
    B candidate itself: without fallbacks the two collapse into one pair).
    """
    found: list[tuple[float, list[Pair]]] = []  # (priority: smaller first, options)
    for sol in ps.solutions:
        steps = used_steps(sol.steps)
        report.n_steps_used += len(steps)
        for i, step in enumerate(steps):
            prefix = "".join(s.text for s in steps[:i])
            cand = candidate(step, th, rule)
            if cand is None:
                continue
            kind, want = cand
            report.candidates[kind] += 1
            alts = [(a, src) for a, src in _alternatives(ps, sol, i, prefix) if a.label == want]
            if not alts:
                report.no_alternative[kind] += 1
                continue
            alts.sort(key=lambda a: (-a[0].confidence, a[1]))
            own = f"{sol.source}:{sol.index}"
            options = [_pair(ps, kind, i, steps, step, own, alt, src) for alt, src in alts]
            # B: confidently wrong first; A: least confident right first.
            found.append((-step.confidence if kind == "B" else step.confidence, options))
    found.sort(key=lambda fo: (fo[0], fo[1][0].step_index, fo[1][0].chosen_source, fo[1][0].rejected_source))
    # Interleave B, A, B, A ... so a per-problem cap keeps the mix instead of one type only.
    by_type = {kind: [o for _, o in found if o[0].type == kind] for kind in ("B", "A")}
    merged: list[list[Pair]] = []
    for i in range(max((len(v) for v in by_type.values()), default=0)):
        merged.extend(v[i] for v in by_type.values() if i < len(v))
    return merged


def _answer_pairs(ps: ProblemSamples, report: PairReport) -> list[list[Pair]]:
    right = sorted((s for s in ps.solutions if s.correct), key=lambda s: (-s.confidence, s.index))
    wrong = sorted((s for s in ps.solutions if s.correct is False), key=lambda s: (-s.confidence, s.index))
    report.n_steps_used += sum(len(s.steps) for s in ps.solutions)
    out = []
    for good, bad in zip(right, wrong, strict=False):  # one use per solution, most confident first
        out.append(
            [
                Pair(
                    problem_id=ps.problem_id,
                    type="answer",
                    step_index=0,
                    prompt=ps.prompt,
                    prefix_steps=(),
                    chosen=good.text,
                    rejected=bad.text,
                    chosen_label=CORRECT,
                    rejected_label=WRONG,
                    chosen_confidence=good.confidence,
                    rejected_confidence=bad.confidence,
                    chosen_token_confidences=tuple(t for s in good.steps for t in s.token_confidences),
                    rejected_token_confidences=tuple(t for s in bad.steps for t in s.token_confidences),
                    chosen_source=f"{good.source}:{good.index}",
                    rejected_source=f"{bad.source}:{bad.index}",
                    chosen_token_ids=tuple(t for s in good.steps for t in s.token_ids),
                    rejected_token_ids=tuple(t for s in bad.steps for t in s.token_ids),
                )
            ]
        )
    return out


def build_pairs(
    problems: Sequence[ProblemSamples], rule: PairRule, thresholds: Thresholds | None = None
) -> tuple[list[Pair], PairReport]:
    """All pairs of a round, deduplicated (same prompt, chosen, rejected) and capped per problem.

    Args:
        problems: the labelled samples of each problem.
        rule: thresholds, mode and caps.
        thresholds: fixed thresholds (default: computed from ``problems`` by ``rule``).
    Returns:
        (pairs in a deterministic order, a report with the A/B mix and losses at each filter).
    """
    report = PairReport(n_problems=len(problems), n_solutions=sum(len(p.solutions) for p in problems))
    if rule.mode in STEP_MODES:
        fixed = thresholds if rule.mode != "step-nofilter" else None  # no filter means none
        report.thresholds = fixed or mode_thresholds(problems, rule)
    seen: set[tuple[str, str, str]] = set()
    pairs: list[Pair] = []
    for ps in problems:
        groups = []  # each group has its own per-problem cap (both: step pairs, then answer pairs)
        if rule.mode in STEP_MODES:
            groups.append(_step_pairs(ps, report.thresholds, rule, report))
        if rule.mode in ("answer", "both"):
            steps_before = report.n_steps_used
            groups.append(_answer_pairs(ps, report))
            if rule.mode == "both":  # the step pass counted the used steps already
                report.n_steps_used = steps_before
        for found in groups:
            _keep(found, rule, report, seen, pairs)
    return pairs, report


def _keep(
    found: list[list[Pair]],
    rule: PairRule,
    report: PairReport,
    seen: set[tuple[str, str, str]],
    pairs: list[Pair],
) -> None:
    """Take the first non-duplicate option of each candidate, up to the per-problem cap."""
    kept = 0
    for options in found:
        pair = next((p for p in options if (p.prompt, p.chosen, p.rejected) not in seen), None)
        if pair is None:
            report.duplicates += 1
            continue
        key = (pair.prompt, pair.chosen, pair.rejected)
        if kept >= rule.max_per_problem:
            report.capped += 1
            continue
        seen.add(key)
        pairs.append(pair)
        report.by_type[pair.type] += 1
        report.by_origin[f"{pair.type}_{pair.origin}"] += 1
        kept += 1
