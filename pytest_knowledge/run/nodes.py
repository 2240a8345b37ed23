"""pytest collection nodes: a suite file is a ``File``, each case an ``Item``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
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


# Where each (suite name, case id) was collected from in this session: records, baselines and
# the history are keyed by that pair, so two files must never both claim one.
_COLLECTED = pytest.StashKey[dict[tuple[str, str], Path]]()


def file_nodeid(path: Path, rootpath: Path) -> str:
    """The file's part of every test id: relative to the rootdir when inside it, else its absolute path.

    pytest's own rule gives a suite file passed as a path outside the rootdir the empty id,
    so every such file's cases would share ``::case-id`` and xdist would run only one of them.
    """
    try:
        return path.relative_to(rootpath).as_posix()
    except ValueError:
        return path.absolute().as_posix()


class SuiteFile(pytest.File):
    suite: Suite
    knowledge: CaseRunner

    @classmethod
    def from_parent(cls, parent: pytest.Collector, *, path: Path, **kwargs: Any) -> "SuiteFile":  # type: ignore[override]
        return super().from_parent(parent, path=path, nodeid=file_nodeid(path, parent.config.rootpath), **kwargs)

    def collect(self) -> Iterable[pytest.Item]:
        claimed = self.config.stash.setdefault(_COLLECTED, {})
        cases = [(case.id, case, CaseItem) for case in self.suite.cases()]
        if self.knowledge.search_resolution is not None:
            cases += [(search_id(case), case, SearchItem) for case in search_cases(self.suite)]
        counts = Counter(case_id for case_id, _, _ in cases)
        for case_id, case, kind in cases:
            other = claimed.setdefault((self.suite.name, case_id), self.path)
            if other != self.path or counts[case_id] > 1:
                where = "twice in this file" if other == self.path else f"also from {other}"
                raise KnowledgeError(
                    f"{self.path}: case {self.suite.name + '/' + case_id!r} is collected {where}; results, "
                    "baselines and history are keyed by suite name and case id, so the pair must be "
                    "unique: give each suite file its own 'name', and rename entries whose ids coincide")
            yield kind.from_parent(self, name=case_id, case=case)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, KnowledgeError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)


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
