"""Confidence as colour, and model text as safe, single-line Rich `Text`.

Model text is never parsed as markup: everything here builds `rich.text.Text` from plain
strings, so a step that says ``[bold]`` or ``[/]`` is shown as written.
"""

from __future__ import annotations

import math

from rich.color import Color
from rich.style import Style
from rich.text import Text

LABEL_CHARS = 56  # a tree label shows at most this much of a step; the full text is on selection
_RED, _YELLOW, _GREEN = (220, 50, 47), (220, 180, 40), (60, 180, 75)
DEEPCONF_SCALE = 5.0  # deepconf confidence is >= 0, unbounded: map c -> 1 - exp(-c / scale)


def level(confidence: float, signal: str = "entropy") -> float:
    """Confidence mapped to [0, 1] for colouring (every signal except deepconf already is)."""
    if math.isnan(confidence):
        return 0.0
    if signal == "deepconf":
        return 1.0 - math.exp(-max(confidence, 0.0) / DEEPCONF_SCALE)
    return min(max(confidence, 0.0), 1.0)


def confidence_color(confidence: float, signal: str = "entropy") -> Color:
    """Red (unsure) through yellow to green (sure)."""
    x = level(confidence, signal)
    lo, hi, t = (_RED, _YELLOW, x * 2) if x < 0.5 else (_YELLOW, _GREEN, (x - 0.5) * 2)
    r, g, b = (round(a + (c - a) * t) for a, c in zip(lo, hi, strict=True))
    return Color.from_rgb(r, g, b)


def one_line(text: str, limit: int = LABEL_CHARS) -> str:
    """Collapse whitespace and newlines, and cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def confidence_badge(confidence: float | None, signal: str = "entropy") -> Text:
    """'● 0.83' in the confidence's colour ('● …' while unknown)."""
    if confidence is None:
        return Text("● …  ", style="dim")
    color = confidence_color(confidence, signal)
    return Text.assemble(("● ", Style(color=color)), (f"{confidence:.2f} ", Style(color=color, bold=True)))


def token_heatmap(tokens: list[tuple[str, float]], signal: str = "entropy") -> Text:
    """Each token on a background of its confidence's colour (newlines kept)."""
    out = Text()
    for piece, conf in tokens:
        shown = piece if piece else "·"  # an empty piece (EOS) still gets a cell
        out.append(shown, Style(color="black", bgcolor=confidence_color(conf, signal)))
    return out
