"""Error types the plugin reports to users.

Every problem a user can fix (a bad suite, a missing baseline, a model that cannot be
found) is a ``KnowledgeError`` whose message says where the problem is and what was
expected; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class KnowledgeError(Exception):
    """A problem in the user's input or environment, reported without a traceback."""


class SuiteError(KnowledgeError):
    """A suite file that cannot be turned into a grid of cases."""

    def __init__(self, key: str, expected: str, got: object = ..., file: Path | str | None = None):
        self.key = key
        self.expected = expected
        self.got = got
        self.file = file
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.file}: " if self.file is not None else ""
        got = "" if self.got is ... else f", got {self.got!r}"
        return f"{where}{self.key}: expected {self.expected}{got}"

    def in_file(self, file: Path | str) -> "SuiteError":
        """The same error, located in ``file`` (loaders raise before they know it)."""
        return SuiteError(self.key, self.expected, self.got, file=file)


class BaselineError(KnowledgeError):
    """A baseline file that is unreadable or does not match the case it is used for."""


class Unavailable(KnowledgeError):
    """A case this machine cannot run (a kernel that needs a GPU, say): skipped with the reason,
    never failed and never passed."""
