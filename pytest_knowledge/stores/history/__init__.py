"""Run history: every knowledge session's results, kept in one SQL database (see ``store``).

``schema`` holds the tables, ``run_meta`` what is recorded about a run, ``drift`` the trend
analysis that needs no database, ``store`` the reading and writing.
"""

from pytest_knowledge.stores.history.drift import (
    DEFAULT_WINDOW,
    FAILING,
    CaseDelta,
    CasePoint,
    CaseSeries,
    StepChange,
    detect_step,
)
from pytest_knowledge.stores.history.run_meta import RunMeta, git_state
from pytest_knowledge.stores.history.store import (
    DEFAULT_PATH,
    HistoryError,
    HistoryStore,
    RunInfo,
    RunWriter,
    history_url,
)

__all__ = [
    "DEFAULT_PATH", "DEFAULT_WINDOW", "FAILING", "CaseDelta", "CasePoint", "CaseSeries", "HistoryError",
    "HistoryStore", "RunInfo", "RunMeta", "RunWriter", "StepChange", "detect_step", "git_state", "history_url",
]
