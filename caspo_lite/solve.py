"""Library-level solving: one question, a batch of task problems, and the README demo.

The CLI's `solve` and `demo` commands are thin wrappers over these functions. The helpers at
the bottom return data only: the tree as nodes, a counters line, plain dicts for ``--json``;
`caspo_lite.render` draws them for the terminal.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from caspo_lite.answer_confidence import answer_confidence
from caspo_lite.config import ConfidenceSection, SearchSection, StepsSection
from caspo_lite.engines.base import Engine
from caspo_lite.errors import ConfigError
from caspo_lite.search import SearchResult, get_strategy, run_search
from caspo_lite.search.events import BranchFinished, BranchPruned, BranchStarted, SearchEvent, StepDone
from caspo_lite.search.tree import SearchTree
from caspo_lite.tasks import get_task
from caspo_lite.tasks.answers import extract_numeric_answer
from caspo_lite.tasks.base import Problem, Prompt
from caspo_lite.tasks.common import FEWSHOT_EXAMPLES, FEWSHOT_STOP, fewshot_text

log = logging.getLogger(__name__)
DEMO_STRATEGIES = ("greedy", "sc", "cat")
_BARE_SUM = re.compile(r"^(what is\s+)?[\d\s+\-*/().x×÷=]+\??$", re.IGNORECASE)


@dataclass
class Solved:
    """One solved problem: the search result, plus the gold answer when there is one."""

    question: str
    result: SearchResult
    gold: str | None = None
    correct: bool | None = None
    problem_id: str = ""
    shown: Any = None  # AnswerConfidence (caspo_lite.answer_confidence) once `with_confidence` ran


def with_confidence(solved: Solved, calibration: Any, abstain_below: float | None = None) -> Solved:
    """Attach what the user should read as the answer's confidence (calibrated, or labelled raw)."""
    solved.shown = answer_confidence(solved.result, calibration, abstain_below)
    return solved


@dataclass
class BatchSummary:
    strategy: str
    task: str
    rows: list[Solved] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def accuracy(self) -> float:
        return sum(bool(r.correct) for r in self.rows) / len(self.rows) if self.rows else 0.0

    @property
    def n_tokens(self) -> int:
        return sum(r.result.n_tokens for r in self.rows)

    @property
    def n_pruned(self) -> int:
        return sum(r.result.n_pruned for r in self.rows)

    @property
    def n_branches(self) -> int:
        return sum(r.result.n_branches for r in self.rows)


def question_prompt(
    question: str, task_name: str | None = None, task_path: Any = None
) -> tuple[Prompt, Callable[[str], str | None], Any]:
    """(prompt, extract_answer, task) for a free question.

    Without a task the question gets the word-problem few-shot completion prompt (two worked
    examples, ``Answer: <number>`` last line): small models follow it far better than a chat
    instruction (docs/design.md §2.5, measured on SmolLM2-135M).
    """
    if not question or not question.strip():
        raise ConfigError(
            'empty question: pass the problem text, e.g. caspo-lite solve "What is 12 + 5 - 3?"'
        )

    if task_name is None and _BARE_SUM.match(question.strip()):
        task_name = "arith"  # a bare sum: the arith few-shot prompt ("Step k: a op b = c") fits it best
    if task_name:
        task = get_task(task_name, path=str(task_path) if task_path else None)
        return task.prompt(Problem("question", question.strip(), "")), task.extract_answer, task
    shots = [(q, "\n".join([*steps, f"Answer: {a}"])) for q, steps, a in FEWSHOT_EXAMPLES]
    return Prompt(text=fewshot_text(shots, question.strip()), stop=FEWSHOT_STOP), extract_numeric_answer, None


def solve_question(
    engine: Engine,
    question: str,
    strategy: str = "cat",
    search: SearchSection | None = None,
    confidence: ConfidenceSection | None = None,
    steps: StepsSection | None = None,
    task_name: str | None = None,
    on_event: Callable[[SearchEvent], None] | None = None,
    task_path: Any = None,
) -> Solved:
    """Solve one free question with the named strategy."""
    strat = get_strategy(strategy, search, confidence, steps)
    prompt, extract, _ = question_prompt(question, task_name, task_path)
    return Solved(question.strip(), run_search(engine, prompt, strat, extract, on_event=on_event))


def solve_batch(
    engine: Engine,
    task_name: str,
    n: int = 20,
    strategy: str = "cat",
    search: SearchSection | None = None,
    confidence: ConfidenceSection | None = None,
    steps: StepsSection | None = None,
    seed: int = 0,
    split: str = "test",
    problems: Sequence[Problem] | None = None,
    on_solved: Callable[[Solved], None] | None = None,
    path: Any = None,
    **task_options: Any,
) -> BatchSummary:
    """Solve ``n`` problems of a task and grade them with the task's own grader."""
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    task = get_task(task_name, path=str(path) if path else None, **task_options)
    strat = get_strategy(strategy, search, confidence, steps)
    items = list(problems) if problems is not None else task.load(n=n, seed=seed, split=split)
    summary = BatchSummary(strategy, task_name)
    t0 = time.perf_counter()
    for problem in items[:n]:
        result = run_search(engine, task.prompt(problem), strat, task.extract_answer)
        row = Solved(
            problem.question, result, problem.answer, task.grade(result.answer, problem.answer), problem.id
        )
        summary.rows.append(row)
        if on_solved is not None:
            on_solved(row)
    summary.elapsed_s = time.perf_counter() - t0
    return summary


def run_demo(
    engine: Engine,
    n: int = 6,
    strategies: Sequence[str] = DEMO_STRATEGIES,
    search: SearchSection | None = None,
    seed: int = 0,
    level: str = "default",
    on_solved: Callable[[str, Solved], None] | None = None,
) -> list[BatchSummary]:
    """CaT against greedy and self-consistency on the same ``n`` arith problems and budget."""
    base = search or SearchSection(
        k=6, beam_width=4, branch_factor=2, max_tokens=96, temperature=0.7, seed=seed
    )

    problems = get_task("arith", level=level).load(n=n, seed=seed, split="test")
    out = []
    for name in strategies:
        cb = (lambda row, name=name: on_solved(name, row)) if on_solved else None
        out.append(
            solve_batch(
                engine,
                "arith",
                n,
                name,
                replace(base, strategy=name),
                problems=problems,
                on_solved=cb,
                level=level,
            )
        )
    return out


# -- rendering -----------------------------------------------------------------------------------


def result_dict(solved: Solved) -> dict[str, Any]:
    """A JSON-ready view of one solve: the answer, confidence, paths and counters."""
    r = solved.result
    shown = solved.shown
    extra: dict[str, Any] = {}
    if shown is not None:
        # "answer" is null when the search abstained; the best guess stays under its own key
        extra = {"answer": None if shown.abstained else r.answer, "not_sure": shown.abstained}
        extra["best_guess"] = r.answer
        extra["answer_confidence"] = shown.to_json()
    return {
        "question": solved.question,
        "answer": r.answer,
        "confidence": round(r.confidence, 4),
        **extra,
        "strategy": r.strategy,
        "reason": r.reason,
        "gold": solved.gold,
        "correct": solved.correct,
        "n_tokens": r.n_tokens,
        "n_branches": r.n_branches,
        "n_pruned": r.n_pruned,
        "elapsed_s": round(r.elapsed_s, 3),
        "tokens_per_s": round(r.tokens_per_s, 1),
        "counters": _answer_counters(r),
        "paths": [
            {
                "branch": p.branch,
                "answer": p.answer,
                "path_confidence": round(p.path_confidence, 4),
                "n_tokens": p.n_tokens,
                "stop_reason": p.stop_reason,
                "step_confidences": [round(c, 4) for c in p.step_confidences],
                "text": p.text,
            }
            for p in r.paths
        ],
    }


def tree_nodes(events: Sequence[SearchEvent]) -> dict[int, dict[str, Any]]:
    """Rebuild the reasoning tree from the event stream: branch -> parent, steps, fate."""
    nodes: dict[int, dict[str, Any]] = {}
    for ev in events:
        if isinstance(ev, BranchStarted):
            nodes[ev.branch] = {"parent": ev.parent, "from_step": ev.step_index, "steps": [], "fate": "live"}
        elif isinstance(ev, StepDone) and ev.branch in nodes:
            nodes[ev.branch]["steps"].append((ev.text, ev.step_confidence))
        elif isinstance(ev, BranchPruned) and ev.branch in nodes:
            nodes[ev.branch]["fate"] = f"pruned ({ev.reason}, path {ev.path_confidence:.2f})"
        elif isinstance(ev, BranchFinished) and ev.branch in nodes:
            nodes[ev.branch]["fate"] = f"answer {ev.answer} (path {ev.path_confidence:.2f}, {ev.stop_reason})"
    return nodes


def _answer_counters(r: SearchResult) -> dict[str, Any]:
    final = r.events[-1] if r.events else None
    return dict(getattr(final, "counters", {}) or {})


def search_counters_line(r: SearchResult) -> str:
    """Counters of one search, from its events through the library's tree model."""
    tree = SearchTree()
    tree.apply_all(r.events)
    parts = [tree.counter_line()]
    c = tree.answer.counters if tree.answer is not None else {}
    if "tokens_saved_vs_sc" in c:
        parts.append(
            f"~{c['tokens_saved_vs_sc']} tokens saved vs sc (shared {c.get('tokens_shared', 0)} exact)"
        )
    if "time_to_answer_s" in c:
        parts.append(f"answer after {c['time_to_answer_s']:.2f}s")
    return " · ".join(p for p in parts if p)


def summary_dict(s: BatchSummary) -> dict[str, Any]:
    return {
        "strategy": s.strategy,
        "task": s.task,
        "accuracy": s.accuracy,
        "n": len(s.rows),
        "n_tokens": s.n_tokens,
        "n_branches": s.n_branches,
        "n_pruned": s.n_pruned,
        "elapsed_s": round(s.elapsed_s, 2),
        "rows": [
            {
                "id": r.problem_id,
                "answer": r.result.answer,
                "gold": r.gold,
                "correct": r.correct,
                **({"answer_confidence": r.shown.to_json()} if r.shown is not None else {}),
            }
            for r in s.rows
        ],
    }
