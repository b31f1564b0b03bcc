"""`CaspoScreen`: a screen of the caspo-lite app, with the app under its own type.

Screens reach the app's shared state (settings, runs folder, the search source) and its
navigation (`CaspoApp.open_export`, `open_train`, `chat_with`) through ``self.caspo``; one
screen never edits another, it asks the app, which switches and sends the other a message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.screen import Screen

if TYPE_CHECKING:  # the app imports every screen; a screen needs the app's type only
    from caspo_lite.tui.app import CaspoApp


class CaspoScreen(Screen[None]):
    @property
    def caspo(self) -> CaspoApp:
        return self.app  # type: ignore[return-value]
