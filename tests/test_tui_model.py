"""The TUI's Textual-free parts: tree model, labels, batching, settings form, history, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _tui_script import MARKUP_STEP, script_events

from caspo_lite.errors import ConfigError
from caspo_lite.search.events import BranchStarted, StepDone, TokenGenerated
from caspo_lite.search.tree import ROOT, SearchTree
from caspo_lite.tui.history import (
    Turn,
    append_turn,
    conversations,
    export_tree,
    load_turns,
    tree_to_dict,
    tree_to_markdown,
)
from caspo_lite.tui.inference import EventBatcher, batched
from caspo_lite.tui.settings import ChatSettings, apply_form, model_choices
from caspo_lite.tui.style import confidence_color, one_line
from caspo_lite.tui.widgets.reasoning_tree import node_label


def built(k: int = 3, upto: int | None = None, markup: bool = False) -> SearchTree:
    tree = SearchTree("q")
    tree.apply_all(script_events(k, markup=markup)[:upto])
    return tree


def test_fork_hangs_under_the_parent_step_and_winner_path_is_marked() -> None:
    tree = built(k=3)
    roots = tree.nodes[ROOT].children
    assert len(roots) == 3  # one first step per root branch
    first = roots[0]
    # branch 0 continued and branch 3 forked after step 0: both hang under branch 0's first step
    assert sorted(tree.nodes[c].branch for c in tree.nodes[first].children) == [0, 3]
    winner = [n.id for n in tree.nodes.values() if n.winner]
    assert tree.path_to(tree.branch_tip(3)) == winner
    assert [tree.nodes[n].branch for n in winner] == [None, 0, 3, 3]
    assert tree.answer is not None and tree.answer.answer == "14"
    assert tree.winning_text().endswith("Answer: 14\n")


def test_pruned_branch_is_dimmed_but_a_shared_prefix_is_not() -> None:
    tree = built(k=3)
    pruned = next(n for n in tree.nodes.values() if n.pruned)
    assert pruned.branch == 1 and pruned.pruned == (0.25, 0.4, "below prune threshold")
    assert tree.is_dimmed(pruned.id)
    assert not tree.is_dimmed(tree.nodes[ROOT].children[0])  # branch 0's step is also the fork's
    label = node_label(tree, pruned).plain
    assert "pruned 0.25 < 0.40" in label and "dim" in str(node_label(tree, pruned).spans)


def test_tokens_grow_a_live_node_until_the_step_closes() -> None:
    tree = SearchTree("q")
    tree.apply_all([BranchStarted(0, None, 0), TokenGenerated(0, 1, "3 +", 0.5, -1.0)])
    (live,) = tree.nodes[ROOT].children
    assert tree.nodes[live].live and tree.nodes[live].display_text() == "3 +"
    assert "▍" in node_label(tree, tree.nodes[live]).plain
    tree.apply_all([TokenGenerated(0, 2, " 4\n", 0.9, -0.1), StepDone(0, 0, "3 + 4", 0.67, 0.67, (0.5, 0.9))])
    node = tree.nodes[live]
    assert not node.live and node.step_confidence == 0.67 and len(node.tokens) == 2
    assert tree.n_tokens == 2 and tree.n_live() == 1


def test_saved_tokens_against_sc_use_the_mean_finished_length() -> None:
    tree = built(k=3, upto=-1)  # everything but the answer
    lengths = [f.n_tokens for f in tree.finished.values()]
    assert tree.tokens_saved_vs_sc(8) == round(8 * sum(lengths) / len(lengths) - tree.n_tokens)
    assert SearchTree("q").tokens_saved_vs_sc(8) is None  # nothing finished yet


def test_model_text_is_never_markup_and_long_steps_are_cut() -> None:
    tree = built(k=2, markup=True)
    node = tree.nodes[tree.nodes[ROOT].children[0]]
    assert node_label(tree, node).plain.endswith(one_line(MARKUP_STEP))
    assert "[bold]3[/]" in node_label(tree, node).plain
    long = "word " * 50
    assert len(one_line(long)) == 56 and one_line(long).endswith("…")


def test_confidence_colours_run_red_to_green() -> None:
    low, high = confidence_color(0.0).get_truecolor(), confidence_color(1.0).get_truecolor()
    assert low.red > low.green and high.green > high.red
    assert (
        confidence_color(30.0, "deepconf").get_truecolor().green
        > confidence_color(0.5, "deepconf").get_truecolor().green
    )


def test_batcher_groups_tokens_by_time_and_flushes_structure_at_once() -> None:
    now = [0.0]
    batcher = EventBatcher(0.05, clock=lambda: now[0])
    events = script_events(3)
    tokens = [e for e in events if isinstance(e, TokenGenerated)][:4]
    assert all(batcher.push(t) is None for t in tokens)  # time has not moved: held back
    now[0] = 0.06
    batch = batcher.push(tokens[0])
    assert batch is not None and len(batch) == 5
    assert batcher.push(BranchStarted(9, None, 0)) == [BranchStarted(9, None, 0)]
    flat = [e for b in batched(iter(events), EventBatcher(10.0, clock=lambda: 0.0)) for e in b]
    assert flat == events  # nothing lost or reordered


def test_settings_form_validates_and_copies() -> None:
    base = ChatSettings()
    new = apply_form(base, {"strategy": "sc", "k": "3", "temperature": "0.2", "signal": "margin"})
    assert (new.search.strategy, new.search.k, new.search.temperature, new.confidence.signal) == (
        "sc",
        3,
        0.2,
        "margin",
    )
    assert (base.search.strategy, base.search.k) == ("cat", 8)  # the old settings are untouched
    with pytest.raises(ConfigError, match=r"settings.search.k: 'three' is not a whole number"):
        apply_form(base, {"k": "three"})
    with pytest.raises(ConfigError, match="unknown 'nope'"):
        apply_form(base, {"strategy": "nope"})
    with pytest.raises(ConfigError, match="at least 1"):
        apply_form(base, {"beam_width": "0"})


def test_model_choices_list_builtins_then_gguf_files_under_runs(tmp_path: Path) -> None:
    (tmp_path / "r1" / "round-1").mkdir(parents=True)
    gguf = tmp_path / "r1" / "round-1" / "model-q4.gguf"
    gguf.write_bytes(b"GGUF")
    names = model_choices(tmp_path)
    assert set(names[:2]) == {"smollm2-135m", "tiny"} and names[2:] == [str(gguf)]


def test_history_round_trip_skips_damaged_lines_and_exports(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    events = script_events(3)
    first = Turn("q1", ChatSettings().to_dict(), events, conversation="c1", created=1.0)
    append_turn(first, path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    append_turn(Turn("q2", {}, events[:5], conversation="c2", created=2.0, cancelled=True), path)
    turns = load_turns(path)
    assert [t.question for t in turns] == ["q1", "q2"]
    assert turns[0].events == events  # every event survives, tuples included
    assert list(conversations(turns)) == ["c2", "c1"]  # newest first
    tree = turns[0].tree()
    assert tree.answer is not None and tree.answer.answer == "14"
    data = tree_to_dict(tree)
    assert data["tree"]["children"][1]["pruned"]["threshold"] == 0.4
    md = tree_to_markdown(tree)
    assert "**winner**" in md and "pruned at 0.25 < 0.40" in md
    j, m = export_tree(tree, "t", tmp_path / "exp")
    assert json.loads(j.read_text())["answer"]["answer"] == "14" and m.read_text() == md


def test_an_empty_step_without_an_answer_reads_as_final_not_as_being_written() -> None:
    from caspo_lite.search.events import BranchFinished

    tree = SearchTree("q")
    tree.apply_all(
        [
            BranchStarted(0, None, 0, "root"),
            TokenGenerated(0, 0, "\n", 0.89, -0.1),
            StepDone(0, 0, "", 0.89, 0.89, (0.89,)),
            BranchFinished(0, "", None, 0.89, 1, "eos", (0.89,)),
        ]
    )
    (node_id,) = tree.nodes[ROOT].children
    label = node_label(tree, tree.nodes[node_id]).plain
    assert label == "● 0.89 (empty step)  → no answer @ 0.89"
    assert "…" not in label and "▍" not in label


def test_ending_a_search_closes_what_was_being_written() -> None:
    tree = built(3, upto=15)  # branch 0 is one token into its second step
    assert tree.n_live() == 3 and any(n.live for n in tree.nodes.values())
    tree.end(cancelled=True)
    assert tree.cancelled and tree.n_live() == 0 and not any(n.live for n in tree.nodes.values())
    stopped = [n for n in tree.nodes.values() if n.id != ROOT and "■ stopped" in node_label(tree, n).plain]
    assert {n.branch for n in stopped} == {0, 2}  # not the pruned one, nor the fork that wrote nothing
