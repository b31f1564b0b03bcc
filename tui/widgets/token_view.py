"""The selected step in full: its tokens on their confidence colours, and its numbers.

This is where a long step (cut short in its tree label) is shown whole.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from caspo_lite.search.tree import ROOT, SearchTree
from caspo_lite.tui.style import token_heatmap


class TokenView(Static):
    """Shows one step node; ``node_id`` is the one on display (None = nothing selected)."""

    DEFAULT_CSS = """
    TokenView { height: auto; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(Text("Select a step to see its tokens.", style="dim"), id=id, classes=classes)
        self.node_id: int | None = None

    def show_node(self, tree: SearchTree, node_id: int | None, signal: str = "entropy") -> None:
        self.node_id = node_id
        if node_id is None or node_id not in tree.nodes or (node_id == ROOT and not tree.question):
            self.update(Text("Select a step to see its tokens.", style="dim"))
            return
        node = tree.nodes[node_id]
        if node_id == ROOT:
            self.update(Text.assemble(("Question\n", "bold"), node.text))
            return
        head = [f"branch {node.branch} · step {node.step_index}"]
        if node.step_confidence is not None:
            head.append(f"step {node.step_confidence:.3f}")
        if node.path_confidence is not None:
            head.append(f"path {node.path_confidence:.3f}")
        head.append(f"{len(node.tokens)} tokens")
        out = Text(" · ".join(head) + "\n", style="bold")
        if node.pruned:
            out.append(
                f"pruned: path {node.pruned[0]:.3f} < threshold {node.pruned[1]:.3f} ({node.pruned[2]})\n",
                "red",
            )
        if node.finished:
            answer = node.finished[0]
            said = f"answer {answer}" if answer is not None else "no answer"
            out.append(f"finished ({node.finished[2]}): {said}\n", "cyan")
        if any(piece for piece, _ in node.tokens):
            out.append_text(token_heatmap(node.tokens, signal))
        else:
            out.append(node.display_text())
        self.update(out)

    @property
    def plain(self) -> str:
        """The text on display (for tests)."""
        content = self.content
        return content.plain if isinstance(content, Text) else str(content)
