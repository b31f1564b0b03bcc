"""Exact numbers from text: parse, normalise and print answers as rationals.

Graders and the verify labeler compare numbers as `fractions.Fraction`, never floats, so
"0.1 + 0.2 = 0.3" checks and "120" never equals "12000". Parsing is forgiving about the
dressing people and models put around a number ("$1,200.00", "1200 dollars", "9 (apples)",
"\\boxed{1200}", "50%") and strict about the number itself.
"""

from __future__ import annotations

import re
from fractions import Fraction

# One number as written in word problems: optional sign, thousands commas in groups of
# three, a decimal part, or a leading-dot decimal. Percent signs are handled by callers.
NUMBER_RE = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+"
_NUMBER = re.compile(rf"-?(?:{NUMBER_RE})")
_FRACTION = re.compile(rf"^(-?)\s*({NUMBER_RE})\s*/\s*({NUMBER_RE})$")
_LATEX_FRAC = re.compile(r"^(-?)\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$")
_MIXED = re.compile(r"^(-?)(\d+)\s+(\d+)\s*/\s*(\d+)$")  # "2 1/2"
_DRESSING = re.compile(
    r"\\boxed\{|\\text\{|\\mathrm\{|\\textbf\{|\\\$|\$|\\,|\\!|\\;|\\%|[{}]|\*\*|"
    r"\b(?:dollars?|cents?|usd|units?)\b"
)
_PARENS_TAIL = re.compile(r"\s*\([^()]*\)\s*$")  # ASDiv's "9 (apples)"


def to_fraction(number: str) -> Fraction:
    """'1,200.50' -> Fraction(2401, 2); the text must be one plain number (no sign dressing)."""
    return Fraction(number.replace(",", ""))


def parse_number(text: str | int | float | None) -> Fraction | None:
    """The exact value of an answer string, or None when it is not a single number.

    Accepts dressing around one number: currency, thousands commas, a trailing unit word
    ("1200 dollars", "145.0", "9 (apples)"), percent ("50%" -> 50, as GSM8K writes percent
    answers), LaTeX (\\boxed{}, \\frac{a}{b}, \\text{}) and plain fractions "3/4", "2 1/2".
    Two different numbers ("3 and 4", "10-12") give None: the answer is ambiguous.
    """
    if text is None:
        return None
    if isinstance(text, int | float) and not isinstance(text, bool):
        return Fraction(str(text)) if isinstance(text, float) else Fraction(text)
    s = str(text).strip()
    if not s:
        return None
    s = _PARENS_TAIL.sub("", s) or s
    s = s.replace("\\left", "").replace("\\right", "").replace("−", "-").replace("–", "-")
    s = re.sub(r"\^\{?\\circ\}?|°", "", s)
    latex = _LATEX_FRAC.match(_strip_boxed(s).replace(" ", ""))
    if latex:
        num, den = parse_number(latex.group(2)), parse_number(latex.group(3))
        if num is None or not den:
            return None
        value = num / den
        return -value if latex.group(1) else value
    s = _DRESSING.sub(" ", s).strip().rstrip(".").strip()
    s = re.sub(r"%$", "", s).strip()
    s = re.sub(r"^-\s+", "-", s)
    m = _MIXED.match(s)
    if m:
        value = int(m.group(2)) + Fraction(int(m.group(3)), int(m.group(4)) or 1)
        return -value if m.group(1) else value
    m = _FRACTION.match(s)
    if m:
        den = to_fraction(m.group(3))
        if not den:
            return None
        value = to_fraction(m.group(2)) / den
        return -value if m.group(1) else value
    found = _NUMBER.findall(s)
    if len(found) != 1:
        return None
    # Only words may surround the number ("1200 dollars", "about 5 apples"), not more maths.
    rest = s.replace(found[0], " ", 1)
    if re.search(r"[\d=+*/^\\]", rest):
        return None
    return to_fraction(found[0])


def _strip_boxed(s: str) -> str:
    s = s.strip().strip("$").strip()
    if s.startswith("\\boxed{") and s.endswith("}"):
        return s[len("\\boxed{") : -1]
    return s


def format_number(value: Fraction) -> str:
    """Canonical text: '1200', '-3', '2.5', '1/3' (a terminating decimal when one exists)."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    digits = 0
    scaled = value
    while scaled.denominator != 1:
        scaled *= 10
        digits += 1
    sign = "-" if scaled < 0 else ""
    text = str(abs(scaled.numerator)).rjust(digits + 1, "0")
    return f"{sign}{text[:-digits]}.{text[-digits:]}"


def normalize_number_text(text: str | int | float) -> str:
    """Gold answers as stored in a `Problem`: canonical number text, else the stripped text."""
    value = parse_number(text)
    return format_number(value) if value is not None else str(text).strip()


def numbers_equal(a: str | None, b: str | None) -> bool:
    """Exact rational equality of two answer strings; False when either is not a number."""
    x, y = parse_number(a), parse_number(b)
    return x is not None and y is not None and x == y
