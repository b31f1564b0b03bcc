"""One registry style for everything chosen by name: tasks, engines, labelers, strategies.

A `Registry` is a read-only mapping from a name to a factory. The names a user sees (CLI help,
TUI choices, recipe errors) are derived from it, so adding an entry is the only edit a new
strategy or task needs, and no list of names can fall out of step with what can be built.
Factories that need a heavy or higher-floor module import it when called, not when registered,
so listing the names never loads torch or llama.cpp.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

from caspo_lite.errors import CaspoError, ConfigError

F = TypeVar("F", bound=Callable[..., object])


def prose(names: Sequence[str], last: str = "or") -> str:
    """Names as prose for help texts: ``"greedy, sc or cat"``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"


class Registry(Mapping[str, F], Generic[F]):
    """Names to factories, in the order they are listed; lookups fail with one clear line."""

    def __init__(self, kind: str, entries: Mapping[str, F], error: type[CaspoError] = ConfigError) -> None:
        self.kind = kind  # "task", "search strategy", ...: the word the error message uses
        self._entries = dict(entries)
        self._error = error

    def __getitem__(self, name: str) -> F:
        try:
            return self._entries[name]
        except KeyError:
            raise self._error(f"unknown {self.kind} {name!r} (known: {', '.join(self._entries)})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def choices(self, last: str = "or") -> str:
        """The names as prose for help texts: ``"greedy, sc or cat"``."""
        return prose(self.names, last)
