"""The record of one case: what every output stores and shows, and what "the same measurement" means.

A ``Record`` is a plain, dict-friendly summary that travels from an xdist worker to the
controller; baselines, results files, the history and the reports are all written from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_knowledge.suite.parse import Case

PASSING = ("pass", "improved", "new", "updated", "unchanged")
SKIPPED = "skipped"
# What a stored entry measured; dates and library versions aside.
MEASUREMENT_KEYS = ("metric", "value", "n", "outcomes", "ranks", "example_ids", "fingerprint", "data_fingerprint")


@dataclass(frozen=True)
class CaseIdentity:
    """Which case a result belongs to and how its metric reads: shared by a record and a case's history."""

    suite: str
    case_id: str
    model: str
    method: str
    ratio: float | None
    benchmark: str
    metric: str
    higher_is_better: bool


@dataclass(frozen=True)
class Record(CaseIdentity):
    """One case's verdict with everything every output stores about it."""

    n: int
    dense: float | None
    baseline: float | None
    current: float | None
    delta: float | None
    retention: float | None
    status: str
    message: str
    method_report: str
    seconds: float
    entry: dict[str, Any] | None
    from_cache: bool = False
    p_value: float | None = None
    agreement: float | None = None  # top-1 agreement with the dense model
    kl: float | None = None  # mean KL(dense || compressed), nats
    lost: list[dict[str, str]] = field(default_factory=list)  # examples known by the reference, lost now
    gained: list[dict[str, str]] = field(default_factory=list)
    compared_with: str = ""  # what lost/gained refer to: "baseline", "dense" or "dense <reference model>"
    reference: str | None = None  # the model whose dense result "dense" is, when not this case's own

    @property
    def passed(self) -> bool:
        return self.status in PASSING

    @property
    def failed(self) -> bool:
        """Neither passed nor skipped (a case this machine cannot run is neither)."""
        return not self.passed and self.status != SKIPPED

    def measures_the_same_as(self, other: Record) -> bool:
        """Same value and status, and entries that are ``same_measurement`` (a shard merge's test)."""
        return (self.current, self.status) == (other.current, other.status) and same_measurement(self.entry, other.entry)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def same_measurement(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two baseline entries hold the same measurement. The one definition behind a baseline
    update's "unchanged", a shard merge's conflicts and ``baselines diff``'s "same"."""
    if a is None or b is None:
        return a is b
    return all(a.get(k) == b.get(k) for k in MEASUREMENT_KEYS)


def error_record(case: Case, message: str, status: str = "error") -> Record:
    """A case that could not be measured (model failed to load, NaN output, ...), or was skipped."""
    return Record(
        suite=case.suite, case_id=case.id, model=case.model.name, method=case.method_name, ratio=case.ratio,
        benchmark=case.benchmark.name, metric="", higher_is_better=True, n=0, dense=None, baseline=None,
        current=None, delta=None, retention=None, status=status, message=message, method_report="",
        seconds=0.0, entry=None,
    )
