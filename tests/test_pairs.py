"""Pair construction on hand-made steps: both types, thresholds, dedupe, caps, first-wrong cut."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from caspo_lite.pairs import (
    CORRECT,
    UNKNOWN,
    WRONG,
    Pair,
    PairRule,
    ProblemSamples,
    Solution,
    Step,
    Thresholds,
    build_pairs,
    compute_thresholds,
    used_steps,
)


def st(text: str, conf: float, label: str) -> Step:
    return Step(text=text + "\n", confidence=conf, token_confidences=(conf, conf), label=label)


def sol(index: int, *steps: Step, correct: bool | None = None) -> Solution:
    return Solution(index=index, steps=tuple(steps), correct=correct)


# problem: "2+3+4". Step 0 alternatives "2+3=5" (right) and "2+3=6" (wrong).
S_RIGHT_UNSURE = st("2+3=5", 0.2, CORRECT)
S_RIGHT_SURE = st("2+3=5", 0.9, CORRECT)
S_WRONG_SURE = st("2+3=6", 0.8, WRONG)
S_WRONG_UNSURE = st("2+3=7", 0.1, WRONG)
FIXED = Thresholds(low=0.5, high=0.5)


def test_type_a_unsure_right_vs_wrong_alternative() -> None:
    ps = ProblemSamples("p", "Q\n", [sol(0, S_RIGHT_UNSURE), sol(1, S_WRONG_UNSURE)])
    pairs, report = build_pairs([ps], PairRule(types=("A",)), FIXED)
    assert [(p.type, p.chosen, p.rejected) for p in pairs] == [("A", "2+3=5\n", "2+3=7\n")]
    p = pairs[0]
    assert (p.chosen_label, p.rejected_label) == (CORRECT, WRONG)
    assert (p.chosen_confidence, p.rejected_confidence) == (0.2, 0.1)
    assert (p.chosen_source, p.rejected_source) == ("sample:0", "sample:1")
    assert p.prompt == "Q\n" and p.step_index == 0
    assert report.by_type["A"] == 1


def test_type_b_sure_wrong_gets_most_confident_correct_alternative() -> None:
    other_right = st("2+3=5 so far", 0.6, CORRECT)
    ps = ProblemSamples("p", "Q\n", [sol(0, S_WRONG_SURE), sol(1, S_RIGHT_SURE), sol(2, other_right)])
    pairs, _ = build_pairs([ps], PairRule(types=("B",)), FIXED)
    assert len(pairs) == 1
    assert (pairs[0].type, pairs[0].chosen, pairs[0].rejected) == ("B", "2+3=5\n", "2+3=6\n")
    assert pairs[0].chosen_source == "sample:1"


def test_confident_right_and_unsure_wrong_give_no_pair() -> None:
    # A needs conf < low; B needs conf >= high. 0.9-right and 0.1-wrong are neither.
    ps = ProblemSamples("p", "Q\n", [sol(0, S_RIGHT_SURE), sol(1, S_WRONG_UNSURE)])
    pairs, report = build_pairs([ps], PairRule(), FIXED)
    assert pairs == []
    assert report.candidates == {}


def test_thresholds_percentile_and_absolute() -> None:
    confs = [0.1, 0.2, 0.3, 0.4, 0.5]
    th = compute_thresholds(confs, PairRule(low_percentile=25, high_percentile=75))
    assert th.low == pytest.approx(0.2) and th.high == pytest.approx(0.4)
    th = compute_thresholds(confs, PairRule(low_abs=0.05, high_abs=0.95))
    assert (th.low, th.high) == (0.05, 0.95)
    # percentile thresholds move which steps qualify: the 10th percentile of {0.2, 0.1, 0.9}
    # is 0.12, so the 0.2-right step is no longer unsure; the 90th (0.76) makes it unsure.
    ps = ProblemSamples("p", "Q\n", [sol(0, S_RIGHT_UNSURE), sol(1, S_WRONG_UNSURE), sol(2, S_RIGHT_SURE)])
    assert build_pairs([ps], PairRule(types=("A",), low_percentile=90))[0]
    assert not build_pairs([ps], PairRule(types=("A",), low_percentile=10))[0]


def test_first_wrong_step_cut_and_shared_prefix() -> None:
    a0 = st("a=1", 0.9, CORRECT)
    # solution 0: right prefix, then a sure wrong step, then steps after the error
    s0 = sol(0, a0, st("b=3", 0.9, WRONG), st("c=9", 0.05, CORRECT), st("d=1", 0.9, WRONG))
    # solution 1: same first step, a correct alternative at step 1
    s1 = sol(1, a0, st("b=2", 0.7, CORRECT))
    # solution 2: DIFFERENT first step text: its step 1 is not an alternative at the same prefix
    s2 = sol(2, st("a = 1", 0.9, CORRECT), st("b=2!", 0.95, CORRECT))
    assert [s.text for s in used_steps(s0.steps)] == ["a=1\n", "b=3\n"]
    ps = ProblemSamples("p", "Q\n", [s0, s1, s2])
    pairs, _ = build_pairs([ps], PairRule(), FIXED)
    assert [(p.type, p.step_index, p.chosen, p.rejected) for p in pairs] == [("B", 1, "b=2\n", "b=3\n")]
    assert pairs[0].prompt == "Q\na=1\n" and pairs[0].prefix_steps == ("a=1\n",)
    # the low-confidence "c=9" after the error never becomes an A pair, and
    # a wrong step is never used as an alternative beyond a solution's first error.
    assert all(p.step_index <= 1 for p in pairs)


def test_resampled_alternatives_are_used() -> None:
    ps = ProblemSamples(
        "p",
        "Q\n",
        [sol(0, S_RIGHT_UNSURE)],
        alternatives={(0, ""): (replace(st("2+3=8", 0.4, WRONG), origin="resample"), S_RIGHT_UNSURE)},
    )
    pairs, report = build_pairs([ps], PairRule(), FIXED)
    assert [(p.chosen, p.rejected, p.rejected_source, p.origin) for p in pairs] == [
        ("2+3=5\n", "2+3=8\n", "resample:0", "resample")
    ]
    assert report.summary()["pairs/origin_A_resample"] == 1
    rank2 = replace(st("2+3=9", 0.3, WRONG), origin="rank2", token_ids=(7, 8))
    ps = ProblemSamples("p", "Q\n", [sol(0, S_RIGHT_UNSURE)], alternatives={(0, ""): (rank2,)})
    pairs, _ = build_pairs([ps], PairRule(), FIXED)
    assert [(p.rejected_source, p.origin, p.rejected_token_ids) for p in pairs] == [
        ("rank2:0", "rank2", (7, 8))
    ]


def test_dedupe_and_cap_and_mix_report() -> None:
    # Two identical unsure-right samples and one sure-wrong one: the B pair (wrong vs right)
    # and both A pairs (right vs wrong) are the same (prompt, chosen, rejected): kept once.
    ps = ProblemSamples("p", "Q\n", [sol(0, S_RIGHT_UNSURE), sol(1, S_RIGHT_UNSURE), sol(2, S_WRONG_SURE)])
    pairs, report = build_pairs([ps], PairRule(), FIXED)
    assert [p.type for p in pairs] == ["B"]  # B sorts first: confidently wrong steps lead
    assert report.duplicates == 2
    # two distinct pairs: B at step 0 ("a=2" sure-wrong vs "a=1"), A at step 1 ("b=2" unsure-right vs "b=3")
    a0 = st("a=1", 0.9, CORRECT)
    ps = ProblemSamples(
        "p",
        "Q\n",
        [
            sol(0, a0, st("b=2", 0.2, CORRECT)),
            sol(1, a0, st("b=3", 0.1, WRONG)),
            sol(2, st("a=2", 0.8, WRONG)),
        ],
    )
    pairs, report = build_pairs([ps], PairRule(), FIXED)
    assert [(p.type, p.step_index, p.chosen, p.rejected) for p in pairs] == [
        ("B", 0, "a=1\n", "a=2\n"),
        ("A", 1, "b=2\n", "b=3\n"),
    ]
    pairs, report = build_pairs([ps], PairRule(max_per_problem=1), FIXED)
    assert len(pairs) == 1 and report.capped >= 1
    summary = report.summary()
    assert summary["pairs/total"] == 1 and summary["pairs/B"] == 1 and summary["pairs/share_A"] == 0.0


def test_unknown_labels_make_no_pairs() -> None:
    ps = ProblemSamples("p", "Q\n", [sol(0, st("x", 0.1, UNKNOWN)), sol(1, st("y", 0.9, UNKNOWN))])
    assert build_pairs([ps], PairRule(), FIXED)[0] == []


def test_answer_mode_whole_solutions_no_confidence_filter() -> None:
    good = sol(0, S_RIGHT_SURE, st("=9", 0.99, CORRECT), correct=True)
    bad = sol(1, S_WRONG_UNSURE, st("=10", 0.1, WRONG), correct=False)
    bad2 = sol(2, S_WRONG_SURE, correct=False)
    ps = ProblemSamples("p", "Q\n", [good, bad, bad2])
    pairs, report = build_pairs([ps], PairRule(mode="answer"))
    assert len(pairs) == 1  # each solution used once
    assert (pairs[0].type, pairs[0].chosen, pairs[0].rejected) == ("answer", good.text, bad2.text)
    assert pairs[0].chosen_token_confidences == (0.9, 0.9, 0.99, 0.99)
    assert report.thresholds is None


def test_record_round_trip_is_json() -> None:
    ps = ProblemSamples("p", "Q\n", [sol(0, S_RIGHT_UNSURE), sol(1, S_WRONG_SURE)])
    pairs, _ = build_pairs([ps], PairRule(), FIXED)
    for p in pairs:
        rec = json.loads(json.dumps(p.to_record()))
        assert Pair.from_record(rec) == p


def test_rule_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="pairs.mode"):
        PairRule(mode="token")
    with pytest.raises(ValueError, match="pairs.low_percentile"):
        PairRule(low_percentile=130)
    with pytest.raises(ValueError, match="pairs.types"):
        PairRule(types=("C",))


def test_a_pair_falls_back_to_the_next_alternative_instead_of_duplicating_b() -> None:
    # B: "=6" (0.8 wrong) vs "=5". A's best alternative is "=6" too, which would repeat the B
    # pair; the A pair takes the next wrong alternative "=7" instead.
    ps = ProblemSamples("p", "Q\n", [sol(0, S_RIGHT_UNSURE), sol(1, S_WRONG_SURE), sol(2, S_WRONG_UNSURE)])
    pairs, report = build_pairs([ps], PairRule(), FIXED)
    assert [(p.type, p.chosen, p.rejected) for p in pairs] == [
        ("B", "2+3=5\n", "2+3=6\n"),
        ("A", "2+3=5\n", "2+3=7\n"),
    ]
    assert report.duplicates == 0


# Fixed samples for the mode tests: step 0 is shared; sample 0 right and sure, sample 1 right
# and unsure, sample 2 wrong and sure, sample 3 wrong and unsure; 0 and 1 reach the answer.
MODE_SAMPLES = ProblemSamples(
    "p",
    "Q\n",
    [
        sol(0, S_RIGHT_SURE, st("5+4=9", 0.9, CORRECT), correct=True),
        sol(1, S_RIGHT_UNSURE, st("5+4=9", 0.3, CORRECT), correct=True),
        sol(2, S_WRONG_SURE, correct=False),
        sol(3, S_WRONG_UNSURE, correct=False),
    ],
)


def _keys(pairs: list[Pair]) -> set[tuple[str, str, str]]:
    return {(p.type, p.chosen, p.rejected) for p in pairs}


def test_each_pair_mode_on_fixed_samples() -> None:
    step, rep_step = build_pairs([MODE_SAMPLES], PairRule(mode="step"), FIXED)
    answer, _ = build_pairs([MODE_SAMPLES], PairRule(mode="answer"), FIXED)
    both, rep_both = build_pairs([MODE_SAMPLES], PairRule(mode="both"), FIXED)
    nofilter, rep_nf = build_pairs([MODE_SAMPLES], PairRule(mode="step-nofilter"), FIXED)
    # step: B for the sure wrong 2+3=6; A for the unsure right 2+3=5 vs the likeliest wrong step
    # (the A pair's first option, vs 2+3=6, duplicates the B pair: it falls back to 2+3=7)
    assert _keys(step) == {("B", "2+3=5\n", "2+3=6\n"), ("A", "2+3=5\n", "2+3=7\n")}
    assert {p.type for p in answer} == {"answer"} and len(answer) == 2
    # both = step pairs + answer pairs, nothing lost, nothing twice
    assert _keys(both) == _keys(step) | _keys(answer)
    assert len(both) == len({(p.prompt, p.chosen, p.rejected) for p in both})
    assert rep_both.by_type["answer"] == 2 and rep_both.n_steps_used == rep_step.n_steps_used
    # no filter (fixed thresholds do not apply): the sure right steps and the unsure wrong one
    # are candidates too
    assert rep_nf.candidates["A"] > rep_step.candidates["A"]
    assert rep_nf.candidates["B"] > rep_step.candidates["B"]
    assert _keys(step) <= _keys(nofilter)
    # a sure right step and an unsure wrong one: no pair unless the filter is off
    calm = ProblemSamples("q", "Q\n", [sol(0, S_RIGHT_SURE), sol(1, S_WRONG_UNSURE)])
    assert build_pairs([calm], PairRule(mode="step"), FIXED)[0] == []
    assert _keys(build_pairs([calm], PairRule(mode="step-nofilter"), FIXED)[0]) == {
        ("B", "2+3=5\n", "2+3=7\n")
    }
    assert rep_nf.thresholds == Thresholds(low=float("inf"), high=float("-inf"))


def test_pair_record_round_trip_keeps_origin_and_ids() -> None:
    ps = ProblemSamples(
        "p",
        "Q\n",
        [
            sol(0, replace(S_RIGHT_UNSURE, token_ids=(1, 2))),
            sol(1, replace(S_WRONG_UNSURE, token_ids=(1, 3))),
        ],
    )
    (pair,), _ = build_pairs([ps], PairRule(types=("A",)), FIXED)
    assert (pair.chosen_token_ids, pair.rejected_token_ids, pair.origin) == ((1, 2), (1, 3), "sample")
    assert Pair.from_record(json.loads(json.dumps(pair.to_record()))) == pair
    old = pair.to_record()
    for key in ("origin", "chosen_token_ids", "rejected_token_ids"):
        old.pop(key)  # a pairs.jsonl written before these fields still loads
    assert Pair.from_record(old).origin == "sample"
