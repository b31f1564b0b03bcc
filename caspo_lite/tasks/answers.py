"""Answer extraction and grading shared by every task family.

One definition of "right" (nanochat's habit): evaluation, pair labelling and search all call
these through a task's `extract_answer` / `grade`.

Extraction order, first hit wins: the last ``Answer: x`` line (the format our prompts ask
for), ``#### x`` (GSM8K), the last ``\\boxed{x}`` (MATH), "the answer is x", and finally the
last number in the text. Numbers compare as exact rationals; MATH answers compare as
normalised LaTeX strings, and numerically when both sides parse.
"""

from __future__ import annotations

import re

from caspo_lite.numbers import _NUMBER, format_number, parse_number

_ANSWER_LINE = re.compile(r"(?im)^[ \t*#]*(?:final\s+)?answer\s*[:：]\s*(.+?)\s*$")
_HASHES = re.compile(r"(?m)####\s*(.+?)\s*$")
_ANSWER_IS = re.compile(r"(?i)\banswer\s+is\s*[:：]?\s*(.+?)(?:\.\s|\.$|\n|$)")


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced; None if absent."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0 or text[start:i].strip() not in ("\\boxed", "\\fbox"):
        m = re.match(r"\\boxed\s+([^\s$]+)", text[start:])  # "\boxed 5"
        return m.group(1) if m else None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def extract_raw_answer(text: str) -> str | None:
    """The answer span as written, by the order in the module docstring (no fallback)."""
    if not text:
        return None
    found = _ANSWER_LINE.findall(text)
    if found:
        return found[-1]
    found = _HASHES.findall(text)
    if found:
        return found[-1]
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    found = _ANSWER_IS.findall(text)
    if found:
        return found[-1]
    return None


def extract_numeric_answer(text: str) -> str | None:
    """Canonical number text of the answer ('1200', '2.5', '1/3'), or None.

    An answer span without any number is returned as written ("Yes"): a few ASDiv answers
    are words, and they grade as case-insensitive text.
    """
    raw = extract_raw_answer(text)
    if raw is not None:
        inner = last_boxed(raw)
        value = parse_number(inner if inner is not None else raw)
        if value is not None:
            return format_number(value)
        numbers = _NUMBER.findall(raw.replace("−", "-"))
        if numbers:
            return format_number(parse_number(numbers[-1]) or 0)
        word = raw.strip().rstrip(".")
        if word and len(word.split()) <= 3:  # a word answer ("Yes", "Purple"), as ASDiv has;
            return word  # a sentence ("not possible to calculate") is no answer
        if word:
            return None
    numbers = _NUMBER.findall((text or "").replace("−", "-"))
    if not numbers:
        return None
    value = parse_number(numbers[-1])
    return format_number(value) if value is not None else None


def grade_numeric(predicted: str | None, gold: str) -> bool:
    """Exact rational equality after normalisation; a missing prediction is wrong."""
    if predicted is None:
        return False
    x, y = parse_number(predicted), parse_number(gold)
    if x is not None and y is not None:
        return x == y
    return normalize_math(predicted).lower() == normalize_math(gold).lower() != ""


# --- MATH-style answers ------------------------------------------------------------------------

_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_SIMPLE_REPLACEMENTS = (
    ("\\left", ""),
    ("\\right", ""),
    ("\\!", ""),
    ("\\,", ""),
    ("\\;", ""),
    ("\\:", ""),
    ("\\ ", ""),
    ("\\displaystyle", ""),
    ("dfrac", "frac"),
    ("tfrac", "frac"),
    ("^{\\circ}", ""),
    ("^\\circ", ""),
    ("°", ""),
    ("\\$", ""),
    ("$", ""),
    ("\\%", ""),
    ("%", ""),
    ("\\{", "{"),
    ("\\}", "}"),
    ("−", "-"),
    ("\\infinity", "\\infty"),
)


def normalize_math(answer: str | None) -> str:
    """MATH-style normalisation (after Hendrycks et al.'s `is_equiv`), spaces removed.

    Drops \\left/\\right, spacing commands, \\text{} wrappers, degrees, dollar and percent
    signs, a leading "x =" and a trailing period; \\dfrac/\\tfrac -> \\frac; \\frac12 ->
    \\frac{1}{2}; \\sqrt2 -> \\sqrt{2}; ".5" -> "0.5"; "2.0" -> "2". Two answers are equal
    when their normalised strings match (or their values, see `grade_math`).
    """
    if answer is None:
        return ""
    s = str(answer).strip()
    inner = last_boxed(s)
    if inner is not None and s.startswith("\\boxed"):
        s = inner
    s = s.replace("\n", "").replace("\\\\", "\\")
    for old, new in _SIMPLE_REPLACEMENTS:
        s = s.replace(old, new)
    for _ in range(3):
        s = _TEXT_CMD.sub(r"\1", s)
    s = re.sub(r"\\(?:mathrm|text)\{\s*(?:units?|cm|inches|degrees|dollars|cents)\s*\}", "", s)
    s = s.replace(" ", "").rstrip(".")
    s = re.sub(r"^[a-zA-Z]\w{0,2}=(?!=)", "", s) if s.count("=") == 1 else s  # "x=5" -> "5"
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\{([^{}]+)\}(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\sqrt(\d+)", r"\\sqrt{\1}", s)
    s = re.sub(r"(?<![\d}])\.(\d)", r"0.\1", s)
    s = re.sub(r"(\d)\.0+(?!\d)", r"\1", s)
    s = re.sub(r"(\d),(\d{3})(?!\d)", r"\1\2", s) if re.fullmatch(r"[\d,.\-]+", s) else s
    if re.fullmatch(r"\{[^{}]*\}", s):
        s = s[1:-1]
    return s


def grade_math(predicted: str | None, gold: str) -> bool:
    """Normalised string match, or exact numeric equality when both sides parse."""
    if predicted is None:
        return False
    a, b = normalize_math(predicted), normalize_math(gold)
    if a and a == b:
        return True
    x, y = parse_number(a), parse_number(b)
    return x is not None and y is not None and x == y


def extract_math_answer(text: str) -> str | None:
    """MATH answers keep their LaTeX: the raw span, else the last number."""
    raw = extract_raw_answer(text)
    if raw is not None:
        return raw.strip().rstrip(".").strip()
    numbers = _NUMBER.findall(text or "")
    return numbers[-1] if numbers else None
