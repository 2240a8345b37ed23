"""pytest collection nodes: a suite file is a ``File``, each case an ``Item``."""

from __future__ import annotations

from typing import Any, Iterable, Protocol

import pytest

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.suite.parse import Case, Suite


class CaseRunner(Protocol):
    """What the nodes need from the session that collected them (``KnowledgeSession``)."""

    search_resolution: float | None

    def run_item(self, item: CaseItem) -> None: ...

    def run_search(self, item: SearchItem) -> None: ...


class KnowledgeFailure(AssertionError):
    """A case that ran and missed its gate; its message is the whole explanation."""


class SuiteFile(pytest.File):
    suite: Suite
    knowledge: CaseRunner

    def collect(self) -> Iterable[pytest.Item]:
        for case in self.suite.cases():
            yield CaseItem.from_parent(self, name=case.id, case=case)
        if self.knowledge.search_resolution is not None:
            for case in search_cases(self.suite):
                yield SearchItem.from_parent(self, name=search_id(case), case=case)


def search_cases(suite: Suite) -> list[Case]:
    """One case per (model, method with a ratio, benchmark): the template a search varies."""
    return [c for c in suite.cases() if c.method is not None and c.method.ratio_spec is not None
            and c.ratio == (c.method.ratios or suite.ratios)[0]]


def search_id(case: Case) -> str:
    return f"{case.model.name}-{case.method_name}-max_ratio-{case.benchmark.name}"


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


class SearchItem(CaseItem):
    """Bisects the ratio of one (model, method, benchmark) for the largest safe setting."""

    def runtest(self) -> None:
        self.parent.knowledge.run_search(self)  # type: ignore[attr-defined]

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"largest safe ratio {search_id(self.case)}"
