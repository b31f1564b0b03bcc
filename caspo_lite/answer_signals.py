"""Answer-confidence signals: candidate scores for "is this answer right?" (issue #16).

The search's own path confidence (geometric mean of step confidences) is a sharpness score:
most arithmetic tokens are near-certain, so one coin-flip digit among 35 tokens still scores
0.98. These are the other scores the search already has, computed without extra sampling, so
`caspo-lite calibrate` can measure which one ranks right answers above wrong ones (answer
AUROC) and map the best one to a probability:

- ``path``          the chosen path's confidence as the search computed it (geomean today)
- ``min_step``      the chosen path's weakest step (one bad step sinks the answer)
- ``tail``          the chosen path's last step (the one that states the answer)
- ``answer_tokens`` geometric mean of the token confidences of the final answer's own tokens
- ``vote_share``    confidence-weighted share of finished paths that reached the same answer
                    (sum of their path confidences / sum over all paths with an answer);
                    1.0 for a single-path strategy, which is why it is only useful for
                    multi-path ones (sc, bon, deepconf, cat)

Two entry points share one definition: `signals_from_result` (live, from a `SearchResult`:
solve, chat) and `signals_from_record` (an eval record in ``problems.jsonl``), so a map fitted
on eval records applies unchanged to what a user sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from caspo_lite.confidence import geometric_mean
from caspo_lite.search.events import AnswerChosen, BranchFinished, BranchStarted, TokenGenerated

ANSWER_SIGNALS: tuple[str, ...] = ("path", "min_step", "tail", "answer_tokens", "vote_share")


def branch_pieces(events: Iterable[Any]) -> dict[int, list[tuple[str, float]]]:
    """Branch id -> its whole path's (token text, token confidence), forks inheriting the prefix."""
    pieces: dict[int, list[tuple[str, float]]] = {}
    for ev in events:
        if isinstance(ev, BranchStarted):
            pieces[ev.branch] = list(pieces.get(ev.parent, [])) if ev.parent is not None else []
        elif isinstance(ev, TokenGenerated):
            pieces.setdefault(ev.branch, []).append((ev.text, float(ev.confidence)))
    return pieces


def answer_token_confidence(
    pieces: Sequence[tuple[str, float]], text: str, answer: str | None
) -> float | None:
    """Geometric mean confidence of the tokens that spell the final answer in ``text``.

    The answer is located at its last occurrence in the path text (the "Answer: ..." line comes
    last); every token whose characters overlap it counts. None when there is no answer, or it
    cannot be found verbatim (an extractor that normalised it, e.g. "1,000" -> "1000").
    """
    if not answer or not pieces:
        return None
    joined = "".join(p for p, _ in pieces)
    limit = len(text) if joined.startswith(text) else len(joined)  # a stop string was trimmed off
    at = joined.rfind(answer, 0, limit)
    if at < 0:
        return None
    end = at + len(answer)
    confs, pos = [], 0
    for piece, conf in pieces:
        nxt = pos + len(piece)
        if piece and nxt > at and pos < end:
            confs.append(conf)
        pos = nxt
    return geometric_mean(confs) if confs else None


def vote_share(answer: str | None, paths: Iterable[tuple[str | None, float]]) -> float | None:
    """Confidence-weighted share of the paths with an answer that agree with ``answer``."""
    if answer is None:
        return None
    total = agree = 0.0
    for ans, conf in paths:
        if ans is None:
            continue
        total += conf
        if ans == answer:
            agree += conf
    return agree / total if total > 0 else None


def _signals(
    answer: str | None,
    fallback: float,
    chosen_path_conf: float | None,
    chosen_steps: Sequence[float],
    answer_tokens: float | None,
    paths: Sequence[tuple[str | None, float]],
) -> dict[str, float | None]:
    path = chosen_path_conf if chosen_path_conf is not None else fallback
    return {
        "path": float(path) if path is not None else None,
        "min_step": float(min(chosen_steps)) if chosen_steps else path,
        "tail": float(chosen_steps[-1]) if chosen_steps else path,
        "answer_tokens": answer_tokens,
        "vote_share": vote_share(answer, paths),
    }


def path_signals(fin: BranchFinished, pieces: Sequence[tuple[str, float]]) -> dict[str, float | None]:
    """The signals of a single-path answer (a greedy run's `BranchFinished` and its tokens)."""
    return _signals(
        fin.answer,
        float(fin.path_confidence),
        float(fin.path_confidence),
        list(fin.step_confidences),
        answer_token_confidence(pieces, fin.text, fin.answer),
        [(fin.answer, float(fin.path_confidence))],
    )


def chosen_finished(result: Any) -> BranchFinished | None:
    """The finished path the strategy's answer came from (its AnswerChosen branch, else the
    surest path with that answer)."""
    chosen = next((e for e in reversed(result.events or []) if isinstance(e, AnswerChosen)), None)
    if chosen is not None and chosen.branch is not None:
        for f in result.paths:
            if f.branch == chosen.branch:
                return f
    same = [f for f in result.paths if f.answer == result.answer]
    return max(same, key=lambda f: f.path_confidence) if same else None


def signals_from_result(result: Any) -> dict[str, float | None]:
    """Every answer signal of a live `SearchResult` (None where a signal is undefined)."""
    fin = chosen_finished(result)
    answer_tokens = None
    if fin is not None:
        answer_tokens = answer_token_confidence(
            branch_pieces(result.events or []).get(fin.branch, []), fin.text, result.answer
        )
    return _signals(
        result.answer,
        float(result.confidence),
        fin.path_confidence if fin is not None else None,
        list(fin.step_confidences) if fin is not None else [],
        answer_tokens,
        [(f.answer, float(f.path_confidence)) for f in result.paths],
    )


def signals_from_record(record: dict[str, Any]) -> dict[str, float | None]:
    """Every answer signal of an eval record (``problems.jsonl`` line)."""
    paths = record.get("paths") or []
    idx = record.get("chosen_path")
    chosen = paths[idx] if isinstance(idx, int) and 0 <= idx < len(paths) else None
    steps = [s.get("confidence") for s in (chosen or {}).get("steps") or []]
    steps = [float(c) for c in steps if isinstance(c, int | float)]
    conf = record.get("confidence")
    return _signals(
        record.get("answer"),
        float(conf) if isinstance(conf, int | float) else None,  # type: ignore[arg-type]
        chosen.get("path_confidence") if chosen else None,
        steps,
        chosen.get("answer_confidence") if chosen else None,
        [(p.get("answer"), float(p.get("path_confidence") or 0.0)) for p in paths],
    )
