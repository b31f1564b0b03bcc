"""Step labels: correct / wrong / unknown for each step of a solution (docs/design.md §1.3).

`verify` (the default for maths word problems) checks every ``a op b = c`` expression a
step writes, exactly, with `fractions.Fraction`:

- operators ``+ - * / ^ x × ÷`` and ``−``; parentheses; chains ``a + b = c + d = e`` (each
  ``=`` whose sides include an operator is one check); ``≈`` is an ``=`` that may round.
- numbers with thousands commas, ``$``, decimals; ``3/4`` is a division. ``%`` is read both
  as /100 and as a plain number and a check passes if either reading holds, because people
  write "20% * 50 = 10" and "10 / 50 * 100 = 20%" alike.
- unit words after a number are skipped ("5 apples + 3 apples = 8 apples",
  "2 hours * 60 minutes/hour = 120 minutes"); other words end the expression.
- algebra is skipped: a single letter next to an operator or a digit ("2x + 3 = 11") makes
  the expression unknown rather than wrong.

Rounding rule: a displayed number with d decimals matches a value v when |v - c| < 10^-d
(so 100/3 = 33.33 and 2/3 = 0.67 pass, 10 / 4 = 2.6 fails); an integer shown for a
non-integer value passes only when the step says it rounds ("round", "about",
"approximately", "≈", ...) and |v - c| < 1.

Given the problem (`VerifyLabeler`, `explain_solution`), verify also knows what the problem
allows, one check per error it catches, each verdict naming its `reason` (`REASONS`):

- `arithmetic_error`: an '=' that does not hold;
- `unlicensed_operand`: a number that is neither a quantity of the question (digits, number
  words, percentages: `caspo_lite.quantities`), nor a result of an earlier step, nor a task
  constant (the task's ``constants``): WRONG where the gold structure is known, else UNKNOWN;
- `operation_off_path`: where the task knows the gold structure (`gold_structure`: arith's
  exact chain, GSM8K's annotations), a calculation on no path to the gold answer
  (`caspo_lite.structure`: any order of the terms of a +/- chain is on the path);
- `final_answer_wrong`: the extracted answer disagrees with gold.

Only steps up to and including the first wrong one are used downstream: later steps are
conditioned on an error (`cut_at_first_wrong`). `rollout` and `judge` labelers need an
engine: they live in `caspo_lite.model_labelers`; `caspo_lite.labeler_registry` names them all.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

from caspo_lite.numbers import format_number, parse_number
from caspo_lite.quantities import UNIT_CONSTANTS, question_quantities
from caspo_lite.structure import Form, GoldStructure, build_structure, tree_forms
from caspo_lite.structure import value as form_value
from caspo_lite.tasks.base import Problem, Task


class Label(enum.StrEnum):
    CORRECT = "correct"
    WRONG = "wrong"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Check:
    """One checked '=' of a step: the two sides as written and whether they agree."""

    left: str
    right: str
    ok: bool


_NUM = r"(?:\d{1,3}(?:,\d{3})+(?![\d,])|\d{1,3}(?: \d{3})+(?![\d,\-])|\d+)(?:\.\d+)?"
_TOKEN = re.compile(
    r"(?P<time>\b\d{1,2}:\d{2}\b)"
    r"|(?P<mixed>(?:\$\s?)?(?P<whole>\d+)\s+(?:and\s+)?(?P<mnum>\d+)/(?P<mden>\d+)(?![\d.]))"
    rf"|(?P<frac>(?:\$\s?)?(?P<fnum>{_NUM})/(?P<fden>{_NUM})(?![\d.]*\d))"
    rf"|(?P<num>(?:\$\s?)?(?:{_NUM}|\.\d+)(?![\d.]*\d))(?P<pct>\s?%)?"
    r"|(?P<eq>=|≈|~=)"
    r"|(?P<op>\*\*|[+\-−–*×÷/^])"
    r"|(?P<lp>\()|(?P<rp>\))"
    r"|(?P<word>[A-Za-z][A-Za-z'’]*(?:-[A-Za-z]+)*)"
    r"|(?P<other>\S)"
)
_ROUNDING = re.compile(r"(?i)\b(?:round\w*|approx\w*|about|nearly|almost|roughly|estimat\w*)\b|≈|~")
_CLAUSE_END = re.compile(r"[.,;:?!](?!\d)|\n")
_HAS_EQ = re.compile(r"=|≈")
_OP_NORMAL = {"−": "-", "–": "-", "×": "*", "x": "*", "X": "*", "÷": "/", "**": "^", "of": "*"}
_NOT_VARIABLES = {"a", "A", "I"}
# Words that join clauses never belong to a unit phrase ("9 because - 18/-2 = 9").
_CONNECTIVES = frozenset(
    [
        "because",
        "so",
        "and",
        "or",
        "then",
        "which",
        "that",
        "is",
        "are",
        "was",
        "were",
        "if",
        "since",
        "but",
        "thus",
        "hence",
        "therefore",
        "gives",
        "makes",
        "means",
        "equals",
        "leaves",
        "becomes",
    ]
)


@dataclass(slots=True)
class _Tok:
    kind: str  # num, op, lp, rp, eq, word, var, other
    text: str
    start: int
    end: int
    value: Fraction | None = None
    pct: bool = False
    decimals: int = 0
    expr: bool = False  # a tight fraction "48/2": a number that is also a calculation
    unit_eq: bool = False  # a number whose unit words run up to "=" ("2 kg = 2 * 1000")
    parts: tuple[Fraction, Fraction] | None = None  # numerator and denominator of a tight fraction


def _number(text: str) -> Fraction:
    return Fraction(text.replace("$", "").replace(",", "").replace(" ", ""))


def _make_tok(m: re.Match[str]) -> _Tok:
    group = m.lastgroup or "other"
    kind = {"pct": "num", "mden": "num", "fden": "num", "time": "var"}.get(group, group)
    tok = _Tok(kind, m.group(0), m.start(), m.end())
    if m.group("mixed"):
        tok.kind, tok.value = (
            "num",
            int(m.group("whole")) + Fraction(int(m.group("mnum")), int(m.group("mden")) or 1),
        )
    elif m.group("frac"):
        den = _number(m.group("fden"))
        tok.kind, tok.expr = ("num", True) if den else ("var", False)
        tok.value = _number(m.group("fnum")) / den if den else None
        tok.parts = (_number(m.group("fnum")), den) if den else None
    elif m.group("num"):
        digits = m.group("num").replace("$", "").replace(",", "").replace(" ", "")
        tok.kind, tok.value, tok.pct = "num", Fraction(digits), bool(m.group("pct"))
        tok.decimals = len(digits.split(".")[1]) if "." in digits else 0
    return tok


def _tokenize(text: str, start: int = 0, end: int | None = None) -> list[_Tok]:
    toks: list[_Tok] = []
    for m in _TOKEN.finditer(text, start, len(text) if end is None else end):
        tok = _make_tok(m)
        if tok.kind == "lp" and toks and toks[-1].kind in ("num", "rp") and toks[-1].end == tok.start:
            toks.append(_Tok("op", "*", tok.start, tok.start))  # implicit product "4(7)"
        toks.append(tok)
    for i, tok in enumerate(toks):
        prev = toks[i - 1] if i else None
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if tok.kind != "word":
            continue
        if tok.text == "of" and prev and prev.pct and nxt and nxt.kind == "num":
            tok.kind = "op"  # "10% of 150"
            continue
        if len(tok.text) != 1:
            continue
        glued = (prev is not None and prev.kind in ("num", "rp") and prev.end == tok.start) or (
            nxt is not None and nxt.kind == "num" and nxt.start == tok.end
        )
        if (
            tok.text in "xX"
            and prev
            and nxt
            and prev.kind in ("num", "rp", "word")
            and nxt.kind in ("num", "lp")
        ):
            tok.kind = "op"  # "0.2 x 50", "3x4"
        elif glued or (
            tok.text not in _NOT_VARIABLES
            and ((prev and prev.kind in ("op", "eq")) or (nxt and nxt.kind in ("op", "eq")))
        ):
            tok.kind = "var"
    return toks


def _runs(toks: list[_Tok], at_start: bool = True) -> list[tuple[list[_Tok], str]]:
    """Maximal stretches of num/op/paren/eq tokens (unit words after a number skipped).

    Each run comes with what precedes it: "start" (the text's start: only there may it open
    with a sign), "word", or "other". A variable ends a run and starts the next, so
    expressions touching it are not checked.
    """
    runs: list[tuple[list[_Tok], str]] = []
    current: list[_Tok] = []
    before = "start" if at_start else "other"
    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok.kind in ("num", "op", "lp", "rp", "eq"):
            current.append(tok)
            i += 1
            continue
        if tok.kind == "word" and current and current[-1].kind in ("num", "rp"):
            j = i  # a unit phrase: words, joined by "/" ("minutes/hour")
            while j < len(toks) and (
                (toks[j].kind == "word" and toks[j].text.lower() not in _CONNECTIVES)
                or (toks[j].text == "/" and j + 1 < len(toks) and toks[j + 1].kind == "word")
            ):
                j += 1
            if j < len(toks) and toks[j].kind in ("op", "eq", "rp") and j - i <= 6:
                current[-1].unit_eq = toks[j].kind == "eq"
                i = j
                continue
        if tok.kind == "var":
            current.append(tok)
        runs.append((current, before))
        current = [tok] if tok.kind == "var" else []
        before = "word" if tok.kind == "word" else "other"
        i += 1
    runs.append((current, before))
    return [(r, b) for r, b in runs if any(t.kind == "eq" for t in r)]


class _Parser:
    """Recursive descent over one segment; `pct_scale` is 1/100 or 1 for '%' numbers."""

    def __init__(self, toks: Sequence[_Tok], pct_scale: Fraction) -> None:
        self.toks, self.i, self.pct_scale = toks, 0, pct_scale

    def parse(self) -> Fraction | None:
        try:
            value = self._sum()
        except (ZeroDivisionError, OverflowError, ValueError):
            return None
        return value if value is not None and self.i == len(self.toks) else None

    def _peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _op(self, ops: str) -> str | None:
        tok = self._peek()
        if tok is not None and tok.kind == "op" and _OP_NORMAL.get(tok.text, tok.text) in ops:
            self.i += 1
            return _OP_NORMAL.get(tok.text, tok.text)
        return None

    def _sum(self) -> Fraction | None:
        value = self._product()
        while value is not None and (op := self._op("+-")):
            rhs = self._product()
            value = None if rhs is None else value + rhs if op == "+" else value - rhs
        return value

    def _product(self) -> Fraction | None:
        value = self._power()
        while value is not None and (op := self._op("*/")):
            rhs = self._power()
            value = None if rhs is None else value * rhs if op == "*" else value / rhs
        return value

    def _power(self) -> Fraction | None:
        base = self._unary()
        if base is not None and self._op("^"):
            exp = self._unary()
            if exp is None or exp.denominator != 1 or abs(exp) > 64:
                return None
            return base**exp.numerator
        return base

    def _unary(self) -> Fraction | None:
        if self._op("-"):
            value = self._unary()
            return None if value is None else -value
        tok = self._peek()
        if tok is None:
            return None
        self.i += 1
        if tok.kind == "num" and tok.value is not None:
            return tok.value * self.pct_scale if tok.pct else tok.value
        if tok.kind == "lp":
            value = self._sum()
            closing = self._peek()
            if value is None or closing is None or closing.kind != "rp":
                return None
            self.i += 1
            return value
        return None


def _value(seg: Sequence[_Tok], scale: Fraction) -> Fraction | None:
    return _Parser(seg, scale).parse() if seg else None


_SCALES = (Fraction(1), Fraction(1, 100))  # "%" read as a plain number, and as /100


class _TreeParser(_Parser):
    """The same grammar as `_Parser`, building an expression tree instead of a value.

    Trees are ``("num", Fraction)``, ``("neg", tree)`` and ``(op, left, right)`` (the shape
    `caspo_lite.structure.tree_forms` reads); a tight fraction "48/2" is the division it is.
    """

    def parse_tree(self) -> Any:
        try:
            tree = self._sum()
        except (ZeroDivisionError, OverflowError, ValueError):
            return None
        return tree if tree is not None and self.i == len(self.toks) else None

    def _sum(self) -> Any:
        tree = self._product()
        while tree is not None and (op := self._op("+-")):
            rhs = self._product()
            tree = None if rhs is None else (op, tree, rhs)
        return tree

    def _product(self) -> Any:
        tree = self._power()
        while tree is not None and (op := self._op("*/")):
            rhs = self._power()
            tree = None if rhs is None else (op, tree, rhs)
        return tree

    def _power(self) -> Any:
        base = self._unary()
        if base is not None and self._op("^"):
            exp = self._unary()
            if exp is None or exp[0] != "num" or exp[1].denominator != 1 or not 0 < exp[1] <= 8:
                return None
            tree = base
            for _ in range(int(exp[1]) - 1):
                tree = ("*", tree, base)
            return tree
        return base

    def _unary(self) -> Any:
        if self._op("-"):
            tree = self._unary()
            return None if tree is None else ("neg", tree)
        tok = self._peek()
        if tok is None:
            return None
        self.i += 1
        if tok.kind == "num" and tok.value is not None:
            if tok.parts is not None:
                return ("/", ("num", tok.parts[0]), ("num", tok.parts[1]))
            return ("num", tok.value * self.pct_scale if tok.pct else tok.value)
        if tok.kind == "lp":
            tree = self._sum()
            closing = self._peek()
            if tree is None or closing is None or closing.kind != "rp":
                return None
            self.i += 1
            return tree
        return None


def side_tree(side: _Side, reading: int) -> Any:
    """The expression tree of one side of an '=' under a reading of '%'."""
    return _TreeParser(side.toks, _SCALES[reading]).parse_tree()


@dataclass(slots=True)
class _Side:
    """One side of an '=': its tokens and its value under each reading of '%'."""

    toks: list[_Tok]
    values: tuple[Fraction | None, ...]

    @property
    def is_result(self) -> bool:
        """A displayed number, perhaps negative: what a calculation gives, not a calculation."""
        toks = self.toks[1:] if len(self.toks) == 2 and self.toks[0].text in "-−–" else self.toks
        return len(toks) == 1 and toks[0].kind == "num" and not toks[0].expr

    @property
    def is_fraction(self) -> bool:
        """A plain fraction, "1/2" or "1 / 2": a result when a calculation stands on the left."""
        kinds = [t.kind for t in self.toks]
        if kinds == ["num"]:
            return self.toks[0].expr
        return kinds == ["num", "op", "num"] and _OP_NORMAL.get(self.toks[1].text, self.toks[1].text) == "/"

    @property
    def shown(self) -> _Tok | None:
        """The side's single displayed number (the result someone wrote), if that is all it is."""
        tok = self.toks[0]
        return tok if len(self.toks) == 1 and tok.kind == "num" and not tok.expr else None


def _trim(seg: list[_Tok], first: bool, last: bool, at_start: bool) -> _Side | None:
    """A segment made parseable by dropping unbalanced outer parentheses, else None.

    A first segment that opens with an operator continues words we cannot read
    ("total / 3 = ..."), so it is not checked (a sign is allowed at the very start).
    """
    if not seg or any(t.kind == "var" for t in seg):
        return None
    if first and seg[0].kind == "op" and not (at_start and seg[0].text in "-−–"):
        return None
    depth = sum(t.kind == "lp" for t in seg) - sum(t.kind == "rp" for t in seg)
    while first and depth > 0 and seg and seg[0].kind == "lp":
        seg, depth = seg[1:], depth - 1
    while last and depth < 0 and seg and seg[-1].kind == "rp":
        seg, depth = seg[:-1], depth + 1
    if depth > 0:  # "$100+($100*(10/100) = $110": close what was left open
        seg = seg + [_Tok("rp", ")", seg[-1].end, seg[-1].end)] * depth
    plain = _value(seg, _SCALES[0])
    if plain is None:
        return None
    percent = _value(seg, _SCALES[1]) if any(t.pct for t in seg) else plain
    return _Side(seg, (plain, percent))


def _agree(left: _Side, right: _Side, reading: int, rounding: bool) -> bool:
    a, b = left.values[reading], right.values[reading]
    if a is None or b is None:
        return False
    if a == b:
        return True
    scale = _SCALES[reading]
    for side, other in ((right, a), (left, b)):
        tok = side.shown
        if tok is None or tok.value is None:
            continue
        unit = scale if tok.pct else Fraction(1)
        value = tok.value * unit
        if tok.decimals and abs(other - value) < unit / 10**tok.decimals:
            return True
        if not tok.decimals and rounding and abs(other - value) < unit:
            return True
    return False


def _clauses(text: str) -> list[tuple[int, int]]:
    """Spans between punctuation that is not part of a number, keeping those with an '='.

    Punctuation ends every expression anyway, so only these spans need tokenizing: it makes
    the verifier about three times faster on GSM8K.
    """
    cuts = [0, *(m.end() for m in _CLAUSE_END.finditer(text)), len(text)]
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if _HAS_EQ.search(text, a, b)]


@dataclass(frozen=True, slots=True)
class Equation:
    """One checked '=' with what the problem-aware checks need: both sides' tokens, and the
    readings of '%' (0: plain number, 1: /100) under which the two sides agree."""

    check: Check
    left: _Side
    right: _Side
    readings: tuple[int, ...]

    def computations(self) -> list[_Side]:
        """The sides that calculate (hold an operator or a fraction), not a bare result ("-3")."""
        sides = [side for side in (self.left, self.right) if not side.is_result]
        if len(sides) == 2 and self.right.is_fraction:
            return [self.left]  # "30/60 = 1/2": the right side is the result, written as a fraction
        return sides

    def results(self) -> set[Fraction]:
        """The values this '=' establishes: each side's exact value and the displayed number."""
        out: set[Fraction] = set()
        for r in self.readings or (0,):
            for side in (self.left, self.right):
                v = side.values[r]
                if v is not None:
                    out.add(v)
        return out


def check_step(text: str) -> list[Check]:
    """Every checkable '=' in a step, evaluated exactly (see the module docstring)."""
    return [eq.check for eq in step_equations(text)]


@functools.lru_cache(maxsize=1 << 16)
def step_equations(text: str) -> tuple[Equation, ...]:
    """The checks of a step with their sides (cached: labelers see the same step many times)."""
    checks: list[Equation] = []
    rounding = bool(_ROUNDING.search(text))
    runs = [
        run
        for a, b in _clauses(text)
        for run in _runs(_tokenize(text, a, b), at_start=a == 0 or text[a - 1] == ":")
    ]
    for run, before in runs:
        segments: list[list[_Tok]] = [[]]
        approx: list[bool] = []
        for tok in run:
            if tok.kind == "eq":
                segments.append([])
                approx.append(tok.text != "=")
            else:
                segments[-1].append(tok)
        last = len(segments) - 1
        trimmed = [_trim(seg, i == 0, i == last, before == "start") for i, seg in enumerate(segments)]
        if before == "word" and trimmed[0] is not None and trimmed[0].shown is not None:
            trimmed[0] = None  # a label or a stray number, "Week 2 = 35 + 35", not a result
        for k in range(last):
            left, right = trimmed[k], trimmed[k + 1]
            if (
                left is None
                or right is None
                or not any(t.kind == "op" or t.expr for t in (*left.toks, *right.toks))
            ):
                continue
            if any(len(side.toks) == 1 and side.toks[0].unit_eq for side in (left, right)):
                continue  # "2 kg = 2 * 1000 g" converts units; it is not arithmetic
            may_round = rounding or approx[k]
            readings = tuple(r for r in (0, 1) if _agree(left, right, r, may_round))
            check = Check(_span(text, left.toks), _span(text, right.toks), bool(readings))
            checks.append(Equation(check, left, right, readings))
    return tuple(checks)


def _span(text: str, toks: Sequence[_Tok]) -> str:
    return text[toks[0].start : toks[-1].end].strip()


def verify_step(text: str) -> Label:
    """WRONG if any check fails, CORRECT if at least one passes and none fail, else UNKNOWN."""
    checks = check_step(text)
    if not checks:
        return Label.UNKNOWN
    return Label.CORRECT if all(c.ok for c in checks) else Label.WRONG


def label_solution(
    steps: Sequence[str], gold_answer: str, task: Task, problem: Problem | None = None
) -> list[Label]:
    """Labels for every step: the step checks, then the final answer against gold.

    With `problem` (what `VerifyLabeler` passes) the steps are also checked against the
    problem: licensed operands and, where the task knows the gold structure, a path to the
    gold answer (`explain_solution`). Without it only the arithmetic is checked.

    The last non-empty step is the final-answer step: it is WRONG when the task's extracted
    answer disagrees with gold (or is missing). Steps with nothing checkable are UNKNOWN,
    unless the whole solution is right (no wrong step, right answer): then CORRECT.
    """
    if problem is not None:
        return [v.label for v in explain_solution(problem, steps, task, gold_answer)]
    labels = [verify_step(s) for s in steps]
    if not steps:
        return labels
    answer_ok = task.grade(task.extract_answer("\n".join(steps)), gold_answer)
    final = max((i for i, s in enumerate(steps) if s.strip()), default=len(steps) - 1)
    if not answer_ok:
        labels[final] = Label.WRONG
    if answer_ok and Label.WRONG not in labels:
        labels = [Label.CORRECT if label is Label.UNKNOWN else label for label in labels]
    return labels


# --- problem-aware checks -----------------------------------------------------------------------

REASONS = {
    "arithmetic": "an '=' that does not hold",
    "operand": "a number that is not in the question, an earlier result or a task constant",
    "operation": "a calculation on no path to the gold answer (an operation the problem lacks)",
    "final_answer": "the final answer disagrees with gold",
    "checked": "every '=' holds and uses licensed numbers on a path to the answer",
    "no_check": "nothing to check (a restatement or words)",
    "solution_right": "nothing to check, and the whole solution is right",
}


@dataclass(frozen=True, slots=True)
class StepVerdict:
    """A step's label with the check that decided it (`REASONS`) and what it saw."""

    label: Label
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class ProblemContext:
    """What the problem licenses: its quantities, the task's constants, the gold structure."""

    quantities: frozenset[Fraction]
    constants: frozenset[Fraction]
    structure: GoldStructure | None


@dataclass
class _Ledger:
    """What earlier steps established: results by value (with their forms) and stated numbers."""

    results: dict[Fraction, list[Form]] = field(default_factory=dict)
    stated: set[Fraction] = field(default_factory=set)

    def add_result(self, v: Fraction, forms: Sequence[Form]) -> None:
        known = self.results.setdefault(v, [])
        known += [f for f in forms if f not in known][: max(0, 8 - len(known))]


def task_constants(task: Task) -> frozenset[Fraction]:
    raw = getattr(task, "constants", UNIT_CONSTANTS)
    return frozenset(Fraction(str(c)) for c in raw)


def problem_context(problem: Problem, task: Task) -> ProblemContext:
    structure = gold_structure(problem, task)
    return ProblemContext(question_quantities(problem.question), task_constants(task), structure)


def _calculations(texts: Sequence[str]) -> list[tuple[Any, Fraction]]:
    """(expression tree, result) of every calculation in `texts` ('a op b = c' lines)."""
    out = []
    for text in texts:
        for eq in step_equations(text):
            reading = eq.readings[0] if eq.readings else 0
            for side in eq.computations():
                other = eq.right if side is eq.left else eq.left
                tree = side_tree(side, reading)
                result = other.values[reading] if other.values[reading] is not None else side.values[reading]
                if tree is not None and result is not None:
                    out.append((tree, result))
    return out


def gold_structure(problem: Problem, task: Task) -> GoldStructure | None:
    """The gold solution's calculations as forms, when the task or the problem knows them.

    From the task's ``gold_calculations(problem)`` (arith: the exact chain), else the
    problem's ``meta["calculations"]`` (GSM8K annotations, `structure.annotations`), else its
    gold steps. Calculations
    that do not reach the gold answer are not a structure (None): a partial gold solution
    would call every other route wrong.
    """
    hook = getattr(task, "gold_calculations", None)
    calcs = hook(problem) if callable(hook) else None
    exact = calcs is not None and bool(getattr(task, "exact_structure", False))
    if calcs is None:
        calcs = tuple(problem.meta.get("calculations", ())) or problem.gold_steps
    key = (tuple(calcs), problem.question, problem.answer, exact)
    return _structure_cached(key)


@functools.lru_cache(maxsize=4096)
def _structure_cached(key: tuple[tuple[str, ...], str, str, bool]) -> GoldStructure | None:
    calcs, question, answer, exact = key
    items = _calculations(calcs)
    if not items:
        return None
    structure = build_structure(items, question_quantities(question), exact=exact)
    gold = parse_number(answer)
    if gold is None or gold not in structure.values:
        return None
    return structure


def _leaf_values(tree: Any) -> list[Fraction]:
    if tree[0] == "num":
        return [tree[1]]
    return [v for child in tree[1:] for v in _leaf_values(child)]


def _licensed(v: Fraction, ctx: ProblemContext, ledger: _Ledger) -> bool:
    if v in ctx.quantities or v in ctx.constants or v in ledger.results or -v in ledger.results:
        return True
    s = ctx.structure
    return s is not None and (v in s.numbers or (v in ledger.stated and v in s.values))


def _options(ctx: ProblemContext, ledger: _Ledger) -> Callable[[Fraction], list[Form]]:
    """How a number in a step may be read: an earlier result, a restated gold quantity, itself."""
    s = ctx.structure

    def options(v: Fraction) -> list[Form]:
        found: list[Form] = list(ledger.results.get(v, ()))
        if s is not None and v in ledger.stated and v in s.values:
            found += [f for f in s.values[v] if f not in found]
        if not found or v in ctx.quantities or v in ctx.constants or (s is not None and v in s.numbers):
            found.append(v)
        return found

    return options


def arithmetic_error(eq: Equation) -> str | None:
    """An '=' whose two sides disagree ('12 + 5 = 18')."""
    return None if eq.check.ok else f"{eq.check.left} = {eq.check.right} does not hold"


def unlicensed_operand(trees: Sequence[Any], ctx: ProblemContext, ledger: _Ledger) -> str | None:
    """A number the problem does not account for: copied wrong, or a result never computed."""
    bad = [v for t in trees for v in _leaf_values(t) if not _licensed(v, ctx, ledger)]
    if not bad:
        return None
    return f"{', '.join(format_number(v) for v in bad)}: in neither the question nor an earlier step"


def operation_off_path(
    forms: Sequence[Sequence[Form]], trees: Sequence[Any], ctx: ProblemContext, ledger: _Ledger
) -> str | None:
    """A calculation that is part of no gold calculation: an operation the problem lacks
    ("21 - 14" for "gets 14 more"), or operands combined in a way no reading allows.

    Where the structure is not exact (GSM8K), a step that writes a gold calculation number for
    number is on the path, and so is another route to a gold quantity ("48 * 1.5" for "48 + 48
    / 2"), unless it gives back one of its own operands ("48 - 24 = 24" after "48 / 2 = 24": a
    wrong operation that lands on a gold value) or uses a gold result not yet worked out.
    """
    s = ctx.structure
    if s is None:
        return None

    def worked_out(v: Fraction) -> bool:
        return v in ledger.results or v in ledger.stated

    for side, tree in zip(forms, trees, strict=True):
        if s.written_like_gold(tree, worked_out):
            continue
        operands = set(_leaf_values(tree))
        other_route = not s.skips_a_result(tree, worked_out)
        if not any(
            s.on_path(f) or (other_route and s.same_quantity(f) and form_value(f) not in operands)
            for f in side
        ):
            return "no path to the gold answer uses this calculation"
    return None


def final_answer_wrong(steps: Sequence[str], gold_answer: str, task: Task) -> bool:
    """The task's extracted answer (the one grader) disagrees with gold, or there is none."""
    return not task.grade(task.extract_answer("\n".join(steps)), gold_answer)


def _record_intermediates(tree: Any, options: Callable[[Fraction], list[Form]], ledger: _Ledger) -> None:
    """The values inside a calculation ("(3 + 4) * 2": 7) count as worked out (the value of the
    whole is recorded once the step is judged)."""
    for child in tree[1:] if tree[0] not in ("num", "form") else ():
        if child[0] in ("num", "form"):
            continue
        forms = tree_forms(child, options, limit=4)
        if forms:
            with contextlib.suppress(ZeroDivisionError):
                ledger.add_result(form_value(forms[0]), forms)
        _record_intermediates(child, options, ledger)


def _judge_equation(eq: Equation, ctx: ProblemContext, ledger: _Ledger) -> StepVerdict:
    """One '=' of a step: arithmetic, then operands, then the path, under the best '%' reading."""
    error = arithmetic_error(eq)
    if error:
        for v in eq.results():
            ledger.add_result(v, [v])
        return StepVerdict(Label.WRONG, "arithmetic", error)
    verdict: StepVerdict | None = None
    options = _options(ctx, ledger)
    for reading in eq.readings:
        trees = [side_tree(side, reading) for side in eq.computations()]
        if any(t is None for t in trees):
            continue
        error = None
        for tree in trees:  # "3 + 2 * 10 = 3 + 20": a side may use what an earlier side worked out
            error = unlicensed_operand([tree], ctx, ledger)
            if error:
                break
            _record_intermediates(tree, options, ledger)
        if error:
            label = Label.WRONG if ctx.structure is not None else Label.UNKNOWN
            verdict = verdict or StepVerdict(label, "operand", error)
            continue
        forms = [tree_forms(t, options) for t in trees]
        error = operation_off_path(forms, trees, ctx, ledger)
        if error:
            verdict = StepVerdict(Label.WRONG, "operation", error)
            continue
        on_path = [f for side in forms for f in side if ctx.structure is None or ctx.structure.on_path(f)]
        for v in eq.results():
            ledger.add_result(v, on_path or [f for side in forms for f in side] or [v])
        return StepVerdict(Label.CORRECT, "checked")
    for v in eq.results():
        ledger.add_result(v, [v])
    return verdict or StepVerdict(Label.UNKNOWN, "no_check", "the '=' could not be read")


def judge_step(text: str, ctx: ProblemContext, ledger: _Ledger) -> StepVerdict:
    """A step's verdict given what earlier steps established; records what this one establishes."""
    verdicts = [_judge_equation(eq, ctx, ledger) for eq in step_equations(text)]
    ledger.stated |= question_quantities(text)
    if not verdicts:
        return StepVerdict(Label.UNKNOWN, "no_check")
    for label in (Label.WRONG, Label.UNKNOWN):
        found = next((v for v in verdicts if v.label is label), None)
        if found:
            return found
    return verdicts[0]


def label_next_step(problem: Problem, prefix: Sequence[str], step: str, task: Task) -> StepVerdict:
    """The verdict of one step after `prefix`, as a partial solution: no final-answer rule
    (the step is not the end of a solution) and no whole-solution rule. For alternatives to
    a sampled step (DPO pairs), so they are judged with the same checks in the same context."""
    ctx = problem_context(problem, task)
    ledger = _Ledger()
    for earlier in prefix:
        judge_step(earlier, ctx, ledger)
    return judge_step(step, ctx, ledger)


def explain_solution(
    problem: Problem, steps: Sequence[str], task: Task, gold_answer: str | None = None
) -> list[StepVerdict]:
    """Every step's verdict with its reason: the problem-aware `verify` labeler.

    A step is CORRECT when its arithmetic holds, its operands are licensed (a quantity of the
    question, an earlier result, a task constant) and, where the gold structure is known,
    its calculation lies on a path to the gold answer. An unlicensed operand is WRONG where
    the structure is known and UNKNOWN elsewhere. Then the final-answer rule and the
    whole-solution rule of `label_solution` apply.
    """
    gold = problem.answer if gold_answer is None else gold_answer
    if not steps:
        return []
    ctx = problem_context(problem, task)
    ledger = _Ledger()
    verdicts = [judge_step(step, ctx, ledger) for step in steps]
    final = max((i for i, s in enumerate(steps) if s.strip()), default=len(steps) - 1)
    answer_wrong = final_answer_wrong(steps, gold, task)
    if answer_wrong and verdicts[final].label is not Label.WRONG:
        verdicts[final] = StepVerdict(Label.WRONG, "final_answer", f"gold is {gold}")
    if not answer_wrong and all(v.label is not Label.WRONG for v in verdicts):
        verdicts = [
            StepVerdict(Label.CORRECT, "solution_right") if v.reason == "no_check" else v for v in verdicts
        ]
    return verdicts


def first_wrong(labels: Sequence[Label]) -> int | None:
    """Index of the first WRONG step, or None."""
    return next((i for i, label in enumerate(labels) if label is Label.WRONG), None)


def cut_at_first_wrong(labels: Sequence[Label]) -> list[Label]:
    """The labels that matter: up to and including the first wrong step (docs/design.md §1.3)."""
    i = first_wrong(labels)
    return list(labels) if i is None else list(labels[: i + 1])


# --- registry ----------------------------------------------------------------------------------


class Labeler(Protocol):
    """Labels the steps of one solution to `problem`."""

    name: str

    def label(self, problem: Problem, steps: Sequence[str], task: Task) -> list[Label]: ...


@dataclass
class VerifyLabeler:
    name: str = "verify"

    def label(self, problem: Problem, steps: Sequence[str], task: Task) -> list[Label]:
        return label_solution(steps, problem.answer, task, problem=problem)

    def explain(self, problem: Problem, steps: Sequence[str], task: Task) -> list[StepVerdict]:
        return explain_solution(problem, steps, task)
