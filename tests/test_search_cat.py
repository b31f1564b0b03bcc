"""CaT's pruning, early stops and counters against the scripted fake engine (exact figures)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from test_search_fake import PROMPT, STEPS, answer_line, search, sure, unsure

from caspo_lite.calibration_file import update_section
from caspo_lite.engines.fake import SHARP, FakeEngine, ScriptPath
from caspo_lite.search import get_strategy, run_search
from caspo_lite.search.cat_calibration import fit_cat_thresholds
from caspo_lite.search.events import AnswerChosen, BranchFinished, BranchPruned, BranchStarted, StepDone

NO_STOP = {"accept_threshold": 1.01, "consensus": 1.01}


def cat(engine: FakeEngine, name: str = "cat", **kw: object):  # noqa: ANN201
    return run_search(engine, PROMPT, get_strategy(name, search(**kw), steps=STEPS), answer_line)


def final(res) -> AnswerChosen:  # noqa: ANN001
    ev = res.events[-1]
    assert isinstance(ev, AnswerChosen)
    return ev


def calibration(tmp_path: Path, path_confs: list[float]) -> str:
    f = tmp_path / "calibration.json"
    update_section(f, "cat", fit_cat_thresholds(path_confs, path_confs, "entropy", "geomean"))
    return str(f)


def test_all_roots_start_at_once_and_fill_the_first_decode() -> None:
    engine = FakeEngine([sure("A", "4"), unsure("B", "5")])
    res = cat(engine, k=6, prune_threshold=0.0, **NO_STOP)
    roots = [e for e in res.events if isinstance(e, BranchStarted)]
    assert len(roots) == 6 and all(e.reason == "root" and e.parent is None for e in roots)
    c = final(res).counters
    assert c["first_decode_rows"] == 6 == engine.max_batch and c["n_roots"] == 6


def test_calibrated_threshold_prunes_on_the_first_boundary(tmp_path: Path) -> None:
    # Dev confidences put the 50th percentile between an unsure and a sure first step.
    cal = calibration(tmp_path, [0.3, 0.4, 0.5, 0.95, 0.97, 0.99])
    engine = FakeEngine([sure("A", "4"), unsure("B", "5")])
    res = cat(engine, k=8, calibration=cal, prune_percentile=50.0, **NO_STOP)
    c = final(res).counters
    assert c["threshold_source"] == "calibration" and c["threshold"] == pytest.approx(0.725)
    pruned = [e for e in res.events if isinstance(e, BranchPruned)]
    assert pruned and all(e.reason == "confidence" and e.threshold == pytest.approx(0.725) for e in pruned)
    steps_before = Counter(e.branch for e in res.events if isinstance(e, StepDone))
    assert all(steps_before[e.branch] == 1 for e in pruned)  # cut right after its first step
    assert res.answer == "4"


def test_calibration_for_another_signal_falls_back_to_warm_up_paths(tmp_path: Path) -> None:
    f = tmp_path / "calibration.json"
    update_section(f, "cat", fit_cat_thresholds([0.5], [0.5], "margin", "geomean"))
    engine = FakeEngine([sure("A", "4"), unsure("B", "5")])
    res = cat(engine, k=8, calibration=str(f), prune_percentile=80.0, **NO_STOP)
    c = final(res).counters
    assert c["threshold_source"] == "warm-up"
    pruned = [e for e in res.events if isinstance(e, BranchPruned)]
    assert pruned and {e.reason for e in pruned} == {"confidence"}
    assert len({e.threshold for e in pruned}) == 1  # set once, from the roots' first boundary


def test_accept_stops_and_cuts_the_live_branches() -> None:
    long_path = ScriptPath.of([("L", SHARP)] + [(" s", SHARP), ("\n", SHARP)] * 6 + [("Answer: 9", SHARP)])
    res = cat(FakeEngine([sure("A", "4"), long_path]), k=8, prune_threshold=0.0, accept_threshold=0.5, seed=1)
    fin = [e for e in res.events if isinstance(e, BranchFinished)]
    cut = [e for e in res.events if isinstance(e, BranchPruned)]
    assert fin and cut and all(e.reason == "stopped: accept" for e in cut)
    assert len(fin) + len(cut) == 8  # every started path ended: finished or cut
    c = final(res).counters
    assert c["early_stop"] == "accept" and res.reason.startswith("accepted") and res.answer == "4"
    assert res.n_pruned == 0  # cut paths are not confidence prunes


def test_consensus_stops_once_two_finished_paths_agree() -> None:
    short = [unsure(f"S{i}", "4") for i in range(3)]  # moderate confidence: accept never fires
    long_path = ScriptPath.of([("L", SHARP)] + [(" s", SHARP), ("\n", SHARP)] * 8 + [("Answer: 7", SHARP)])
    engine = FakeEngine([*short, long_path])
    res = cat(engine, k=8, prune_threshold=0.0, accept_threshold=1.01, consensus=0.6, seed=2)
    c = final(res).counters
    assert c["early_stop"] in {"consensus", "decided"}
    fin = [e for e in res.events if isinstance(e, BranchFinished)]
    assert len(fin) >= 2 and res.answer == "4"
    cut = [e for e in res.events if isinstance(e, BranchPruned) and e.reason.startswith("stopped")]
    assert cut, "the long paths still running are cut"
    full = cat(FakeEngine([*short, long_path]), k=8, prune_threshold=0.0, seed=2, **NO_STOP)
    assert res.n_tokens < full.n_tokens


def test_no_restart_wave_unless_asked() -> None:
    engine = FakeEngine([sure("A", "4")])
    res = cat(engine, k=8, beam_width=2, branch_factor=1, prune_threshold=0.0, **NO_STOP)
    assert res.n_branches == 2  # two roots ended; the unspent budget starts no new wave
    again = cat(FakeEngine([sure("A", "4")]), k=8, beam_width=2, branch_factor=1, restart=True, **NO_STOP)
    assert again.n_branches == 8


def test_counters_are_exact() -> None:
    engine = FakeEngine([sure("A", "4"), unsure("B", "5")])
    res = cat(engine, k=6, beam_width=3, branch_factor=2, prune_threshold=0.5, **NO_STOP)
    c = final(res).counters
    # the fake counts the prompt prefill as a decode call too
    assert c["decode_calls"] == engine.stats.decode_calls - 1
    assert c["rows_per_decode"] == pytest.approx(engine.stats.generated_tokens / c["decode_calls"])
    assert c["max_rows"] == engine.max_batch <= 3
    reasons = Counter(e.reason for e in res.events if isinstance(e, BranchPruned))
    assert c["prunes"] == dict(reasons)
    forks = [e for e in res.events if isinstance(e, BranchStarted) and e.reason == "fork"]
    assert forks
    tokens_at_fork: dict[int, int] = {}
    seen: Counter[int] = Counter()
    starts = {e.branch: e for e in res.events if isinstance(e, BranchStarted)}
    for e in res.events:  # replay: a fork inherits its parent's tokens so far (and their inheritance)
        if isinstance(e, BranchStarted) and e.parent is not None:
            tokens_at_fork[e.branch] = seen[e.parent]
            seen[e.branch] = seen[e.parent]
        elif type(e).__name__ == "TokenGenerated":
            seen[e.branch] += 1
    assert c["tokens_shared"] == sum(tokens_at_fork.values()) > 0
    assert set(starts) == set(range(res.n_branches))
    assert c["time_to_answer_s"] > 0


def test_cat_verify_prunes_a_planted_wrong_step() -> None:
    wrong = ScriptPath.of(
        [("W", SHARP), (" 2 + 2 = 5", SHARP), ("\n", SHARP), ("Answer: 5", SHARP), ("\n", SHARP)]
    )
    right = ScriptPath.of(
        [("R", SHARP), (" 2 + 2 = 4", SHARP), ("\n", SHARP), ("Answer: 4", SHARP), ("\n", SHARP)]
    )
    kw = {"k": 6, "prune_threshold": 0.0, **NO_STOP}
    verified = cat(FakeEngine([wrong, right]), "cat-verify", seed=3, **kw)
    plain = cat(FakeEngine([wrong, right]), "cat", seed=3, **kw)
    assert any(p.answer == "5" for p in plain.paths), "the script samples the wrong path"
    pruned = [e for e in verified.events if isinstance(e, BranchPruned)]
    assert pruned and {e.reason for e in pruned} == {"verify"}
    assert all(p.answer == "4" for p in verified.paths) and verified.answer == "4"
    assert final(verified).strategy == "cat-verify"
    assert not [e for e in plain.events if isinstance(e, BranchPruned)]


@pytest.mark.slow
def test_tiny_gguf_fills_the_batch_at_the_first_decode_and_counts_decodes(tiny_gguf: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from caspo_lite.config import SearchSection
    from caspo_lite.engines import load_engine
    from caspo_lite.tasks import get_task
    from caspo_lite.tasks.base import Prompt

    task = get_task("arith")
    engine = load_engine(str(tiny_gguf), n_threads=1, n_ctx=1024)
    try:
        strategy = get_strategy("cat", SearchSection(k=6, max_tokens=24, temperature=1.0, seed=0))
        before = engine.stats.decode_calls
        question = task.load(n=1)[0].question
        prompt = Prompt(messages=({"role": "user", "content": question},))  # the tiny model's chat form
        res = run_search(engine, prompt, strategy, task.extract_answer)
        c = final(res).counters
        per_branch = Counter(e.branch for e in res.events if type(e).__name__ == "TokenGenerated")
        ended_at_once = sum(1 for p in res.paths if per_branch[p.branch] == 1)
        assert c["n_roots"] == 6 and ended_at_once == 0
        assert c["first_decode_rows"] == 6  # every root in the first batch
        prompt_calls = 1  # the prompt fits one n_batch chunk
        assert c["decode_calls"] == engine.stats.decode_calls - before - prompt_calls > 0
        tokens = sum(type(e).__name__ == "TokenGenerated" for e in res.events)
        rows_fed = tokens - len(res.paths) - sum(isinstance(e, BranchPruned) for e in res.events)
        assert c["rows_per_decode"] * c["decode_calls"] == pytest.approx(rows_fed, abs=6)
    finally:
        engine.close()
