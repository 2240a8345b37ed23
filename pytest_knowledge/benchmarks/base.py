"""What a benchmark is: a frozen config dataclass plus a class that evaluates a model.

The engine builds one instance per config and reuses it for every case, so data is
read and prepared once per process. Results carry per-example outcomes so baselines
can say which examples changed, not only by how much.
"""

from __future__ import annotations

import importlib.metadata as md
import platform
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol

from pytest_knowledge.api.models import LoadedModel
from pytest_knowledge.api.registry import Registry
from pytest_knowledge.benchmarks.scoring import Cloze, Predictions, grouped_rank_metrics
from pytest_knowledge.core.fingerprints import digest, file_sha256


@dataclass(frozen=True)
class BenchmarkResult:
    """One measurement: the headline metric plus secondary metrics and per-example outcomes."""

    metric: str
    value: float
    n: int
    higher_is_better: bool = True
    outcomes: str | None = None
    extra: dict[str, float] = field(default_factory=dict)
    examples: tuple[dict[str, str], ...] = ()  # per example: relation, subject, expected, answer

    def __post_init__(self) -> None:
        if self.outcomes is not None and len(self.outcomes) != self.n:
            raise ValueError(f"{len(self.outcomes)} outcomes for {self.n} examples")


def cloze_result(predictions: Predictions, clozes: list[Cloze], relations: list[str], subjects: list[str],
                 k: int, extra: dict[str, float] | None = None) -> BenchmarkResult:
    """The result of a cloze probe: macro P@1 headline, rank metrics, outcomes, and what
    each example asked and what the model answered (for lists of lost facts)."""
    ranks = predictions.ranks
    metrics = {**grouped_rank_metrics(ranks, relations, k), **(extra or {})}
    examples = tuple(
        {"relation": r, "subject": s, "expected": c.answer, "answer": a}
        for r, s, c, a in zip(relations, subjects, clozes, predictions.answers, strict=True)
    )
    return BenchmarkResult(
        metric="p_at_1",
        value=metrics.pop("p_at_1"),
        n=len(ranks),
        outcomes=encode_outcomes([r == 1 for r in ranks]),
        extra=metrics,
        examples=examples,
    )


def encode_outcomes(correct: list[bool]) -> str:
    """Per-example outcomes as a compact '0'/'1' string, in the benchmark's example order."""
    return "".join("1" if c else "0" for c in correct)


class Benchmark(Protocol):
    metric: ClassVar[str]
    higher_is_better: ClassVar[bool]

    def __init__(self, config: Any) -> None: ...

    def data_fingerprint(self) -> str:
        """Hash of the examples, so results on different data are never compared."""
        ...

    def evaluate(self, loaded: LoadedModel) -> BenchmarkResult: ...


@dataclass(frozen=True)
class BenchmarkType:
    name: str
    config: type
    factory: Callable[[Any], Benchmark]


BENCHMARKS: Registry[BenchmarkType] = Registry("benchmark")


def register_benchmark(name: str, config: type) -> Callable[[type], type]:
    """Class decorator: make the benchmark class available as ``name`` in suites."""

    def wrap(cls: type) -> type:
        BENCHMARKS.add(name, BenchmarkType(name, config, cls))
        return cls

    return wrap


def inputs_fingerprint(sources: tuple[str, ...], packages: tuple[str, ...], *parts: object) -> str:
    """Fingerprint of what data generated from installed packages is a function of: the
    generating modules' source, those packages' versions, the Python version and
    ``parts`` (the config) — known without generating anything, so it can key a
    remembered digest of the data itself (see ``memo``)."""
    versions = []
    for package in packages:
        try:
            versions.append((package, md.version(package)))
        except md.PackageNotFoundError:
            versions.append((package, None))
    return digest([file_sha256(s) for s in sources], versions, platform.python_version(), parts)
