"""Search strategies against the scripted fake engine: stream shape, pruning, selection, edges."""

from __future__ import annotations

import re

import pytest

from caspo_lite.config import SearchSection, StepsSection
from caspo_lite.engines.fake import FLAT, SHARP, FakeEngine, ScriptPath
from caspo_lite.errors import ConfigError
from caspo_lite.search import STRATEGY_NAMES, get_strategy, run_search
from caspo_lite.search.base import weighted_vote
from caspo_lite.search.baselines import DeepConfOnline, lowest_group
from caspo_lite.search.events import AnswerChosen, BranchFinished, BranchPruned, BranchStarted, TokenGenerated
from caspo_lite.tasks.base import Prompt

PROMPT = Prompt(text="q1 q2 q3")
STEPS = StepsSection(min_step_tokens=1)


def answer_line(text: str) -> str | None:
    m = re.search(r"Answer:\s*(\S+)", text)
    return m.group(1) if m else None


def last_number(text: str) -> str | None:
    nums = re.findall(r"\d+", text)
    return nums[-1] if nums else None


def sure(first: str, answer: str, weight: float = 1.0) -> ScriptPath:
    return ScriptPath.of(
        [
            (first, SHARP),
            (" 2", SHARP),
            (" +", SHARP),
            (" 2", SHARP),
            ("\n", SHARP),
            (f"Answer: {answer}", SHARP),
            ("\n", SHARP),
        ],
        weight,
    )


def unsure(first: str, answer: str, weight: float = 1.0) -> ScriptPath:
    return ScriptPath.of(
        [
            (first, SHARP),
            (" x", FLAT),
            (" y", FLAT),
            (" z", FLAT),
            ("\n", SHARP),
            (f"Answer: {answer}", FLAT),
            ("\n", SHARP),
        ],
        weight,
    )


def search(**kw: object) -> SearchSection:
    base = {"k": 6, "temperature": 0.1, "top_p": 1.0, "seed": 0, "warmup": 1}
    base.update(kw)
    return SearchSection(**base)  # type: ignore[arg-type]


def run(name: str, engine: FakeEngine, extract=answer_line, **kw: object):  # noqa: ANN001, ANN201
    return run_search(engine, PROMPT, get_strategy(name, search(**kw), steps=STEPS), extract)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_stream_shape_and_prompt_decoded_once(name: str) -> None:
    engine = FakeEngine([sure("A", "4"), unsure("B", "5")])
    res = run(name, engine, prune_threshold=0.5)
    kinds = [type(e) for e in res.events]
    assert kinds.count(AnswerChosen) == 1 and kinds[-1] is AnswerChosen
    assert engine.stats.prompt_tokens == 3  # the prompt once, whatever the number of branches
    started = {e.branch for e in res.events if isinstance(e, BranchStarted)}
    for e in res.events:
        if isinstance(e, TokenGenerated | BranchFinished | BranchPruned):
            assert e.branch in started
    assert res.n_tokens == sum(isinstance(e, TokenGenerated) for e in res.events)
    assert res.answer in {"4", "5"}


def test_greedy_follows_the_heavier_path() -> None:
    engine = FakeEngine([sure("A", "4", weight=3.0), unsure("B", "5")])
    res = run("greedy", engine)
    assert (res.answer, res.n_branches, engine.max_batch) == ("4", 1, 1)
    assert res.paths[0].stop_reason == "answer"


def test_sc_decodes_all_samples_in_one_batch_and_votes() -> None:
    engine = FakeEngine([sure("A", "4"), unsure("B", "5", weight=1.0)])
    res = run("sc", engine, k=8)
    assert engine.max_batch == 8
    answers = [p.answer for p in res.paths]
    assert res.answer == max(set(answers) - {None}, key=answers.count)
    assert res.confidence == pytest.approx(answers.count(res.answer) / sum(a is not None for a in answers))


def test_bon_picks_the_most_confident_path_even_when_outvoted() -> None:
    engine = FakeEngine([sure("A", "4", weight=0.9), unsure("B", "5")])  # p(A) ~ 0.26 at T=0.1
    res = run("bon", engine, k=8, seed=3)
    assert any(p.answer == "4" for p in res.paths), "the script should sample the sure path at least once"
    assert res.answer == "4"


def test_cat_prunes_unsure_paths_and_frees_their_cells() -> None:
    engine = FakeEngine([sure("A", "4"), unsure("B", "5")])
    res = run("cat", engine, k=6, beam_width=4, branch_factor=2, prune_threshold=0.5)
    assert res.answer == "4"
    pruned = [e for e in res.events if isinstance(e, BranchPruned)]
    assert pruned and all(e.path_confidence < 0.5 for e in pruned if e.reason == "confidence")
    assert res.n_pruned >= 1
    assert {e.branch for e in pruned} <= {e.branch for e in res.events if isinstance(e, BranchStarted)}
    assert engine.freed, "pruned/finished branches must release their KV cells"
    assert engine.max_batch <= 4


def test_cat_forks_share_the_prefix() -> None:
    paths = [sure("A", "4"), unsure("B", "5")]
    engine = FakeEngine(paths)
    res = run("cat", engine, k=4, beam_width=2, branch_factor=2, prune_threshold=0.5, consensus=1.01, seed=4)
    forks = [e for e in res.events if isinstance(e, BranchStarted) and e.reason == "fork"]
    assert forks and all(e.parent is not None for e in forks)  # a pruned path's slot goes to a fork
    # forked children inherit the parent's tokens: fewer tokens than K independent samples
    sc = run("sc", FakeEngine(paths), k=4)
    assert res.n_tokens < sc.n_tokens


def test_cat_uses_fewer_tokens_than_sc_with_the_same_budget() -> None:
    paths = [sure("A", "4"), unsure("B", "5"), unsure("C", "6")]
    cat = run("cat", FakeEngine(paths), k=8, beam_width=4, prune_threshold=0.5)
    sc = run("sc", FakeEngine(paths), k=8)
    assert cat.n_tokens < sc.n_tokens


def test_cat_never_prunes_the_last_paths_away() -> None:
    flat_a = ScriptPath.of(
        [("A", SHARP), (" 7", FLAT), (" +", FLAT), (" 1", FLAT), ("\n", FLAT), (" more", FLAT)]
    )
    flat_b = ScriptPath.of([("B", SHARP), (" 3", FLAT), (" 9", FLAT), ("\n", FLAT), (" more", FLAT)])
    res = run("cat", FakeEngine([flat_a, flat_b]), extract=last_number, k=3, prune_threshold=0.99)
    assert len(res.paths) == 1 and res.n_pruned == 2  # every path below the bar; the surest goes on
    assert res.answer in {"1", "9"} and not res.reason.startswith("fallback")


def test_cat_without_any_answer_falls_back_to_the_best_partial_path() -> None:
    flat = ScriptPath.of([("A", SHARP), (" 7", FLAT), ("\n", FLAT), (" more", FLAT)])
    res = run("cat", FakeEngine([flat]), extract=lambda t: None, k=2, prune_threshold=0.0)
    assert res.reason.startswith("fallback: no path finished with an answer")


def test_cat_accept_threshold_stops_early() -> None:
    long_path = ScriptPath.of(
        [("L", SHARP)] + [(" s", SHARP), ("\n", SHARP)] * 6 + [("Answer: 9", SHARP), ("\n", SHARP)]
    )
    paths = [sure("A", "4"), long_path]
    kw = {"k": 8, "beam_width": 8, "prune_threshold": 0.0, "seed": 5, "consensus": 1.01}
    res = run("cat", FakeEngine(paths), accept_threshold=0.5, **kw)
    full = run("cat", FakeEngine(paths), accept_threshold=1.01, **kw)
    assert res.reason.startswith("accepted") and res.answer in {"4", "9"}
    assert res.n_tokens < full.n_tokens
    first_finish = next(i for i, e in enumerate(res.events) if isinstance(e, BranchFinished))
    stopped = [
        i for i, e in enumerate(res.events) if isinstance(e, BranchPruned) and e.reason.startswith("stopped")
    ]
    assert all(i > first_finish for i in stopped)
    assert res.n_pruned == sum(isinstance(e, BranchPruned) for e in res.events) - len(stopped)


def test_cat_calibrated_threshold_from_warmup() -> None:
    engine = FakeEngine([sure("A", "4"), unsure("B", "5")])
    res = run("cat", engine, k=8, beam_width=4, prune_threshold=-1.0, prune_percentile=50.0, warmup=1)
    thresholds = {e.threshold for e in res.events if isinstance(e, BranchPruned) and e.reason == "confidence"}
    assert len(thresholds) <= 1  # fixed once calibrated
    assert res.answer in {"4", "5"}


def test_cat_vote_selection() -> None:
    engine = FakeEngine([sure("A", "4"), unsure("B", "5")])
    no_stop = {"accept_threshold": 1.01, "consensus": 1.01}
    res = run("cat", engine, k=6, prune_threshold=0.0, selection="vote", **no_stop)
    final = res.events[-1]
    assert (
        isinstance(final, AnswerChosen)
        and final.votes
        and res.answer == max(final.votes, key=final.votes.get)
    )


def test_vote_ties_go_to_the_surest_path() -> None:
    def fin(b: int, answer: str, conf: float) -> BranchFinished:
        return BranchFinished(b, "", answer, conf, 3, "eos")

    answer, votes, best = weighted_vote([fin(0, "1", 0.4), fin(1, "2", 0.9)], lambda f: 1.0)
    assert answer == "2" and votes == {"1": 1.0, "2": 1.0} and best is not None and best.branch == 1


def test_deepconf_stops_unsure_traces_after_a_sure_warmup() -> None:
    long_sure = ScriptPath.of([("A", SHARP)] + [(" s", SHARP)] * 10 + [("Answer: 4", SHARP), ("\n", SHARP)])
    long_unsure = ScriptPath.of([("B", SHARP)] + [(" u", FLAT)] * 10 + [("Answer: 5", FLAT), ("\n", SHARP)])
    checked = stopped = 0
    for seed in range(12):
        strat = DeepConfOnline(
            search=search(k=6, warmup=1, prune_percentile=10.0, seed=seed), steps=STEPS, window=4
        )
        res = run_search(FakeEngine([long_sure, long_unsure]), PROMPT, strat, answer_line)
        warm = next(e for e in res.events if isinstance(e, TokenGenerated) and e.branch == 0)
        if warm.text != "A":
            continue  # the warm-up trace was the unsure one: the threshold is low, nothing to check
        checked += 1
        later_b = {e.branch for e in res.events if isinstance(e, TokenGenerated) and e.text == "B"}
        pruned = {e.branch for e in res.events if isinstance(e, BranchPruned)}
        assert pruned == later_b, "every unsure trace is stopped early, no sure one is"
        stopped += len(pruned)
        assert all(e.reason == "deepconf window" for e in res.events if isinstance(e, BranchPruned))
        assert res.answer == "4"
    assert checked >= 2 and stopped >= 1


def test_lowest_group() -> None:
    assert lowest_group([1, 1, 5, 5, 1, 1], 2) == pytest.approx(1.0)
    assert lowest_group([2, 4], 16) == pytest.approx(3.0)


def test_record_all_signals_carries_stats() -> None:
    strat = get_strategy("greedy", search(), steps=STEPS, record_all_signals=True)
    res = run_search(FakeEngine([sure("A", "4")]), PROMPT, strat, answer_line)
    toks = [e for e in res.events if isinstance(e, TokenGenerated)]
    assert toks and all(t.stats is not None for t in toks)


def test_should_stop_cancels_between_tokens() -> None:
    engine = FakeEngine([sure("A", "4")])
    seen: list[object] = []
    res = run_search(
        engine,
        PROMPT,
        get_strategy("sc", search(k=2), steps=STEPS),
        answer_line,
        on_event=seen.append,
        should_stop=lambda: len(seen) >= 4,
    )
    assert res.cancelled and res.answer is None and len(res.events) == 4


@pytest.mark.parametrize(
    ("name", "kw", "field"),
    [
        ("nope", {}, "unknown search strategy"),
        ("cat", {"k": 0}, "search.k"),
        ("cat", {"prune_percentile": 150.0}, "prune_percentile"),
        ("sc", {"temperature": -1.0}, "temperature"),
        ("cat", {"selection": "best"}, "selection"),
    ],
)
def test_invalid_config_is_a_one_line_config_error(name: str, kw: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        get_strategy(name, search(**kw))
    assert "\n" not in str(info.value)


def test_context_overflow_is_an_engine_error() -> None:
    from caspo_lite.errors import EngineError

    engine = FakeEngine([sure("A", "4")], n_ctx=5)
    with pytest.raises(EngineError, match="context overflow"):
        run("greedy", engine)


def test_most_confident_tie_goes_to_the_first_finished() -> None:
    from caspo_lite.search.base import most_confident

    fins = [BranchFinished(0, "", "1", 0.8, 3, "eos"), BranchFinished(1, "", "2", 0.8, 3, "eos")]
    best = most_confident(fins)
    assert best is not None and best.branch == 0
    assert most_confident([BranchFinished(0, "", None, 0.9, 3, "eos")]) is None
