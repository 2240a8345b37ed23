"""pytest collection nodes: a suite file is a ``File``, each case an ``Item``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import pytest

from .errors import KnowledgeError
from .suite import Case, Suite

if TYPE_CHECKING:
    from .session import KnowledgeSession


class KnowledgeFailure(AssertionError):
    """A case that ran and missed its gate; its message is the whole explanation."""


class SuiteFile(pytest.File):
    suite: Suite
    knowledge: "KnowledgeSession"

    def collect(self) -> Iterable["CaseItem"]:
        for case in self.suite.cases():
            yield CaseItem.from_parent(self, name=case.id, case=case)


class CaseItem(pytest.Item):
    def __init__(self, *, case: Case, **kwargs: Any):
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        self.parent.knowledge.run_item(self)  # type: ignore[attr-defined]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, (KnowledgeFailure, KnowledgeError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"knowledge case {self.case.id}"
