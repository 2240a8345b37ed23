"""Trends over runs, computed from plain values (no database needed): step detection and run comparison."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_knowledge.gate.record import CaseIdentity
from pytest_knowledge.suite.tolerance import EPSILON, Tolerance, worsening

DEFAULT_WINDOW = 3
FAILING = ("fail", "error", "crashed")  # statuses marked as failing in trends


@dataclass(frozen=True)
class CasePoint:
    """One case's result in one run."""

    run_id: int
    started_at: dt.datetime
    git_commit: str | None
    value: float | None
    n: int
    status: str
    from_cache: bool


@dataclass(frozen=True)
class StepChange:
    """The recent runs' median is worse than the earlier runs' median by more than the tolerance allows.

    ``earlier_start`` and ``recent_start`` index the series the step was found in.
    """

    earlier: float
    recent: float
    drop: float
    allowed: float
    earlier_start: int
    recent_start: int


def detect_step(values: Sequence[float], higher_is_better: bool, tolerance: Tolerance,
                window: int = DEFAULT_WINDOW) -> StepChange | None:
    """Compare the median of the recent runs with the median of the runs before them.

    The recent window is the last ``window`` values, shrunk to the largest odd size that
    leaves at least one earlier value (an odd window keeps its median robust to a single
    outlier); the earlier window is up to ``window`` values before it. A step is reported
    when the recent median is worse than the earlier one by more than
    ``tolerance.allowed_drop(earlier median)``.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if len(values) < 2:
        return None
    recent_size = min(window, len(values) - 1)
    if recent_size % 2 == 0:
        recent_size -= 1
    earlier_size = min(window, len(values) - recent_size)
    recent_start = len(values) - recent_size
    earlier_start = recent_start - earlier_size
    earlier = statistics.median(values[earlier_start:recent_start])
    recent = statistics.median(values[recent_start:])
    drop = worsening(recent, earlier, higher_is_better)
    allowed = tolerance.allowed_drop(earlier)
    if drop <= allowed + EPSILON:
        return None
    return StepChange(earlier, recent, drop, allowed, earlier_start, recent_start)


@dataclass(frozen=True)
class CaseSeries(CaseIdentity):
    """One case's results over runs, oldest first."""

    tolerance: Tolerance | None
    points: tuple[CasePoint, ...]

    @property
    def measured(self) -> tuple[CasePoint, ...]:
        """The points with a value (errors have none); a ``StepChange`` indexes these."""
        return tuple(p for p in self.points if p.value is not None)

    def step(self, window: int = DEFAULT_WINDOW) -> StepChange | None:
        """A step down over recent runs; without a stored tolerance any worsening counts."""
        values = [p.value for p in self.measured]
        return detect_step(values, self.higher_is_better, self.tolerance or Tolerance(), window)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CaseDelta:
    """One case compared between two runs."""

    suite: str
    case_id: str
    metric: str
    higher_is_better: bool
    before: float | None
    after: float | None
    allowed: float | None
    verdict: str  # regressed, improved, same, error, recovered, changed-metric, added, removed

    @property
    def delta(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before

    @property
    def regressed(self) -> bool:
        return self.verdict in ("regressed", "error")


def row_tolerance(row: Any) -> Tolerance | None:
    if row.tol_abs is None:
        return None
    return Tolerance(row.tol_abs, row.tol_rel, row.tol_min_retention)


def compare_rows(a: Any, b: Any) -> CaseDelta:
    row = b if b is not None else a
    tolerance = row_tolerance(row) or Tolerance()
    before = a.current if a is not None else None
    after = b.current if b is not None else None
    common = dict(suite=row.suite, case_id=row.case_id, metric=row.metric, higher_is_better=row.higher_is_better,
                  before=before, after=after)
    if a is None:
        return CaseDelta(**common, allowed=None, verdict="added")
    if b is None:
        return CaseDelta(**common, allowed=None, verdict="removed")
    if after is None:
        return CaseDelta(**common, allowed=None, verdict="error")
    if before is None:
        return CaseDelta(**common, allowed=None, verdict="recovered")
    if a.metric != b.metric:
        return CaseDelta(**common, allowed=None, verdict="changed-metric")
    allowed = tolerance.allowed_drop(before)
    drop = worsening(after, before, row.higher_is_better)
    verdict = "regressed" if drop > allowed + EPSILON else "improved" if -drop > allowed + EPSILON else "same"
    return CaseDelta(**common, allowed=allowed, verdict=verdict)


# -- the store ---------------------------------------------------------------------------


