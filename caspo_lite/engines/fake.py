"""A scripted logits engine: deterministic, model-free, for testing search strategies.

A script is a list of candidate solutions ("paths"). The first generated token picks a path
(the row at the prompt gives each path's first token the path's weight); after that the row
puts a peak on the path's next token, sharp (confident) or flat (unsure) as the script says,
then EOS. Sampling at a low temperature follows the plan while the confidence signal still
sees the raw row, so a test controls each path's step confidences exactly.

Tokens are whole strings of the script (one vocabulary entry per distinct piece) plus fillers
so that a flat row has many plausible tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from caspo_lite.engines.base import EngineStats
from caspo_lite.errors import EngineError
from caspo_lite.tasks.base import Prompt

EOS = "</s>"
SHARP = 12.0  # peak height over the rest for a confident token
FLAT = 1.5  # peak height for an unsure token (many near-equal alternatives)


@dataclass(frozen=True)
class ScriptPath:
    """One candidate solution: token pieces, a confidence level per piece, a start weight."""

    pieces: tuple[str, ...]
    sharpness: tuple[float, ...]  # peak height per piece (SHARP, FLAT or anything between)
    weight: float = 1.0

    @classmethod
    def of(cls, spec: Sequence[tuple[str, float]], weight: float = 1.0) -> ScriptPath:
        return cls(tuple(p for p, _ in spec), tuple(float(s) for _, s in spec), weight)


@dataclass
class FakeSession:
    engine: FakeEngine
    n_seqs: int
    n_ctx: int
    seqs: dict[int, list[int]] = field(default_factory=dict)  # seq -> all token ids (prompt + generated)
    prompt_len: dict[int, int] = field(default_factory=dict)
    closed: bool = False

    def _check(self, seq: int) -> None:
        if not 0 <= seq < self.n_seqs:
            raise EngineError(f"sequence {seq} out of range: this session holds {self.n_seqs} sequences")

    def prefill(self, token_ids: Sequence[int], seq: int = 0) -> np.ndarray:
        self._check(seq)
        if len(token_ids) > self.n_ctx:
            raise EngineError(f"prompt of {len(token_ids)} tokens exceeds the context ({self.n_ctx})")
        self.seqs[seq] = list(token_ids)
        self.prompt_len[seq] = len(token_ids)
        self.engine.stats.prompt_tokens += len(token_ids)
        self.engine.stats.decode_calls += 1
        return self.engine.row(self.seqs[seq][len(token_ids) :])

    def fork(self, parent: int, child: int) -> None:
        self._check(child)
        if parent not in self.seqs:
            raise EngineError(f"cannot fork sequence {parent}: it holds no tokens")
        self.seqs[child] = list(self.seqs[parent])
        self.prompt_len[child] = self.prompt_len[parent]

    def decode(self, tokens: dict[int, int]) -> dict[int, np.ndarray]:
        if not tokens:
            return {}
        cells = sum(len(v) for v in self.seqs.values()) + len(tokens)
        if cells > self.n_ctx * max(1, self.n_seqs):
            raise EngineError(f"context overflow: {cells} cells needed, {self.n_ctx} available")
        out: dict[int, np.ndarray] = {}
        for seq, tok in tokens.items():
            if seq not in self.seqs:
                raise EngineError(f"sequence {seq} was never prefilled or forked")
            self.seqs[seq].append(int(tok))
            if len(self.seqs[seq]) > self.n_ctx:
                raise EngineError(f"context overflow: sequence {seq} reached n_ctx={self.n_ctx}")
            out[seq] = self.engine.row(self.seqs[seq][self.prompt_len[seq] :])
        self.engine.stats.generated_tokens += len(tokens)
        self.engine.stats.decode_calls += 1
        self.engine.max_batch = max(self.engine.max_batch, len(tokens))
        return out

    def free(self, seq: int) -> None:
        self.seqs.pop(seq, None)
        self.engine.freed.append(seq)

    def close(self) -> None:
        self.seqs.clear()
        self.closed = True


class FakeEngine:
    """Engine protocol over a script of paths (see module doc)."""

    name = "fake"

    def __init__(self, paths: Sequence[ScriptPath], n_fillers: int = 30, n_ctx: int = 4096) -> None:
        if not paths:
            raise ValueError("a fake engine needs at least one scripted path")
        self.paths = list(paths)
        vocab = [EOS]
        for path in self.paths:
            for piece in path.pieces:
                if piece not in vocab:
                    vocab.append(piece)
        vocab += [f"<f{i}>" for i in range(n_fillers)]
        self.vocab = vocab
        self.index = {piece: i for i, piece in enumerate(vocab)}
        self.n_vocab = len(vocab)
        self.eos_ids = frozenset({0})
        self.stats = EngineStats()
        self.n_ctx = n_ctx
        self.max_batch = 0
        self.freed: list[int] = []
        self._plans = [[self.index[p] for p in path.pieces] for path in self.paths]

    def row(self, generated: Sequence[int]) -> np.ndarray:
        """The scripted logits row after ``generated`` (tokens since the prompt)."""
        z = np.zeros(self.n_vocab, dtype=np.float32)
        if not generated:
            for plan, path in zip(self._plans, self.paths, strict=True):
                z[plan[0]] = max(z[plan[0]], SHARP + float(np.log(path.weight)))
            return z
        for plan, path in zip(self._plans, self.paths, strict=True):
            if plan[0] == generated[0] and plan[: len(generated)] == list(generated):
                i = len(generated)
                if i < len(plan):
                    z[plan[i]] = path.sharpness[i]
                else:
                    z[0] = SHARP
                return z
        z[0] = SHARP  # off-script (sampled a filler): end the path
        return z

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        return [self.index.get(ch, 1) for ch in text.split()] or [1]

    def token_text(self, token_id: int) -> str:
        return "" if token_id == 0 else self.vocab[token_id]

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return "".join(self.token_text(t) for t in token_ids)

    def render(self, prompt: Prompt) -> list[int]:
        text = prompt.text if prompt.text is not None else " ".join(m["content"] for m in prompt.messages)
        return self.tokenize(text)

    def session(self, n_seqs: int) -> FakeSession:
        return FakeSession(self, n_seqs, self.n_ctx)

    def close(self) -> None:
        pass
