"""What a benchmark is: a frozen config dataclass plus a class that evaluates a model.

The engine builds one instance per config and reuses it for every case, so data is
read and prepared once per process. Results carry per-example outcomes, ranks and
stable example ids so baselines can say which examples changed, not only by how much,
and anyone can recompute P@k and MRR outside this project (docs/benchmarks.md).
"""

from __future__ import annotations

import importlib.metadata as md
import platform
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal, Protocol, Sequence

from pytest_knowledge.api.models import LoadedModel
from pytest_knowledge.api.registry import Registry
from pytest_knowledge.benchmarks.scoring import (
    Bos,
    Cloze,
    cloze_predictions,
    grouped_rank_metrics,
    object_pieces,
)
from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.core.fingerprints import digest, file_sha256


@dataclass(frozen=True)
class BenchmarkResult:
    """One measurement: the headline metric plus secondary metrics and per-example outcomes,
    ranks (1 = top) and ids, all in the benchmark's example order."""

    metric: str
    value: float
    n: int
    higher_is_better: bool = True
    outcomes: str | None = None
    extra: dict[str, float] = field(default_factory=dict)
    examples: tuple[dict[str, str], ...] = ()  # per example: relation, subject, expected, answer
    ranks: tuple[int, ...] | None = None
    example_ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.outcomes is not None and len(self.outcomes) != self.n:
            raise ValueError(f"{len(self.outcomes)} outcomes for {self.n} examples")
        for name in ("ranks", "example_ids"):  # lists when read back from JSON
            values = getattr(self, name)
            if values is not None:
                object.__setattr__(self, name, tuple(values))
                if len(values) != self.n:
                    raise ValueError(f"{len(values)} {name} for {self.n} examples")


@dataclass(frozen=True, kw_only=True)
class ClozeOptions:
    """How a cloze probe (facts, lama) scores its clozes; see docs/benchmarks.md."""

    mode: Literal["first_token", "candidates"] = "first_token"
    num_candidates: int | Literal["all"] = 10
    k: int = 10
    batch_size: int = 32
    bos: Bos = "auto"
    multi_token: Literal["first_piece", "skip"] = "first_piece"

    def cloze_problem(self) -> str | None:
        if self.num_candidates != "all" and self.num_candidates < 2:
            return "num_candidates >= 2 or 'all'"
        if self.k < 1 or self.batch_size < 1:
            return "k >= 1, batch_size >= 1"
        if self.multi_token == "skip" and self.mode != "first_token":
            return "multi_token: skip with mode first_token (candidates mode scores every token of an object)"
        return None


def pick_candidates(wrong: Sequence[str], rng: Any, num_candidates: int | Literal["all"]) -> tuple[str, ...]:
    """``num_candidates - 1`` of the ``wrong`` objects, seeded, or all of them."""
    if num_candidates == "all":
        return tuple(wrong)
    return tuple(rng.sample(list(wrong), min(num_candidates - 1, len(wrong))))


def evaluate_clozes(loaded: LoadedModel, options: ClozeOptions, clozes: list[Cloze], relations: list[str],
                    subjects: list[str], ids: list[str], vocabulary: Sequence[str] | None = None,
                    counts: dict[str, float] | None = None) -> BenchmarkResult:
    """Score a cloze probe: macro P@1 headline, rank metrics, ranks, outcomes and ids, what
    each example asked and what the model answered (for lists of lost facts), and in
    ``extra`` what shaped the numbers — candidate-set sizes, objects judged by their first
    token or dropped for being several tokens."""
    extra = dict(counts or {})
    keep = list(range(len(clozes)))
    if options.mode == "first_token":
        pieces = object_pieces(loaded, clozes, options.bos)
        for relation, count in sorted(Counter(r for r, p in zip(relations, pieces) if p > 1).items()):
            extra[f"multi_token.{relation}"] = float(count)
        if options.multi_token == "skip":
            keep = [i for i in keep if pieces[i] == 1]
            extra["skipped.multi_token"] = float(len(clozes) - len(keep))
            if not keep:
                raise KnowledgeError(f"no cloze left for model {loaded.name!r}: every gold object is several tokens "
                                     "long and multi_token is skip (expected some single-token objects)")
    else:
        sizes: dict[str, list[int]] = defaultdict(list)
        for relation, cloze in zip(relations, clozes):
            sizes[relation].append(len(cloze.options) - len(cloze.answers))
        for relation, values in sorted(sizes.items()):
            extra[f"candidates.{relation}"] = sum(values) / len(values)
            extra[f"candidates_min.{relation}"] = float(min(values))
    clozes, relations, subjects, ids = ([seq[i] for i in keep] for seq in (clozes, relations, subjects, ids))
    vocabulary = vocabulary if options.mode == "first_token" else None
    predictions = cloze_predictions(loaded, clozes, options.mode, options.batch_size, vocabulary, options.bos)
    ranks = predictions.ranks
    metrics = {**grouped_rank_metrics(ranks, relations, options.k), **extra}
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
        ranks=tuple(ranks),
        example_ids=tuple(ids),
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
