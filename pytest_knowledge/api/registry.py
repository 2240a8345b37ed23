"""A tiny name → entry registry shared by methods, benchmarks and models.

Suite files refer to them by name; modules register themselves at import time, and every
lookup first loads the built-in modules and installed entry points (``plugins``), so adding
one is adding one file.
"""

from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from pytest_knowledge.api.plugins import load_plugins
from pytest_knowledge.core.config import closest
from pytest_knowledge.core.errors import SuiteError

E = TypeVar("E")


class Registry(Generic[E]):
    """Entries by name, for one kind of thing (``kind`` names it in error messages)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, E] = {}

    def add(self, name: str, entry: E) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def lookup(self, name: object, key: str) -> E:
        """The entry for ``name``; an unknown name is a suite error listing the known ones."""
        load_plugins()
        if not isinstance(name, str) or name not in self._entries:
            known = ", ".join(sorted(self._entries))
            hint = closest(name, self._entries) if isinstance(name, str) else ""
            raise SuiteError(key, f"a known {self.kind} ({known}){hint}", name)
        return self._entries[name]

    def get(self, name: str) -> E | None:
        load_plugins()
        return self._entries.get(name)

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries
