"""The shape of a gold solution, and whether a step's calculation lies on a path to it.

A calculation is kept as a canonical *form*: a number, or a flat sum or product of parts.
Sums and products are flattened and their parts kept as multisets, so ``8 + 5 - 8`` and
``(8 - 8) + 5`` are one form, and any order of writing the signed terms of a ``+``/``-``
chain (or the factors of a product) is the same calculation. Numbers absorb their sign in
a sum (``- 8`` is the part ``-8``) and their exponent in a product (``/ 2`` is the part
``1/2``), so ``48 / 2`` and ``48 * 0.5`` agree.

A step is *on a path* to the gold answer when its form is part of a gold form: the same
kind of node with a sub-multiset of its parts (up to the sign of a sum or the inverse of a
product: ``3 + 5`` is part of ``20 - 3 - 5``). A step that uses an operation the problem
does not have (``21 - 14`` for "gets 14 more") is part of no gold form.

Gold forms come from the task: `arith` problems know their exact chain, GSM8K rows carry
calculator annotations (``<<48/2=24>>``), and a gold solution whose own steps reach the gold
answer counts too (`gold_structure`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Union

# A form: a Fraction, or (kind, numbers, parts) with kind "+" or "*", numbers a sorted tuple
# of Fractions and parts a sorted tuple of (sign or exponent, form).
Form = Union[Fraction, tuple[str, tuple[Fraction, ...], tuple[tuple[int, Any], ...]]]  # noqa: UP007


def _key(item: Any) -> str:
    return repr(item)


def _node(kind: str, numbers: list[Fraction], parts: list[tuple[int, Form]]) -> Form:
    if not parts and len(numbers) == 1:
        return numbers[0]
    if not numbers and len(parts) == 1 and parts[0][0] == 1:
        return parts[0][1]
    return (kind, tuple(sorted(numbers)), tuple(sorted(parts, key=_key)))


def _is(form: Form, kind: str) -> bool:
    return isinstance(form, tuple) and form[0] == kind


def negate(form: Form) -> Form:
    """-form, keeping sums flat: every number negated, every part's sign flipped."""
    if isinstance(form, Fraction):
        return -form
    if form[0] == "+":
        return _node("+", [-n for n in form[1]], [(-s, p) for s, p in form[2]])
    return _node("+", [], [(-1, form)])


def invert(form: Form) -> Form | None:
    """1/form, keeping products flat; None for 1/0."""
    if isinstance(form, Fraction):
        return None if form == 0 else 1 / form
    if form[0] == "*":
        if any(n == 0 for n in form[1]):
            return None
        return _node("*", [1 / n for n in form[1]], [(-e, p) for e, p in form[2]])
    return _node("*", [], [(-1, form)])


def combine(op: str, a: Form, b: Form) -> Form | None:
    """The form of ``a op b`` for op in + - * /; None when it divides by zero."""
    if op in "+-":
        numbers: list[Fraction] = []
        parts: list[tuple[int, Form]] = []
        for f in (a, b if op == "+" else negate(b)):
            if isinstance(f, Fraction):
                numbers.append(f)
            elif f[0] == "+":
                numbers.extend(f[1])
                parts.extend(f[2])
            else:
                parts.append((1, f))
        return _node("+", numbers, parts)
    right = b if op == "*" else invert(b)
    if right is None:
        return None
    numbers, parts = [], []
    for f in (a, right):
        if isinstance(f, Fraction):
            numbers.append(f)
        elif f[0] == "*":
            numbers.extend(f[1])
            parts.extend(f[2])
        else:
            parts.append((1, f))
    return _node("*", numbers, parts)


def value(form: Form) -> Fraction:
    if isinstance(form, Fraction):
        return form
    kind, numbers, parts = form
    if kind == "+":
        return sum(numbers, Fraction(0)) + sum((s * value(p) for s, p in parts), Fraction(0))
    out = Fraction(1)
    for n in numbers:
        out *= n
    for e, p in parts:
        out = out * value(p) if e > 0 else out / value(p)
    return out


def subforms(form: Form) -> Iterator[Form]:
    """Every sum or product inside `form`, itself included."""
    if isinstance(form, Fraction):
        return
    yield form
    for _, part in form[2]:
        yield from subforms(part)


def _within(small: Sequence[Any], big: Sequence[Any]) -> bool:
    """Multiset inclusion of two short sequences (by ==: hashing Fractions is the slow part)."""
    if len(small) > len(big):
        return False
    pool = list(big)
    for item in small:
        for i, other in enumerate(pool):
            if other == item:
                del pool[i]
                break
        else:
            return False
    return True


_DECIMAL_SHIFTS = frozenset(Fraction(1, 10**k) for k in (1, 2, 3))


def _products_within(small: Sequence[Fraction], big: Counter[Fraction]) -> bool:
    """Each number of `small` is one number of `big`, each used once, or a number of `big`
    shifted by a /10, /100 or /1000 of it: "0.2 * 50" is part of "20 / 100 * 50"."""
    if not small:
        return True
    first, rest = small[0], small[1:]
    groups = [[first]] if big[first] > 0 else []
    groups += [[first / d, d] for d in _DECIMAL_SHIFTS if big[d] > 0 and big[first / d] > 0]
    for group in groups:
        left = big.copy()
        left.subtract(group)
        if _products_within(rest, left):
            return True
    return False


def _plain(form: Form) -> bool:
    """A sum of non-negative numbers and added parts, or a product of whole factors: the
    group a solution may work out first and subtract (or divide by) as one quantity."""
    if isinstance(form, Fraction):
        return True
    kind, numbers, parts = form
    if kind == "+":
        return all(n >= 0 for n in numbers) and all(s > 0 for s, _ in parts)
    return all(n.denominator == 1 for n in numbers) and all(e > 0 for e, _ in parts)


def is_part_of(form: Form, gold: Form) -> bool:
    """Whether `form` is `gold`, or part of it (see the module docstring).

    A part may also be a subtracted group worked out first (``3 + 5`` of ``20 - 3 - 5``) or a
    divisor worked out first (``b * c`` of ``a / (b * c)``), never the whole negated or inverted.
    """
    if isinstance(form, Fraction) or isinstance(gold, Fraction) or form[0] != gold[0]:
        return form == gold
    kind, gold_numbers, gold_parts = gold
    flipped = (negate(form) if kind == "+" else invert(form)) if _plain(form) else None
    for c in (form, flipped):
        if c is None or not _is(c, kind) or (c is flipped and c == gold):
            continue
        numbers, parts = c[1], c[2]  # type: ignore[index]
        if not _within(parts, gold_parts):
            continue
        if kind == "+" and _within(numbers, gold_numbers):
            return True
        if kind == "*" and _products_within(list(numbers), Counter(gold_numbers)):
            return True
    return False


@dataclass(frozen=True)
class GoldStructure:
    """Every quantity a gold solution computes, as forms, and the numbers it uses."""

    forms: tuple[Form, ...]  # every sum/product of the gold calculations
    numbers: frozenset[Fraction]  # the operands they use (question quantities and constants)
    values: dict[Fraction, tuple[Form, ...]]  # value -> the gold forms of that value
    exact: bool = False  # True: the task knows the one chain (arith); no other route is accepted
    literal: tuple[Form, ...] = ()  # the calculations as written, every number a plain number

    def written_like_gold(self, tree: Any, worked_out: Any) -> bool:
        """The step writes (part of) a gold calculation, number for number ("16 / 4" for the
        gold "16/4"), and each number that gold works out was worked out before (`worked_out`:
        a skipped step is no excuse). Not for exact structures, where each number's source
        matters."""
        if self.exact or self.skips_a_result(tree, worked_out):
            return False
        forms = tree_forms(tree, lambda v: [v], limit=1)
        return bool(forms) and any(is_part_of(forms[0], g) for g in self.literal)

    def skips_a_result(self, tree: Any, worked_out: Any) -> bool:
        """The step uses a number that gold works out (and the question does not state) before
        the solution worked it out: the mark of a skipped step, even when it is also a constant."""
        leaves: list[Fraction] = []
        _leaves(tree, leaves)
        return any(v in self.values and v not in self.numbers and not worked_out(v) for v in leaves)

    def on_path(self, form: Form) -> bool:
        return isinstance(form, Fraction) or any(is_part_of(form, g) for g in self.forms)

    def same_quantity(self, form: Form) -> bool:
        """Another route to a quantity the gold solution computes (not for exact structures)."""
        if self.exact or isinstance(form, Fraction):
            return False
        try:
            return value(form) in self.values
        except ZeroDivisionError:
            return False


def build_structure(
    calculations: Sequence[Sequence[tuple[str, Any]]], quantities: frozenset[Fraction], exact: bool = False
) -> GoldStructure:
    """Gold forms from calculations in order; each is a parsed expression tree (see `tree_forms`).

    An operand equal to an earlier calculation's result is read as that result (and also as
    a plain number when the question has it), so a chain of annotations becomes one form.
    """
    results: dict[Fraction, list[Form]] = {}
    forms: list[Form] = []
    literal: list[Form] = []
    numbers: set[Fraction] = set()
    previous: tuple[Fraction, list[Form]] | None = None
    for tree, result in calculations:  # type: ignore[misc]
        if exact and previous is not None:
            tree = _carry(tree, *previous)  # an exact chain: the first operand is the last result
        leaves: list[Fraction] = []
        _leaves(tree, leaves)
        numbers.update(n for n in leaves if n in quantities or n not in results)  # not carried results

        def options(v: Fraction) -> list[Form]:
            found = list(results.get(v, []))
            if not found or v in quantities:
                found.append(v)
            return found

        for f in tree_forms(tree, lambda v: [v], limit=1):
            literal += [sub for sub in subforms(f) if sub not in literal]
        made = tree_forms(tree, (lambda v: [v]) if exact else options, limit=16)
        for f in made:
            for sub in subforms(f):
                if sub not in forms:
                    forms.append(sub)
        if made:
            previous = (result, made)
            for key in {value(made[0]), result}:
                results.setdefault(key, [])
                results[key] += [f for f in made if f not in results[key]][:4]
    values: dict[Fraction, tuple[Form, ...]] = {}
    for f in forms:
        try:
            values.setdefault(value(f), ())
            values[value(f)] += (f,)
        except ZeroDivisionError:
            continue
    return GoldStructure(tuple(forms), frozenset(numbers), values, exact, tuple(literal))


def _carry(tree: Any, result: Fraction, forms: list[Form]) -> Any:
    """The tree with its first number (left to right) equal to `result` read as that result."""
    done = False

    def walk(node: Any) -> Any:
        nonlocal done
        if done or node[0] == "form":
            return node
        if node[0] == "num":
            if node[1] == result:
                done = True
                return ("form", forms)
            return node
        return (node[0], *(walk(child) for child in node[1:]))

    return walk(tree)


def _leaves(tree: Any, out: list[Fraction]) -> None:
    if tree[0] == "num":
        out.append(tree[1])
    elif tree[0] == "form":
        return
    else:
        for child in tree[1:]:
            _leaves(child, out)


def tree_forms(tree: Any, options: Any, limit: int = 32) -> list[Form]:
    """The forms of an expression tree, each number read by ``options(value) -> [forms]``.

    A tree is ``("num", Fraction)``, ``("neg", tree)`` or ``(op, left, right)``. Several
    readings of a number (a question quantity, or an earlier result) give several forms; at
    most `limit` are kept.
    """
    if tree[0] == "num":
        return list(options(tree[1]))[:limit]
    if tree[0] == "form":
        return list(tree[1])[:limit]
    if tree[0] == "neg":
        if tree[1][0] == "num":  # "-3": an earlier result -3, or the number 3 negated
            direct = list(options(-tree[1][1]))
            return (direct + [negate(f) for f in options(tree[1][1])])[:limit]
        return [negate(f) for f in tree_forms(tree[1], options, limit)]
    out: list[Form] = []
    lefts = tree_forms(tree[1], options, limit)
    rights = tree_forms(tree[2], options, limit)
    for a in lefts:
        for b in rights:
            f = combine(tree[0], a, b)
            if f is not None and f not in out:
                out.append(f)
            if len(out) >= limit:
                return out
    return out


_CALC = re.compile(r"<<([^<>=]*)=([^<>]*)>>")


def annotations(text: str) -> tuple[str, ...]:
    """The calculations of a GSM8K-style solution, line by line: the visible line (its '='s,
    annotations removed) and then its calculator annotations as 'expr=result' strings. Both,
    because each misses some: "30/60=1/2 hour" is often unannotated, and "2 x 12 = 24" is
    sometimes annotated as "<<24=24>>". The '#### N' line is left out."""
    out: list[str] = []
    for line in text.rpartition("####")[0].splitlines() if "####" in text else text.splitlines():
        visible = _CALC.sub("", line).strip()
        out += [visible] if "=" in visible else []
        out += [f"{m.group(1)}={m.group(2)}" for m in _CALC.finditer(line)]
    return tuple(out)
