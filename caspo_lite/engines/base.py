"""The engine contract every search strategy runs on.

An engine owns a model and hands out `DecodeSession`s. A session holds several sequences
(branches) over one KV cache: the prompt is decoded once, branches fork from it sharing the
prompt's cells, and all live branches advance together, one token each per `decode` call.
Logits rows come back as float32 arrays of shape (V,), valid until the next `decode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from caspo_lite.errors import EngineError
from caspo_lite.tasks.base import Prompt


def checked_prompt(token_ids: Sequence[int], n_ctx: int) -> list[int]:
    """The prompt as a list, or an EngineError when it is empty or cannot fit the context."""
    ids = list(token_ids)
    if not ids:
        raise EngineError("empty prompt: nothing to decode")
    if len(ids) >= n_ctx:
        raise EngineError(f"prompt of {len(ids)} tokens does not fit the context (n_ctx={n_ctx})")
    return ids


@dataclass
class EngineStats:
    """Counters the tests and benches read (prompt decoded once? how many decode calls?)."""

    prompt_tokens: int = 0  # tokens decoded as prompt prefill
    generated_tokens: int = 0  # tokens decoded one per branch per step
    decode_calls: int = 0


@runtime_checkable
class DecodeSession(Protocol):
    def prefill(self, token_ids: Sequence[int], seq: int = 0) -> np.ndarray:
        """Decode the prompt into sequence ``seq``; return the last position's logits (V,)."""

    def fork(self, parent: int, child: int) -> None:
        """Make ``child`` a copy of ``parent`` (shares cells; no recomputation)."""

    def decode(self, tokens: dict[int, int]) -> dict[int, np.ndarray]:
        """Append one token to each given sequence in ONE batch; return each one's logits."""

    def free(self, seq: int) -> None:
        """Drop a sequence's cells (a pruned branch)."""

    def close(self) -> None: ...


@runtime_checkable
class Engine(Protocol):
    name: str
    n_vocab: int
    eos_ids: frozenset[int]
    stats: EngineStats

    def tokenize(self, text: str, special: bool = True) -> list[int]: ...

    def token_text(self, token_id: int) -> str:
        """The text piece of one token (for step boundaries and display)."""

    def detokenize(self, token_ids: Sequence[int]) -> str: ...

    def render(self, prompt: Prompt) -> list[int]:
        """Prompt -> token ids (chat template from the model, or raw text)."""

    def session(self, n_seqs: int) -> DecodeSession: ...

    def close(self) -> None: ...
