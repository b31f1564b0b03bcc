"""The conversation: questions as plain text, final answers as Markdown.

Questions and notes are `Text` (never markup); answers go through the Markdown widget, which
does not interpret Rich markup either, so model text shows as written.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Markdown, Static


def answer_markdown(
    text: str | None, answer: str | None, confidence: float, strategy: str, shown_conf: Any = None
) -> str:
    """The answer card: the winning solution, then the extracted answer and its confidence.

    ``shown_conf`` (an `AnswerConfidence`) makes the confidence the calibrated P(correct) as a
    percentage with the raw score beside it, or the raw score marked "uncalibrated"; below the
    abstention threshold the answer reads "not sure" with the best guess after it.
    """
    parts = []
    if text and text.strip():
        # one step per line: a hard break (two trailing spaces) keeps Markdown from joining them
        parts.append("  \n".join(line.rstrip() for line in text.strip().splitlines()))
    shown = answer if answer is not None else "no answer extracted"
    if shown_conf is None:
        parts.append(f"**Answer: {shown}** · confidence {confidence:.2f} · {strategy}")
    elif shown_conf.abstained:
        parts.append(f"**Not sure** (best guess {shown}) · {shown_conf.label()} · {strategy}")
    else:
        parts.append(f"**Answer: {shown}** · {shown_conf.label()} · {strategy}")
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
