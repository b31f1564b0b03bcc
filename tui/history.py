"""Chat history: each asked question is one JSONL line (its settings and its event stream).

Saving the events rather than the drawn tree means a reloaded conversation is rebuilt by the
same `SearchTree` code that drew it live, so the two can never disagree. The file lives in
the user data dir (`caspo_lite.paths.data_dir()`); a damaged line is skipped and logged, so
one bad write never costs the rest of the history. Trees export as JSON or Markdown.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caspo_lite.paths import atomic_write_text, data_dir
from caspo_lite.search import events as ev
from caspo_lite.search.events import AnswerChosen, SearchEvent
from caspo_lite.search.tree import ROOT, SearchTree

log = logging.getLogger(__name__)

HISTORY_FILE = "chat_history.jsonl"
FORMAT_VERSION = 1
_EVENT_TYPES = {
    cls.__name__: cls
    for cls in (
        ev.BranchStarted,
        ev.TokenGenerated,
        ev.StepDone,
        ev.BranchPruned,
        ev.BranchFinished,
        AnswerChosen,
    )
}


def event_to_dict(event: SearchEvent) -> dict[str, Any]:
    data = {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name != "stats"}
    return {
        "type": type(event).__name__,
        **{k: list(v) if isinstance(v, tuple) else v for k, v in data.items()},
    }


def event_from_dict(data: dict[str, Any]) -> SearchEvent:
    fields = dict(data)
    cls = _EVENT_TYPES[fields.pop("type")]
    for name in ("token_confidences", "step_confidences"):
        if name in fields:
            fields[name] = tuple(fields[name])
    return cls(**fields)


@dataclass
class Turn:
    """One question, the settings it ran with, and everything the search emitted."""

    question: str
    settings: dict[str, Any]
    events: list[SearchEvent]
    conversation: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created: float = field(default_factory=time.time)
    cancelled: bool = False
    error: str | None = None

    @property
    def answer(self) -> AnswerChosen | None:
        return next((e for e in reversed(self.events) if isinstance(e, AnswerChosen)), None)

    def tree(self) -> SearchTree:
        tree = SearchTree(self.question)
        tree.apply_all(self.events)
        tree.end(cancelled=self.cancelled)  # a saved search is over, however it ended
        return tree

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "conversation": self.conversation,
            "created": self.created,
            "question": self.question,
            "settings": self.settings,
            "cancelled": self.cancelled,
            "error": self.error,
            "events": [event_to_dict(e) for e in self.events],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        return cls(
            question=data["question"],
            settings=data.get("settings", {}),
            events=[event_from_dict(e) for e in data.get("events", [])],
            conversation=data["conversation"],
            created=float(data.get("created", 0.0)),
            cancelled=bool(data.get("cancelled", False)),
            error=data.get("error"),
        )


def history_path() -> Path:
    return data_dir() / HISTORY_FILE


def append_turn(turn: Turn, path: Path | None = None) -> Path:
    """Append one turn as one line (append is atomic enough for one writer: one write call)."""
    path = path or history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(turn.to_dict(), ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
    return path


def load_turns(path: Path | None = None) -> list[Turn]:
    """Every saved turn, oldest first; damaged lines are skipped with a warning in the log."""
    path = path or history_path()
    if not path.is_file():
        return []
    turns = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            turns.append(Turn.from_dict(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning("%s:%d: skipped a damaged history line (%s)", path, lineno, exc)
    return turns


def conversations(turns: list[Turn]) -> dict[str, list[Turn]]:
    """Turns grouped by conversation id, newest conversation first."""
    groups: dict[str, list[Turn]] = {}
    for turn in turns:
        groups.setdefault(turn.conversation, []).append(turn)
    return dict(sorted(groups.items(), key=lambda kv: -kv[1][-1].created))


# -- export -----------------------------------------------------------------------------------


def tree_to_dict(tree: SearchTree) -> dict[str, Any]:
    """The tree as nested JSON: each node with its text, tokens, confidences and marks."""

    def node(node_id: int) -> dict[str, Any]:
        n = tree.nodes[node_id]
        out: dict[str, Any] = {
            "id": n.id,
            "branch": n.branch,
            "step_index": n.step_index,
            "text": n.display_text(),
            "step_confidence": n.step_confidence,
            "path_confidence": n.path_confidence,
            "tokens": [{"text": t, "confidence": c} for t, c in n.tokens],
            "winner": n.winner,
        }
        if n.pruned:
            out["pruned"] = dict(zip(("path_confidence", "threshold", "reason"), n.pruned, strict=True))
        if n.finished:
            out["finished"] = dict(zip(("answer", "path_confidence", "stop_reason"), n.finished, strict=True))
        out["children"] = [node(c) for c in n.children]
        return out

    answer = tree.answer
    return {
        "question": tree.question,
        "answer": dataclasses.asdict(answer) if answer else None,
        "n_tokens": tree.n_tokens,
        "tree": node(ROOT),
    }


def _fmt(conf: float | None) -> str:
    return "…" if conf is None else f"{conf:.2f}"


def tree_to_markdown(tree: SearchTree) -> str:
    """A nested Markdown list: one bullet per step, confidence first, marks after."""
    lines = [f"# {' '.join(tree.question.split()) or 'Question'}", ""]
    if tree.answer is not None:
        a = tree.answer
        lines += [
            f"**Answer:** {a.answer} (confidence {a.confidence:.2f}, {a.strategy}, {a.n_tokens} tokens)",
            "",
        ]

    def walk(node_id: int, depth: int) -> None:
        n = tree.nodes[node_id]
        text = " ".join(n.display_text().split()) or "(empty)"
        marks = []
        if n.winner:
            marks.append("**winner**")
        if n.pruned:
            marks.append(f"pruned at {n.pruned[0]:.2f} < {n.pruned[1]:.2f} ({n.pruned[2]})")
        if n.finished:
            marks.append(f"finished: answer {n.finished[0]} ({n.finished[2]})")
        tail = f" — {'; '.join(marks)}" if marks else ""
        code = f"`` {text} ``" if "`" in text else f"`{text}`"
        lines.append(f"{'  ' * depth}- [{_fmt(n.step_confidence)}] b{n.branch} {code}{tail}")
        for child in n.children:
            walk(child, depth + 1)

    for child in tree.nodes[ROOT].children:
        walk(child, 0)
    return "\n".join(lines) + "\n"


def export_tree(tree: SearchTree, stem: str, folder: Path | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``folder`` (default: data dir / exports)."""
    folder = folder or data_dir() / "exports"
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    atomic_write_text(json_path, json.dumps(tree_to_dict(tree), indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(md_path, tree_to_markdown(tree))
    return json_path, md_path
