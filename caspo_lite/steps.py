"""Splitting a solution into reasoning steps (docs/design.md §1.1).

A step ends at a line break (blank lines collapse). A fragment of fewer than
``min_step_tokens`` tokens merges into the next step, and a step is cut at
``max_step_tokens``. The same rule serves three callers: the decode loop (online,
`StepSegmenter`), labelling of sampled solutions (`segment_tokens`), and plain text such
as gold solutions (`split_steps`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

DEFAULT_DELIMITER = r"\n"


@dataclass(frozen=True, slots=True)
class StepRule:
    delimiter: str = DEFAULT_DELIMITER  # regex; a token whose text matches it ends a step
    min_step_tokens: int = 3
    max_step_tokens: int = 96

    def __post_init__(self) -> None:
        if self.min_step_tokens < 1:
            raise ValueError(f"min_step_tokens must be >= 1, got {self.min_step_tokens}")
        if self.max_step_tokens < self.min_step_tokens:
            raise ValueError(
                f"max_step_tokens ({self.max_step_tokens}) must be >= "
                f"min_step_tokens ({self.min_step_tokens})"
            )
        re.compile(self.delimiter)


def split_steps(text: str, delimiter: str = DEFAULT_DELIMITER) -> list[str]:
    """Split plain text into non-empty, stripped steps (blank lines collapse)."""
    return [part.strip() for part in re.split(f"(?:{delimiter})+", text) if part.strip()]


@dataclass
class StepSegmenter:
    """Online step boundaries for one branch: feed tokens, learn when a step closes.

    ``push`` returns True when the token just fed closes a step. Whitespace-only tokens count
    towards neither side of ``min_step_tokens`` so a run of newlines collapses.
    """

    rule: StepRule = field(default_factory=StepRule)
    n_tokens: int = 0  # tokens in the open step
    n_content: int = 0  # of which not whitespace-only
    _pattern: re.Pattern[str] | None = None

    def push(self, token_text: str) -> bool:
        if self._pattern is None:
            self._pattern = re.compile(self.rule.delimiter)
        self.n_tokens += 1
        if token_text.strip():
            self.n_content += 1
        at_delimiter = bool(self._pattern.search(token_text))
        if (at_delimiter and self.n_content >= self.rule.min_step_tokens) or (
            self.n_tokens >= self.rule.max_step_tokens
        ):
            self.n_tokens = self.n_content = 0
            return True
        return False

    @property
    def open(self) -> bool:
        """Whether the current step has any content (it must be closed at end of text)."""
        return self.n_content > 0


def segment_tokens(token_texts: Sequence[str], rule: StepRule | None = None) -> list[tuple[int, int]]:
    """Step spans [start, end) over a token sequence, by the same rule as `StepSegmenter`.

    A trailing step with content is closed at the end; trailing whitespace tokens join the
    last step so every token belongs to exactly one span.
    """
    seg = StepSegmenter(rule or StepRule())
    spans: list[tuple[int, int]] = []
    start = 0
    for i, text in enumerate(token_texts):
        if seg.push(text):
            spans.append((start, i + 1))
            start = i + 1
    if start < len(token_texts):
        if seg.open or not spans:
            spans.append((start, len(token_texts)))
        else:
            spans[-1] = (spans[-1][0], len(token_texts))
    return spans
