"""pytest hooks only; each delegates to the ``KnowledgeSession`` stored on the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.run.session import KnowledgeSession

SESSION = pytest.StashKey[KnowledgeSession]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_knowledge.run import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("knowledge", "knowledge regression under compression")
    group.addoption("--knowledge-suite", nargs="?", const="default", default=None, metavar="PATH",
                    help="run a suite file, or every suite in a folder (no value: the default suite)")
    group.addoption("--knowledge-update-baselines", action="store_true",
                    help="record new and changed results as baselines (cases pass)")
    group.addoption("--knowledge-baselines", default=None, metavar="DIR",
                    help="baseline folder (default: ini knowledge_baselines, else baselines/)")
    group.addoption("--knowledge-cache", default=None, metavar="DIR",
                    help="result cache folder (default: ini knowledge_cache, else .knowledge/cache)")
    group.addoption("--knowledge-no-cache", action="store_true", help="neither read nor write the result cache")
    group.addoption("--knowledge-refresh-cache", action="store_true",
                    help="recompute every case and overwrite its cached result")
    group.addoption("--knowledge-shard", default=None, metavar="K/N",
                    help="run the K-th of N cost-balanced shares of the grid (for split CI jobs)")
    group.addoption("--knowledge-devices", default=None, metavar="IDS",
                    help="accelerators xdist workers share, e.g. 0,1 (default: CUDA_VISIBLE_DEVICES or all)")
    group.addoption("--knowledge-results", default=None, metavar="PATH",
                    help="write every case's record to this JSON file (for merging shards)")
    group.addoption("--knowledge-history", default=None, metavar="URL",
                    help="SQLAlchemy URL or SQLite path of the run history (default .knowledge/history.db)")
    group.addoption("--knowledge-no-history", action="store_true", help="do not record this session in the history")
    group.addoption("--knowledge-report", action="append", default=None, metavar="PATH",
                    help="write a report: .html (self-contained, with plots) or .md (pull-request summary); repeatable")
    group.addoption("--knowledge-find-max-ratio", action="store_true",
                    help="also bisect each method's ratio for the largest one that passes the tolerance against dense")
    group.addoption("--knowledge-search-resolution", type=float, default=0.05, metavar="STEP",
                    help="ratio grid step of --knowledge-find-max-ratio (default 0.05; whole bits for bit widths)")
    group.addoption("--knowledge-facts", default=None, metavar="PATH",
                    help="export every case's lost and gained facts to PATH (.csv or .json)")
    group.addoption("--knowledge-export", default=None, metavar="DIR",
                    help="save each computed compressed case's model to DIR/<suite>/<case id> (safetensors, "
                         "tokenizer, knowledge-case.json) to ship or gate it again; such cases bypass the cache")
    parser.addini("knowledge_cache", "result cache folder, relative to rootdir", default=".knowledge/cache")
    parser.addini("knowledge_suite", "suite file or folder used by a bare --knowledge-suite", default="")
    parser.addini("knowledge_baselines", "baseline folder, relative to rootdir", default="baselines")


class _ReportHooks:
    """Hooks whose arguments carry no config, bound to the session at configure time."""

    def __init__(self, session: KnowledgeSession):
        self.session = session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.session.on_report(report)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        self.session.worker_finished(getattr(node, "workeroutput", None) or {})


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("knowledge_suite") is None:
        return
    try:
        session = KnowledgeSession(config)
        session.load_all()
        session.open_history()
    except KnowledgeError as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[SESSION] = session
    config.pluginmanager.register(_ReportHooks(session), "knowledge-reports")
    session.register_outputs()
    session.rewrite_args()
    if session.is_worker:
        session.configure_worker()
    else:
        session.use_loadgroup()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    session = node.config.stash.get(SESSION, None)
    if session:
        session.total = max(session.total, len(ids))  # the controller does not collect under xdist


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    session = node.config.stash.get(SESSION, None)
    if session:
        session.configure_node(node.workerinput)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if SESSION in config.stash and config.getvalue("dist") == "loadgroup":
        from pytest_knowledge.run.scheduling import ModelGroupScheduling

        return ModelGroupScheduling(config, log)
    return None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    session = parent.config.stash.get(SESSION, None)
    return session.collect_file(file_path, parent) if session else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SESSION in config.stash:
        config.stash[SESSION].order(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    if SESSION in session.config.stash:
        session.config.stash[SESSION].collected(session.items)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if SESSION in session.config.stash:
        session.exitstatus = session.config.stash[SESSION].finish(session.exitstatus)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if SESSION in config.stash:
        config.stash[SESSION].summary(terminalreporter)
