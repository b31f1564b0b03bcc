"""Rich renderables for the CLI: a reasoning tree, an answer line, batch and demo tables.

The library (`caspo_lite.solve`, `caspo_lite.demo`) returns data; only the CLI draws it, so a
caller embedding the library (the TUI, the server, a notebook) never gets terminal output it did
not ask for. Model text always goes into `rich.text.Text`, never into markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from caspo_lite.demo import DemoReport, mean_step_confidence
from caspo_lite.solve import BatchSummary, Solved, search_counters_line, tree_nodes


def render_tree(solved: Solved, max_step_chars: int = 60) -> Tree:
    """A rich Tree of kept and pruned branches with their step confidences."""

    r = solved.result
    title = Text(f"{r.strategy}: ", style="bold")
    title.append(solved.question[:100])
    root = Tree(title)
    nodes = tree_nodes(r.events)
    handles: dict[int, Any] = {}
    step_handles: dict[int, list[Any]] = {}
    for bid, node in nodes.items():
        winner = any(p.branch == bid and p.answer == r.answer for p in r.paths) and r.answer is not None
        style = "red" if node["fate"].startswith("pruned") else ("bold green" if winner else "")
        label = Text(f"branch {bid} ", style=style or None)
        label.append(Text(node["fate"], style=style or "dim"))
        parent_id = node["parent"]
        at = root
        if parent_id is not None and parent_id in handles:
            # hang a fork under the parent's last shared step, so the tree reads as it grew
            shared = node["from_step"] - nodes[parent_id]["from_step"] - 1
            steps = step_handles.get(parent_id, [])
            at = steps[shared] if 0 <= shared < len(steps) else handles[parent_id]
        handles[bid] = at.add(label)
        step_handles[bid] = []
        for text, conf in node["steps"]:
            line = Text(f"[{conf:.2f}] ", style="cyan")
            line.append(text.replace("\n", " ")[:max_step_chars])
            step_handles[bid].append(handles[bid].add(line))
    return root


def render_summary(solved: Solved) -> Text:
    """The answer line (or "not sure"), its confidence, tokens, speed and the search's counters."""

    r = solved.result
    shown = solved.shown
    text = Text("answer: ", style="bold")
    if shown is not None and shown.abstained:
        text.append("not sure", style="bold yellow")
        text.append(f" (below {shown.abstain_below:.0%}; best guess {r.answer})", style="dim")
    else:
        text.append(str(r.answer), style="bold green" if r.answer is not None else "bold red")
    conf = shown.label() if shown is not None else f"confidence {r.confidence:.3f}"
    text.append(f"   {conf}   {r.n_tokens} tokens in {r.elapsed_s:.1f}s ")
    text.append(f"({r.tokens_per_s:.0f} tok/s)   branches {r.n_branches}, pruned {r.n_pruned}")
    if r.reason:
        text.append(f"\n{r.reason}", style="dim")
    line = search_counters_line(r)
    if line:
        text.append(f"\n{line}", style="dim")
    return text


def render_batch_table(summaries: Sequence[BatchSummary], title: str) -> Table:
    """One row per strategy of a batch solve: accuracy, tokens, time, speed, branches, prunes."""

    table = Table(title=title)
    for col in ("strategy", "accuracy", "tokens", "time (s)", "tok/s", "branches", "pruned"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for s in summaries:
        table.add_row(
            s.strategy,
            f"{s.accuracy:.0%} ({sum(bool(r.correct) for r in s.rows)}/{len(s.rows)})",
            str(s.n_tokens),
            f"{s.elapsed_s:.1f}",
            f"{s.n_tokens / s.elapsed_s:.0f}" if s.elapsed_s else "-",
            str(s.n_branches),
            str(s.n_pruned),
        )
    return table


def render_demo_table(report: DemoReport, title: str) -> Table:
    """One table, before rows then after rows, with the step confidence the round should move."""

    table = Table(title=title)
    cols = ("model", "strategy", "accuracy", "tokens", "time (s)", "pruned", "mean step conf")
    for col in cols:
        table.add_column(col, justify="left" if col in ("model", "strategy") else "right")
    groups = [("base", report.before)]
    if report.after:
        groups.append((Path(report.after_model).parent.name or "after", report.after))
    for label, summaries in groups:
        for s in summaries:
            conf = mean_step_confidence(s)
            table.add_row(
                label,
                s.strategy,
                f"{s.accuracy:.0%} ({sum(bool(r.correct) for r in s.rows)}/{len(s.rows)})",
                str(s.n_tokens),
                f"{s.elapsed_s:.1f}",
                str(s.n_pruned),
                f"{conf:.3f}" if conf is not None else "-",
            )
        if report.after and label == "base":
            table.add_section()
    if report.after:  # say which files: the base is the lossless export DPO started from
        table.caption = f"base: {report.before_model}\nafter: {report.after_model}"
    return table
