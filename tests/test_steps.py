"""Step segmentation on hand-made texts (docs/design.md §1.1)."""

from __future__ import annotations

import pytest

from caspo_lite.steps import StepRule, StepSegmenter, segment_tokens, split_steps


def test_split_steps_collapses_blank_lines() -> None:
    text = "Step 1: 2 + 3 = 5\n\n\nStep 2: 5 * 4 = 20\n  \nAnswer: 20\n"
    assert split_steps(text) == ["Step 1: 2 + 3 = 5", "Step 2: 5 * 4 = 20", "Answer: 20"]


def test_split_steps_custom_delimiter() -> None:
    assert split_steps("a; b;; c", delimiter=";") == ["a", "b", "c"]


def tokens(*pieces: str) -> list[str]:
    return list(pieces)


def test_segment_tokens_splits_at_newline_tokens() -> None:
    toks = tokens("2", " +", " 3", " =", " 5", "\n", "5", " *", " 4", " =", " 20", "\n")
    assert segment_tokens(toks, StepRule(min_step_tokens=3)) == [(0, 6), (6, 12)]


def test_short_fragment_merges_into_next_step() -> None:
    toks = tokens("So", "\n", "2", " +", " 3", " =", " 5", "\n")
    # "So" has one content token < min 3: it joins the following step
    assert segment_tokens(toks, StepRule(min_step_tokens=3)) == [(0, 8)]


def test_blank_line_runs_do_not_open_empty_steps() -> None:
    toks = tokens("a", "b", "c", "\n", "\n", "\n", "d", "e", "f")
    spans = segment_tokens(toks, StepRule(min_step_tokens=2))
    assert spans == [(0, 4), (4, 9)]
    assert sum(e - s for s, e in spans) == len(toks)


def test_long_step_is_cut_at_max_tokens() -> None:
    toks = ["x"] * 10
    assert segment_tokens(toks, StepRule(min_step_tokens=1, max_step_tokens=4)) == [(0, 4), (4, 8), (8, 10)]


def test_trailing_whitespace_joins_last_step() -> None:
    toks = tokens("a", "b", "\n", " ")
    assert segment_tokens(toks, StepRule(min_step_tokens=1)) == [(0, 4)]


def test_online_segmenter_matches_offline() -> None:
    toks = tokens("Step", " 1", ":", " 4", "\n", "ok", "\n", "Answer", ":", " 4", "\n")
    rule = StepRule(min_step_tokens=2)
    seg = StepSegmenter(rule)
    closes = [i + 1 for i, t in enumerate(toks) if seg.push(t)]
    assert [e for _, e in segment_tokens(toks, rule)] == closes


@pytest.mark.parametrize("kwargs", [{"min_step_tokens": 0}, {"min_step_tokens": 5, "max_step_tokens": 2}])
def test_invalid_rules(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        StepRule(**kwargs)
