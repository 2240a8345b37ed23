"""pytest hooks only; each delegates to the ``KnowledgeSession`` stored on the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .errors import KnowledgeError
from .session import KnowledgeSession

SESSION = pytest.StashKey[KnowledgeSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("knowledge", "knowledge regression under compression")
    group.addoption("--knowledge-suite", nargs="?", const="default", default=None, metavar="PATH",
                    help="run a suite file, or every suite in a folder (no value: the default suite)")
    group.addoption("--knowledge-update-baselines", action="store_true",
                    help="record new and changed results as baselines (cases pass)")
    group.addoption("--knowledge-baselines", default=None, metavar="DIR",
                    help="baseline folder (default: ini knowledge_baselines, else baselines/)")
    parser.addini("knowledge_suite", "suite file or folder used by a bare --knowledge-suite", default="")
    parser.addini("knowledge_baselines", "baseline folder, relative to rootdir", default="baselines")


class _ReportHooks:
    """Hooks whose arguments carry no config, bound to the session at configure time."""

    def __init__(self, session: KnowledgeSession):
        self.session = session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.session.on_report(report)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("knowledge_suite") is None:
        return
    try:
        session = KnowledgeSession(config)
        session.load_all()
    except KnowledgeError as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[SESSION] = session
    config.pluginmanager.register(_ReportHooks(session), "knowledge-reports")
    session.rewrite_args()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    session = parent.config.stash.get(SESSION, None)
    return session.collect_file(file_path, parent) if session else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SESSION in config.stash:
        config.stash[SESSION].order(items)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if SESSION in session.config.stash:
        session.config.stash[SESSION].finish()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if SESSION in config.stash:
        config.stash[SESSION].summary(terminalreporter)
