"""A SelectionList whose ticks read without colour: ``[x]`` chosen, ``[ ]`` not.

Textual's SelectionList draws the same ``▐X▌`` for both states and tells them apart by colour
only, which a monochrome terminal, a screen reader or a colour-blind user cannot see.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widgets import SelectionList
from textual.widgets._toggle_button import ToggleButton
from textual.widgets.option_list import OptionDoesNotExist

TICKED, UNTICKED = "[x]", "[ ]"
_BUTTON = (ToggleButton.BUTTON_LEFT, ToggleButton.BUTTON_INNER, ToggleButton.BUTTON_RIGHT)


class TickList(SelectionList[str]):
    """Same keys and messages as SelectionList; only the tick glyph differs."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        segments = list(strip)
        if len(segments) < 3 or tuple(s.text for s in segments[:3]) != _BUTTON:
            return strip
        try:
            selection = self.get_option_at_index(self.scroll_offset.y + y)
        except OptionDoesNotExist:
            return strip
        ticked = selection.value in self._selected
        button_style = segments[1].style or Style()
        glyph = Segment(TICKED if ticked else UNTICKED, button_style + Style(bold=ticked))
        return Strip([glyph, *segments[3:]], strip.cell_length)

    def tick_text(self, index: int) -> str:
        """The glyph drawn before option ``index`` (for tests)."""
        return TICKED if self.get_option_at_index(index).value in self._selected else UNTICKED
