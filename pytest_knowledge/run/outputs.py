"""The built-in outputs of a knowledge session, each a plugin of the hooks in ``hookspecs``.

Order at the end of a session: baselines first (a failed write must fail what follows), then the
results file, the facts export and the reports, and the history run last, closed with the final
exit status.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.exc import SQLAlchemyError

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.reports.files import write_report
from pytest_knowledge.reports.table import export_facts
from pytest_knowledge.stores.history import HistoryStore, RunMeta, RunWriter
from pytest_knowledge.stores.results_file import update_baselines, write_results

if TYPE_CHECKING:
    from pytest_knowledge.gate.record import Record
    from pytest_knowledge.run.session import KnowledgeSession

WRITE_ERRORS = (KnowledgeError, OSError, SQLAlchemyError)


def _reason(error: BaseException) -> object:
    """The database driver's own error where SQLAlchemy wraps one, else the error."""
    return getattr(error, "orig", None) or error


def _not_written(what: str, error: BaseException) -> str:
    return f"{what} not written: {_reason(error)}"


class BaselinesOutput:
    """``--knowledge-update-baselines``: record every measured case's entry."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_knowledge_finish(self, session: KnowledgeSession) -> None:
        update = update_baselines(session.store, session.records)
        session.written = update.written
        for problem in update.failed:
            session.output_failed(problem)


class FileOutput:
    """One file written when the session finishes (``--knowledge-results``, ``--knowledge-facts``,
    ``--knowledge-report``); a failed write names the output and fails the session."""

    def __init__(self, what: str, path: Path, write: Callable[[KnowledgeSession, Path], object]):
        self.what, self.path, self.write = what, path, write

    def pytest_knowledge_finish(self, session: KnowledgeSession) -> None:
        try:
            self.write(session, self.path)
        except WRITE_ERRORS as error:
            session.output_failed(_not_written(self.what, error))


def results_file(meta: dict[str, Any]) -> Callable[[KnowledgeSession, Path], object]:
    """Every record, for merging shards."""
    return lambda session, path: write_results(path, session.records, meta)


def facts_export(session: KnowledgeSession, path: Path) -> None:
    """Every lost and gained fact."""
    export_facts(path, session.records)


def report(session: KnowledgeSession, path: Path) -> None:
    """HTML or Markdown, headlined with the session's exit status so far."""
    write_report(path, session.records, session.history, exit_status=session.status())
    session.reports_written.append(path)


class HistoryOutput:
    """The run history: the run row at the first record, one transaction per case (an interrupted
    session keeps what ran), closed with the final exit status. A database that fails mid-session
    is reported and the session goes on without it."""

    def __init__(self, store: HistoryStore):
        self.store: HistoryStore | None = store
        self.run: RunWriter | None = None

    def _stop(self, session: KnowledgeSession, what: str, error: SQLAlchemyError) -> None:
        assert self.store is not None
        session.output_failed(f"history {self.store.url}: {what}: {_reason(error)}")
        self.store.close()
        self.store = self.run = None
        session.history = None

    def pytest_knowledge_record(self, session: KnowledgeSession, record: Record) -> None:
        if self.store is None:
            return
        try:
            if self.run is None:
                device = ",".join(session.devices()) or "cpu"
                self.run = self.store.start_run(RunMeta.collect(session.suites.values(), device, session.rootpath))
            self.run.add([record])
        except SQLAlchemyError as error:
            self._stop(session, "stopped recording this run", error)

    @pytest.hookimpl(trylast=True)
    def pytest_knowledge_finish(self, session: KnowledgeSession) -> None:
        if self.store is None:
            return
        if self.run is not None:
            try:
                self.run.finish(session.status())
            except SQLAlchemyError as error:
                self._stop(session, f"run {self.run.id} not closed", error)
                return
        self.store.close()
