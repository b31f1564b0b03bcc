"""The numbers a word problem licenses: its digits, its number words, its percentages.

The verify labeler accepts an operand only if the problem (or an earlier step, or a constant
the task allows) accounts for it. A question says "twice", "half", "a dozen" or "20%" as often
as it writes digits, so each such word licenses the numbers a solution writes for it: "half"
is used as ``/ 2`` and as ``* 0.5``, "20%" as ``20`` and as ``0.2``, "3/4" as ``3/4``, ``3``
and ``4``.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

# Numbers word problems use without stating them: unit conversions, "half", percent, dozens.
# A task overrides them with its `constants` setting (arith allows none).
UNIT_CONSTANTS: tuple[str, ...] = (
    "1", "2", "3", "4", "7", "10", "12", "16", "24", "30", "31", "52", "60", "100", "365", "1000",
    "3600", "0.5", "0.25", "0.1", "0.01",
)  # fmt: skip

_UNITS = [
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"),
]
_TENS = {
    w: 10 * i
    for i, w in enumerate(["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], 2)
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
# Words that stand for a number (and, for a part, also the divisor a solution writes for it).
_WORDS: dict[str, tuple[Fraction, ...]] = {
    "half": (Fraction(1, 2), Fraction(2)),
    "halves": (Fraction(1, 2), Fraction(2)),
    "halved": (Fraction(1, 2), Fraction(2)),
    "twice": (Fraction(2),),
    "double": (Fraction(2),),
    "doubles": (Fraction(2),),
    "doubled": (Fraction(2),),
    "triple": (Fraction(3),),
    "triples": (Fraction(3),),
    "tripled": (Fraction(3),),
    "thrice": (Fraction(3),),
    "quadruple": (Fraction(4),),
    "pair": (Fraction(2),),
    "pairs": (Fraction(2),),
    "dozen": (Fraction(12),),
    "dozens": (Fraction(12),),
    "quarter": (Fraction(1, 4), Fraction(4)),
    "quarters": (Fraction(1, 4), Fraction(4)),
    "third": (Fraction(1, 3), Fraction(3)),
    "thirds": (Fraction(1, 3), Fraction(3)),
    "fourth": (Fraction(1, 4), Fraction(4)),
    "fourths": (Fraction(1, 4), Fraction(4)),
    "fifth": (Fraction(1, 5), Fraction(5)),
    "fifths": (Fraction(1, 5), Fraction(5)),
    "sixth": (Fraction(1, 6), Fraction(6)),
    "seventh": (Fraction(1, 7), Fraction(7)),
    "eighth": (Fraction(1, 8), Fraction(8)),
    "ninth": (Fraction(1, 9), Fraction(9)),
    "tenth": (Fraction(1, 10), Fraction(10)),
    "tenths": (Fraction(1, 10), Fraction(10)),
    "hundredth": (Fraction(1, 100), Fraction(100)),
    "percent": (Fraction(1, 100), Fraction(100)),
}
_NUMBER = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.(\d+))?|(?<![\d])\.(\d+)")
_FRACTION = re.compile(r"(?<![\d.])(\d+)\s*/\s*(\d+)(?![\d.])")
_PERCENT = re.compile(r"(\d[\d,]*(?:\.\d+)?|\.\d+)\s*(?:%|percent\b|per cent\b)", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]+")


def _number_words(text: str) -> set[Fraction]:
    """Values of spelled numbers: 'seven', 'twenty-five', 'three hundred', 'a dozen', 'half'."""
    found: set[Fraction] = set()
    total: int | None = None  # the compound number being read ("twenty five", "two hundred")
    for word in [*(w.lower() for w in _WORD.findall(text)), ""]:
        if word in _UNITS or word in _TENS:
            n = _UNITS.index(word) if word in _UNITS else _TENS[word]
            found.add(Fraction(n))
            joins = total is not None and (
                (word in _UNITS and total >= 20 and total % 10 == 0) or (total >= 100 and total % 100 == 0)
            )
            if not joins and total is not None:
                found.add(Fraction(total))
            total = total + n if joins and total is not None else n
        elif word in _SCALES and total is not None:
            total *= _SCALES[word]
        elif word == "and" and total is not None and total >= 100:
            continue
        else:
            if total is not None:
                found.add(Fraction(total))
            total = None
            found.update(_WORDS.get(word, ()))
    return found


@functools.lru_cache(maxsize=1 << 14)
def question_quantities(text: str) -> frozenset[Fraction]:
    """Every number the question states or names, in the forms a solution may write it."""
    found: set[Fraction] = set()
    for m in _NUMBER.finditer(text):
        digits = m.group(0).replace(",", "")
        found.add(Fraction(digits))
    for m in _FRACTION.finditer(text):
        num, den = int(m.group(1)), int(m.group(2))
        if den:
            found.add(Fraction(num, den))
    for m in _PERCENT.finditer(text):
        p = Fraction(m.group(1).replace(",", ""))
        found.update({p / 100, 1 - p / 100, 1 + p / 100})
    found |= _number_words(text)
    return frozenset(found)
