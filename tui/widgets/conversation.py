"""The conversation: questions as plain text, final answers as Markdown.

Questions and notes are `Text` (never markup); answers go through the Markdown widget, which
does not interpret Rich markup either, so model text shows as written.
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Markdown, Static


def answer_markdown(text: str | None, answer: str | None, confidence: float, strategy: str) -> str:
    """The answer card: the winning solution, then the extracted answer and its confidence."""
    parts = []
    if text and text.strip():
        # one step per line: a hard break (two trailing spaces) keeps Markdown from joining them
        parts.append("  \n".join(line.rstrip() for line in text.strip().splitlines()))
    shown = answer if answer is not None else "no answer extracted"
    parts.append(f"**Answer: {shown}** · confidence {confidence:.2f} · {strategy}")
    return "\n\n".join(parts)


class ConversationView(VerticalScroll):
    """A scrolling column of question, answer and note blocks."""

    def clear_all(self) -> None:
        self.remove_children()

    def add_question(self, question: str) -> Static:
        block = Static(Text(question), classes="question")
        self.mount(block)
        self.scroll_end(animate=False)
        return block

    def add_answer(self, markdown: str) -> Markdown:
        block = Markdown(markdown, classes="answer")
        self.mount(block)
        self.scroll_end(animate=False)
        return block

    def add_note(self, note: str, kind: str = "note") -> Static:
        block = Static(Text(note), classes=f"note -{kind}")
        self.mount(block)
        self.scroll_end(animate=False)
        return block

    def texts(self) -> list[str]:
        """Plain text of every block, in order (for tests)."""
        out = []
        for child in self.children:
            if isinstance(child, Markdown):
                out.append(child.source)
            elif isinstance(child, Static):
                content = child.content
                out.append(content.plain if isinstance(content, Text) else str(content))
        return out
