"""The reasoning tree: one Textual tree node per search step, updated from a `SearchTree`.

Each label is built as `rich.text.Text` (Tree would parse a `str` label as markup and keep
only its first line): a confidence badge, the step's text on one line, then marks — pruned
branches are dimmed with the confidence that cut them, finished ones show their answer, and
the winning path turns bold with a star when the answer lands.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from caspo_lite.search.tree import ROOT, SearchTree, StepNode
from caspo_lite.tui.style import confidence_badge, one_line


def node_label(tree: SearchTree, node: StepNode, signal: str = "entropy") -> Text:
    """The one-line label of a step node (pure; tests read it as plain text)."""
    if node.id == ROOT:
        return Text.assemble(("? ", "bold"), one_line(node.text or "question"))
    dimmed = tree.is_dimmed(node.id)
    label = Text()
    if node.winner:
        label.append("★ ", Style(color="green", bold=True))
    label.append_text(confidence_badge(node.step_confidence, signal))
    body = one_line(node.display_text())
    if body:
        label.append(body, Style(italic=node.live, bold=node.winner))
    else:  # "…" alone would read as "still being written"
        label.append("…" if node.live else "(empty step)", "dim italic")
    if node.live:
        label.append(" ▍", "dim")
    if _stopped_here(tree, node):
        label.append("  ■ stopped", "yellow")
    if node.pruned:
        conf, threshold, reason = node.pruned
        label.append(f"  ✗ pruned {conf:.2f} < {threshold:.2f}", Style(color="red"))
        if reason:
            label.append(f" ({reason})", "dim")
    if node.finished:
        answer, conf, stop = node.finished
        said = f"answer {answer}" if answer is not None else "no answer"
        label.append(f"  → {said} @ {conf:.2f}", Style(color="cyan"))
    if dimmed:
        label.stylize("dim")
    return label


def _stopped_here(tree: SearchTree, node: StepNode) -> bool:
    """The node is the last step of a branch the search stopped (cancelled, or answered first)."""
    branch = tree.branches.get(node.branch) if node.branch is not None else None
    return branch is not None and branch.state == "stopped" and tree.branch_tip(node.branch) == node.id


class ReasoningTree(Tree[int]):
    """Tree of search steps; ``node.data`` is the `StepNode` id in the current `SearchTree`."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(Text("no question yet"), data=ROOT, id=id, classes=classes)
        self.guide_depth = 2  # a path is a chain of steps: keep deep chains readable
        self.model: SearchTree = SearchTree()
        self.signal = "entropy"
        self._step_nodes: dict[int, TreeNode[int]] = {}

    def show(self, model: SearchTree, signal: str = "entropy") -> None:
        """Replace the drawn tree with ``model`` (a new question, or a reloaded one)."""
        self.model, self.signal = model, signal
        self.clear()
        self._step_nodes = {ROOT: self.root}
        self.root.data = ROOT
        self.root.expand()
        model.changed = set(model.nodes)
        self.sync()

    def sync(self) -> None:
        """Add new step nodes and relabel changed ones (called once per event batch)."""
        model = self.model
        for node_id in sorted(model.take_changes()):  # ids grow with creation: parents first
            step = model.nodes[node_id]
            widget_node = self._step_nodes.get(node_id)
            label = node_label(model, step, self.signal)
            if widget_node is None:
                parent = self._step_nodes[step.parent if step.parent is not None else ROOT]
                parent.allow_expand = True
                parent.expand()
                widget_node = parent.add(label, data=node_id, expand=True, allow_expand=bool(step.children))
                self._step_nodes[node_id] = widget_node
            else:
                widget_node.set_label(label)
                if step.children and not widget_node.allow_expand:
                    widget_node.allow_expand = True

    def tree_node(self, node_id: int) -> TreeNode[int] | None:
        return self._step_nodes.get(node_id)

    def label_text(self, node_id: int) -> str:
        """The plain text of a node's label as drawn (for tests and the screen reader)."""
        node = self._step_nodes[node_id]
        return node.label.plain if isinstance(node.label, Text) else str(node.label)
