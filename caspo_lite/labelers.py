"""Step labels: correct / wrong / unknown for each step of a solution (DESIGN §1.3).

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

Only steps up to and including the first wrong one are used downstream: later steps are
conditioned on an error (`cut_at_first_wrong`). `rollout` and `judge` labelers need an
engine; they register themselves with `register_labeler` from the training code.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

from caspo_lite.errors import ConfigError
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


@dataclass(slots=True)
class _Side:
    """One side of an '=': its tokens and its value under each reading of '%'."""

    toks: list[_Tok]
    values: tuple[Fraction | None, ...]

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


def check_step(text: str) -> list[Check]:
    """Every checkable '=' in a step, evaluated exactly (see the module docstring)."""
    return list(_check_cached(text))


@functools.lru_cache(maxsize=1 << 16)
def _check_cached(text: str) -> tuple[Check, ...]:
    checks: list[Check] = []
    rounding = bool(_ROUNDING.search(text))
    runs = [run for a, b in _clauses(text) for run in _runs(_tokenize(text, a, b), at_start=a == 0)]
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
            ok = _agree(left, right, 0, may_round) or _agree(left, right, 1, may_round)
            checks.append(Check(_span(text, left.toks), _span(text, right.toks), ok))
    return tuple(checks)


def _span(text: str, toks: Sequence[_Tok]) -> str:
    return text[toks[0].start : toks[-1].end].strip()


def verify_step(text: str) -> Label:
    """WRONG if any check fails, CORRECT if at least one passes and none fail, else UNKNOWN."""
    checks = check_step(text)
    if not checks:
        return Label.UNKNOWN
    return Label.CORRECT if all(c.ok for c in checks) else Label.WRONG


def label_solution(steps: Sequence[str], gold_answer: str, task: Task) -> list[Label]:
    """Labels for every step: arithmetic checks, then the final answer against gold.

    The last non-empty step is the final-answer step: it is WRONG when the task's extracted
    answer disagrees with gold (or is missing). Steps with nothing checkable are UNKNOWN,
    unless the whole solution is right (no wrong step, right answer): then CORRECT.
    """
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


def first_wrong(labels: Sequence[Label]) -> int | None:
    """Index of the first WRONG step, or None."""
    return next((i for i, label in enumerate(labels) if label is Label.WRONG), None)


def cut_at_first_wrong(labels: Sequence[Label]) -> list[Label]:
    """The labels that matter: up to and including the first wrong step (DESIGN §1.3)."""
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
        return label_solution(steps, problem.answer, task)


LABELERS: dict[str, Callable[..., Labeler]] = {"verify": VerifyLabeler}


def register_labeler(name: str, factory: Callable[..., Labeler]) -> None:
    """Add a labeler (e.g. `rollout`, `judge` from the training code) under `name`."""
    LABELERS[name] = factory


def get_labeler(name: str, **options: Any) -> Labeler:
    if name not in LABELERS:
        raise ConfigError(f"unknown labeler '{name}' (known: {', '.join(sorted(LABELERS))})")
    return LABELERS[name](**options)
