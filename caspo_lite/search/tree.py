"""The reasoning tree as plain data, rebuilt from the search's event stream.

Textual-free on purpose: the chat screen, the history (replaying a saved stream) and the
exporters all read this one model, and tests can check it without an app. One node per
step; a forked branch hangs its first step under the step of its parent where it forked
(``BranchStarted.step_index - 1``); a step still being written is a ``live`` node that grows
with each token and is finalised by ``StepDone``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from caspo_lite.confidence import TokenStats
from caspo_lite.search.events import (
    AnswerChosen,
    BranchFinished,
    BranchPruned,
    BranchStarted,
    SearchEvent,
    StepDone,
    TokenGenerated,
)

ROOT = 0  # node id of the question (the prompt)


@dataclass
class StepNode:
    """One step of one branch (or the root, the question)."""

    id: int
    parent: int | None
    branch: int | None
    step_index: int
    tokens: list[tuple[str, float]] = field(default_factory=list)  # (text, token confidence)
    text: str = ""
    step_confidence: float | None = None  # None while the step is still being written
    path_confidence: float | None = None
    children: list[int] = field(default_factory=list)
    branches: set[int] = field(default_factory=set)  # every branch whose path runs through here
    pruned: tuple[float, float, str] | None = None  # (path confidence, threshold, reason)
    finished: tuple[str | None, float, str] | None = None  # (answer, path confidence, stop reason)
    winner: bool = False
    closed: bool = False  # a StepDone closed it (False: cut off mid-step, or still being written)
    stats: list[TokenStats] = field(default_factory=list)  # every signal per token (eval records them)
    logprobs: list[float] = field(default_factory=list)  # the chosen tokens' log-probs

    @property
    def live(self) -> bool:
        return self.step_confidence is None and self.id != ROOT

    def display_text(self) -> str:
        return self.text or "".join(t for t, _ in self.tokens)


@dataclass
class _Branch:
    parent: int | None
    start_step: int
    attach: int  # node id the branch's first step hangs from
    nodes: list[int] = field(default_factory=list)  # its own steps, in order
    live: int | None = None  # node of the step being written
    n_tokens: int = 0
    state: str = "live"  # live / pruned / finished / stopped (cancelled, or the answer came first)


class SearchTree:
    """Apply events one by one; read nodes, per-branch state and the running statistics."""

    def __init__(self, question: str = "") -> None:
        self.nodes: dict[int, StepNode] = {ROOT: StepNode(ROOT, None, None, -1, text=question)}
        self.branches: dict[int, _Branch] = {}
        self.answer: AnswerChosen | None = None
        self.finished: dict[int, BranchFinished] = {}
        self.n_tokens = 0
        self.changed: set[int] = set()  # node ids touched since the last `take_changes`
        self.cancelled = False

    # -- reading -------------------------------------------------------------------------------

    @property
    def question(self) -> str:
        return self.nodes[ROOT].text

    def take_changes(self) -> set[int]:
        changed, self.changed = self.changed, set()
        return changed

    def n_live(self) -> int:
        return sum(1 for b in self.branches.values() if b.state == "live")

    def n_pruned(self) -> int:
        return sum(1 for b in self.branches.values() if b.state == "pruned")

    def is_dimmed(self, node_id: int) -> bool:
        """A node is dimmed when every branch through it was pruned."""
        node = self.nodes[node_id]
        if not node.branches:
            return False
        return all(self.branches[b].state == "pruned" for b in node.branches if b in self.branches)

    def path_to(self, node_id: int) -> list[int]:
        """Node ids from the root down to ``node_id``."""
        path = []
        current: int | None = node_id
        while current is not None:
            path.append(current)
            current = self.nodes[current].parent
        return path[::-1]

    def branch_tip(self, branch: int) -> int:
        b = self.branches[branch]
        if b.live is not None:
            return b.live
        return b.nodes[-1] if b.nodes else b.attach

    def tokens_saved_vs_sc(self, k: int) -> int | None:
        """Estimated tokens saved against self-consistency at the same K.

        SC would decode K full paths; we estimate a full path's length by the mean length of
        the paths this search finished (None until one has finished).
        """
        if self.answer is not None and "tokens_saved_vs_sc" in self.answer.counters:
            return int(self.answer.counters["tokens_saved_vs_sc"])  # CaT's own count (see CaT.counters)
        lengths = [f.n_tokens for f in self.finished.values()]
        if not lengths:
            return None
        return round(k * (sum(lengths) / len(lengths)) - self.n_tokens)

    # -- writing -------------------------------------------------------------------------------

    def apply_all(self, events: Iterable[SearchEvent]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, event: SearchEvent) -> None:
        if isinstance(event, TokenGenerated):
            self._token(event)
        elif isinstance(event, StepDone):
            self._step(event)
        elif isinstance(event, BranchStarted):
            self._started(event)
        elif isinstance(event, BranchPruned):
            self._pruned(event)
        elif isinstance(event, BranchFinished):
            self._finished(event)
        elif isinstance(event, AnswerChosen):
            self._answer(event)

    def _find_step(self, branch: int | None, step_index: int) -> int:
        """Node of step ``step_index`` on ``branch``'s path (the root when before step 0)."""
        if step_index < 0:
            return ROOT
        while branch is not None and branch in self.branches:
            b = self.branches[branch]
            if step_index >= b.start_step:
                offset = step_index - b.start_step
                if offset < len(b.nodes):
                    return b.nodes[offset]
                return b.nodes[-1] if b.nodes else b.attach  # not written yet: its tip
            branch = b.parent  # the step lies in the prefix it shares with its parent
        return ROOT

    def _branch(self, branch: int) -> _Branch:
        """The branch record; a stream that skips BranchStarted still gets a root branch."""
        if branch not in self.branches:
            self._started(BranchStarted(branch=branch, parent=None, step_index=0, reason="implicit"))
        return self.branches[branch]

    def _started(self, ev: BranchStarted) -> None:
        attach = self._find_step(ev.parent, ev.step_index - 1) if ev.parent is not None else ROOT
        self.branches[ev.branch] = _Branch(parent=ev.parent, start_step=ev.step_index, attach=attach)
        for node_id in self.path_to(attach):
            self.nodes[node_id].branches.add(ev.branch)

    def _new_node(self, branch: int) -> int:
        b = self.branches[branch]
        parent = b.nodes[-1] if b.nodes else b.attach
        node_id = len(self.nodes)
        step_index = b.start_step + len(b.nodes)
        self.nodes[node_id] = StepNode(node_id, parent, branch, step_index, branches={branch})
        self.nodes[parent].children.append(node_id)
        b.live = node_id
        self.changed.update((node_id, parent))
        return node_id

    def _token(self, ev: TokenGenerated) -> None:
        b = self._branch(ev.branch)
        node_id = b.live if b.live is not None else self._new_node(ev.branch)
        node = self.nodes[node_id]
        node.tokens.append((ev.text, ev.confidence))
        node.logprobs.append(ev.logprob)
        if ev.stats is not None:
            node.stats.append(ev.stats)
        b.n_tokens += 1
        self.n_tokens += 1
        self.changed.add(node_id)

    def _step(self, ev: StepDone) -> None:
        b = self._branch(ev.branch)
        node_id = b.live if b.live is not None else self._new_node(ev.branch)
        node = self.nodes[node_id]
        node.text = ev.text
        if not node.tokens and ev.token_confidences:  # a stream without token events
            node.tokens = [("", c) for c in ev.token_confidences]
        node.step_confidence = ev.step_confidence
        node.path_confidence = ev.path_confidence
        node.closed = True
        b.nodes.append(node_id)
        b.live = None
        self.changed.add(node_id)

    def _close_live(self, b: _Branch) -> None:
        """A branch ended mid-step: keep what it wrote as a final step (geometric mean)."""
        if b.live is None:
            return
        node = self.nodes[b.live]
        confs = [max(c, 1e-12) for _, c in node.tokens]
        node.step_confidence = math.exp(sum(map(math.log, confs)) / len(confs)) if confs else 0.0
        b.nodes.append(b.live)
        b.live = None

    def _pruned(self, ev: BranchPruned) -> None:
        b = self._branch(ev.branch)
        self._close_live(b)
        b.state = "pruned"
        tip = b.nodes[-1] if b.nodes else b.attach
        if tip != ROOT:
            self.nodes[tip].pruned = (ev.path_confidence, ev.threshold, ev.reason)
        self.changed.update(self.path_to(tip))

    def _finished(self, ev: BranchFinished) -> None:
        b = self._branch(ev.branch)
        self._close_live(b)
        b.state = "finished"
        self.finished[ev.branch] = ev
        tip = b.nodes[-1] if b.nodes else b.attach
        if tip != ROOT:
            self.nodes[tip].finished = (ev.answer, ev.path_confidence, ev.stop_reason)
            self.changed.add(tip)

    def _answer(self, ev: AnswerChosen) -> None:
        self.answer = ev
        for b in self.branches.values():
            self._close_live(b)
            if b.state == "live":  # the search is over: nothing is still being written
                b.state = "stopped"
        if ev.branch is not None and ev.branch in self.branches:
            for node_id in self.path_to(self.branch_tip(ev.branch)):
                self.nodes[node_id].winner = True
                self.changed.add(node_id)

    def end(self, cancelled: bool = False) -> None:
        """The search is over (cancelled, failed or done): no step is still being written.

        A step cut off mid-way keeps what it wrote; a branch that was still live is "stopped".
        """
        self.cancelled = cancelled
        for b in self.branches.values():
            if b.live is not None:
                self.changed.add(b.live)
            self._close_live(b)
            if b.state == "live":
                b.state = "stopped"
                self.changed.add(b.nodes[-1] if b.nodes else b.attach)

    def winning_text(self) -> str | None:
        """The whole solution text of the winning path (None without a single winner)."""
        if self.answer is None or self.answer.branch is None:
            return None
        finished = self.finished.get(self.answer.branch)
        if finished is not None:
            return finished.text
        tip = self.branch_tip(self.answer.branch)
        return "\n".join(self.nodes[n].display_text() for n in self.path_to(tip)[1:])

    def prunes_by_reason(self) -> dict[str, int]:
        """Pruned branches per reason so far (confidence, beam, verify, stopped: ...)."""
        out: dict[str, int] = {}
        for node in self.nodes.values():
            if node.pruned is not None:
                out[node.pruned[2]] = out.get(node.pruned[2], 0) + 1
        return out

    def counter_line(self) -> str:
        """The search's counters in one short line (prunes by reason; decodes once answered)."""
        prunes = self.prunes_by_reason()
        parts = [f"pruned {', '.join(f'{r} {n}' for r, n in sorted(prunes.items()))}"] if prunes else []
        c = self.answer.counters if self.answer is not None else {}
        if "decode_calls" in c:
            parts.append(f"{c['decode_calls']} decodes × {c.get('rows_per_decode', 0):.1f} rows")
        if c.get("early_stop"):
            parts.append(f"stopped: {c['early_stop']}")
        return " · ".join(parts)
