"""The decode loop every strategy shares: branches over one engine session.

Sequence 0 holds the prompt and is never extended, so any strategy can start a fresh root
path later (DeepConf's post-warm-up traces, CaT's restart after a dead tree) by forking it;
branches live in sequences 1..n. One `advance` call samples a token for every live branch
from its logits row, scores it (once per token per branch, on the engine's row view, no
copy), detects step ends and finished paths, then decodes all live branches in ONE batch.
Strategies decide only what happens at step boundaries (prune, fork, stop).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from caspo_lite.confidence import ConfidenceScorer, path_confidence, step_confidence
from caspo_lite.engines.base import DecodeSession, Engine
from caspo_lite.errors import EngineError
from caspo_lite.sampling import Sampler
from caspo_lite.search.events import (
    BranchFinished,
    BranchPruned,
    BranchStarted,
    SearchEvent,
    StepDone,
    TokenGenerated,
)
from caspo_lite.steps import StepRule, StepSegmenter
from caspo_lite.tasks.base import Prompt

_ANSWER_LINE = re.compile(r"(?:^|\n)[^\n]*\banswer\b[^\n]*:[^\n]*\S[^\n]*\n\s*$", re.IGNORECASE)
PROMPT_SEQ = 0
ExtractFn = Callable[[str], str | None]


@dataclass(eq=False)
class Branch:
    """One path: its tokens, per-token confidences and closed steps (prefix included)."""

    id: int
    seq: int
    parent: int | None
    tokens: list[int] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    token_conf: list[float] = field(default_factory=list)
    extra_conf: list[float] = field(default_factory=list)  # a second signal (DeepConf windows)
    step_confs: list[float] = field(default_factory=list)
    step_start: int = 0  # index into tokens where the open step began
    last_step_start: int = 0  # where the last closed step began (its text: pieces[last:step_start])
    own_start: int = 0  # tokens before this index were inherited from the parent
    segmenter: StepSegmenter = field(default_factory=StepSegmenter)
    row: np.ndarray | None = None  # logits for the next token (engine view, valid until next decode)
    at_boundary: bool = False  # the last token closed a step
    path_conf: float = 1.0  # at the last closed step
    cut_text: str | None = None  # the solution with a stop string trimmed off
    stopped: bool = False  # released because the search ended, not pruned on confidence

    @property
    def text(self) -> str:
        return self.cut_text if self.cut_text is not None else "".join(self.pieces)

    @property
    def n_steps(self) -> int:
        return len(self.step_confs)


class Runner:
    """Holds the session, the scorer and the sampler for one search (see module doc)."""

    def __init__(
        self,
        engine: Engine,
        prompt: Prompt,
        extract_answer: Callable[[str], str | None],
        n_branches: int,
        sampler: Sampler,
        signal: str = "entropy",
        path_mode: str = "geomean",
        step_rule: StepRule | None = None,
        max_tokens: int = 256,
        record_all: bool = False,
        extra_signal: str | None = None,
    ) -> None:
        self.engine = engine
        self.prompt = prompt
        self.extract_answer = extract_answer
        self.sampler = sampler
        self.scorer = ConfidenceScorer(signal)
        self.extra = ConfidenceScorer(extra_signal) if extra_signal else None
        self.path_mode = path_mode
        self.rule = step_rule or StepRule()
        self.max_tokens = max_tokens
        self.record_all = record_all
        self.n_slots = n_branches
        self.session: DecodeSession | None = None
        self.prompt_row: np.ndarray | None = None
        self.free_seqs = list(range(n_branches, 0, -1))  # pop() gives 1 first
        self.live: list[Branch] = []
        self.finished: list[BranchFinished] = []
        self.pruned: list[Branch] = []
        self.n_started = 0
        self.n_tokens = 0
        self.n_decodes = 0  # batched decode calls after the prompt (one per advance with live rows)
        self.rows_decoded = 0  # rows over those calls (tokens fed back to the engine)
        self.max_rows = 0
        self.first_rows = 0  # rows of the first decode: the batch the search opened with
        self.n_inherited = 0  # tokens forks took over from their parents (decoded once, shared)
        self.prune_reasons: Counter[str] = Counter()
        self.t0 = time.perf_counter()
        self._stops = tuple(s for s in prompt.stop if s)

    # -- lifecycle -------------------------------------------------------------------------------

    def open(self) -> None:
        """Render and decode the prompt once (sequence 0)."""
        ids = self.engine.render(self.prompt)
        self.session = self.engine.session(self.n_slots + 1)
        row = self.session.prefill(ids, PROMPT_SEQ)
        self.prompt_row = np.array(row, dtype=np.float32, copy=True)  # one copy per search

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t0

    # -- branches --------------------------------------------------------------------------------

    def start(self, parent: Branch | None = None, reason: str = "root") -> tuple[Branch, BranchStarted]:
        """A new path: from the prompt (parent None) or a fork of ``parent`` (shares its cells)."""
        if self.session is None:
            raise EngineError("search session is not open")
        if not self.free_seqs:
            raise EngineError(f"no free sequence slot (session holds {self.n_slots} branches)")
        seq = self.free_seqs.pop()
        bid = self.n_started
        self.n_started += 1
        if parent is None:
            self.session.fork(PROMPT_SEQ, seq)
            b = Branch(id=bid, seq=seq, parent=None, row=self.prompt_row)
            b.segmenter = StepSegmenter(self.rule)
        else:
            self.session.fork(parent.seq, seq)
            b = Branch(
                id=bid,
                seq=seq,
                parent=parent.id,
                tokens=list(parent.tokens),
                pieces=list(parent.pieces),
                token_conf=list(parent.token_conf),
                extra_conf=list(parent.extra_conf),
                step_confs=list(parent.step_confs),
                step_start=parent.step_start,
                last_step_start=parent.last_step_start,
                own_start=len(parent.tokens),
                segmenter=StepSegmenter(self.rule, parent.segmenter.n_tokens, parent.segmenter.n_content),
                row=parent.row,
                path_conf=parent.path_conf,
            )
        if parent is not None:
            self.n_inherited += len(parent.tokens)
        self.live.append(b)
        return b, BranchStarted(branch=bid, parent=b.parent, step_index=b.n_steps, reason=reason)

    def prune(self, b: Branch, threshold: float, reason: str) -> BranchPruned:
        self._release(b)
        self.pruned.append(b)
        self.prune_reasons[reason] += 1
        return BranchPruned(branch=b.id, path_confidence=b.path_conf, threshold=threshold, reason=reason)

    def _release(self, b: Branch) -> None:
        if b in self.live:
            self.live.remove(b)
        if self.session is not None:
            self.session.free(b.seq)
        self.free_seqs.append(b.seq)
        b.row = None

    # -- the loop --------------------------------------------------------------------------------

    def advance(self) -> list[SearchEvent]:
        """One token for every live branch; returns its events (tokens, steps, finishes)."""
        events: list[SearchEvent] = []
        eos = self.engine.eos_ids
        to_decode: dict[int, int] = {}
        for b in list(self.live):
            row = b.row
            assert row is not None
            tok = self.sampler.sample(row)
            conf, logprob = self.scorer.score(row, tok)
            stats = self.scorer.stats(row, tok) if self.record_all else None
            if self.extra is not None:
                b.extra_conf.append(self.extra.score(row)[0])
            self.n_tokens += 1
            piece = "" if tok in eos else self.engine.token_text(tok)
            b.tokens.append(tok)
            b.pieces.append(piece)
            b.token_conf.append(conf)
            events.append(TokenGenerated(b.id, tok, piece, conf, logprob, stats))
            b.at_boundary = False
            stop = self._stop_reason(b, tok, piece)
            if stop:
                events.extend(self._finish(b, stop))
                continue
            if b.segmenter.push(piece):
                events.append(self._close_step(b))
                b.at_boundary = True
                if _ANSWER_LINE.search(b.text[-400:]) and self.extract_answer(b.text) is not None:
                    events.extend(self._finish(b, "answer", step_closed=True))
                    continue
            to_decode[b.seq] = tok
        if to_decode:
            assert self.session is not None
            rows = self.session.decode(to_decode)
            n = len(to_decode)
            self.n_decodes += 1
            self.rows_decoded += n
            self.max_rows = max(self.max_rows, n)
            if self.n_decodes == 1:
                self.first_rows = n
            for b in self.live:
                b.row = rows[b.seq]
        return events

    def _stop_reason(self, b: Branch, tok: int, piece: str) -> str:
        if tok in self.engine.eos_ids:
            return "eos"
        if self._stops:
            tail = "".join(b.pieces[-8:])
            for s in self._stops:
                if s in tail:
                    text = b.text
                    b.cut_text = text[: text.rfind(s)]  # trim the stop string off the solution
                    return "stop string"
        if len(b.tokens) >= self.max_tokens:
            return "max tokens"
        return ""

    def _close_step(self, b: Branch) -> StepDone:
        confs = b.token_conf[b.step_start :]
        sc = step_confidence(confs)
        text = "".join(b.pieces[b.step_start :])
        b.step_confs.append(sc)
        b.path_conf = path_confidence(b.step_confs, self.path_mode)
        ev = StepDone(b.id, b.n_steps - 1, text.strip(), sc, b.path_conf, tuple(confs))
        b.last_step_start = b.step_start
        b.step_start = len(b.tokens)
        return ev

    def _finish(self, b: Branch, reason: str, step_closed: bool = False) -> list[SearchEvent]:
        events: list[SearchEvent] = []
        if not step_closed and len(b.tokens) > b.step_start:
            own = [
                c for c, p in zip(b.token_conf[b.step_start :], b.pieces[b.step_start :], strict=False) if p
            ]
            if own or not b.step_confs:
                events.append(self._close_step(b))
        fin = BranchFinished(
            branch=b.id,
            text=b.text,
            answer=self.extract_answer(b.text),
            path_confidence=b.path_conf,
            n_tokens=len(b.tokens),
            stop_reason=reason,
            step_confidences=tuple(b.step_confs),
        )
        self._release(b)
        self.finished.append(fin)
        events.append(fin)
        return events

    def decode_counters(self) -> dict[str, float]:
        """Decode calls and rows per call so far (the batch the engine actually saw)."""
        return {
            "decode_calls": self.n_decodes,
            "rows_per_decode": self.rows_decoded / self.n_decodes if self.n_decodes else 0.0,
            "max_rows": self.max_rows,
            "first_decode_rows": self.first_rows,
        }

    def partial_answer(self, b: Branch) -> str | None:
        return self.extract_answer(b.text)
