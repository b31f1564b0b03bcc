"""Library warnings a user can do nothing about, silenced by message (issue #19, item 9).

peft and TRL read transformers' deprecated ``is_gradient_checkpointing`` alias, so every DPO
run printed the same FutureWarning twice; it names a call inside those libraries, not in the
user's recipe. The filters match the message, not the category, so any other warning from the
same libraries still shows.
"""

from __future__ import annotations

import warnings

#: (category, message regex) pairs: each one a known warning from a dependency's internals.
KNOWN_LIBRARY_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, r"`?is_gradient_checkpointing`? is deprecated"),
)


def quiet_library_warnings() -> None:
    """Install the filters for `KNOWN_LIBRARY_WARNINGS` (idempotent: the warnings module dedups)."""
    for category, message in KNOWN_LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
