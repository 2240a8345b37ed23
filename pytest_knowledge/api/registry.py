"""A tiny name → entry registry shared by methods and benchmarks.

Suite files refer to methods and benchmarks by name; modules register themselves at
import time, so adding one is adding one file (plus one import line in the package).
"""

from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from pytest_knowledge.core.config import closest
from pytest_knowledge.core.errors import SuiteError

E = TypeVar("E")


class Registry(Generic[E]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, E] = {}

    def add(self, name: str, entry: E) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def lookup(self, name: object, key: str) -> E:
        """The entry for ``name``; an unknown name is a suite error listing the known ones."""
        if not isinstance(name, str) or name not in self._entries:
            known = ", ".join(sorted(self._entries))
            hint = closest(name, self._entries) if isinstance(name, str) else ""
            raise SuiteError(key, f"a known {self.kind} ({known}){hint}", name)
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._entries
