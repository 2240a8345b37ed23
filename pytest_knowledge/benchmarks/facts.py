"""Built-in real-facts probe: T-REx-style relations built from the ``countryinfo`` package.

Works offline (the facts ship with a PyPI package) and is deterministic: facts are
sorted by subject, then a seeded shuffle picks ``limit`` of them. The headline metric is
P@1 — the share of facts whose object the model ranks first (see docs/benchmarks.md).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Literal

from ..errors import KnowledgeError
from ..models import LoadedModel
from ..scoring import Cloze, cloze_ranks, rank_metrics
from .base import BenchmarkResult, digest, encode_outcomes, register_benchmark


@dataclass(frozen=True)
class Fact:
    subject: str
    object: str


@dataclass(frozen=True)
class Relation:
    """A LAMA-style relation: Wikidata property id, template with [X] and [Y], fact source."""

    pid: str
    template: str
    facts: Callable[[int], list[Fact]]


def _countries(min_population: int) -> list[dict]:
    import countryinfo

    infos = [c.info() for c in countryinfo.all_countries()]
    return sorted((i for i in infos if (i.get("population") or 0) >= min_population), key=lambda i: i["name"])


def _capitals(min_population: int) -> list[Fact]:
    facts = []
    for info in _countries(min_population):
        capital = info.get("capital")
        if isinstance(capital, list):
            capital = capital[0] if capital else None
        if capital:
            facts.append(Fact(info["name"], capital))
    return facts


RELATIONS: dict[str, Relation] = {
    "capital": Relation("P36", "The capital of [X] is [Y].", _capitals),
}


@dataclass(frozen=True)
class FactsConfig:
    relations: tuple[str, ...] = ("capital",)
    min_population: int = 3_000_000
    limit: int | None = None
    seed: int = 0
    mode: Literal["first_token", "candidates"] = "first_token"
    num_candidates: int = 10
    k: int = 10
    batch_size: int = 32

    def validate(self) -> str | None:
        unknown = [r for r in self.relations if r not in RELATIONS]
        if unknown or not self.relations:
            return f"relations from {', '.join(sorted(RELATIONS))}"
        if self.limit is not None and self.limit < 1:
            return "limit >= 1"
        if self.num_candidates < 2 or self.k < 1 or self.batch_size < 1:
            return "num_candidates >= 2, k >= 1, batch_size >= 1"
        return None


def _cloze(template: str, fact: Fact, candidates: tuple[str, ...]) -> Cloze:
    prefix, suffix = template.replace("[X]", fact.subject).split("[Y]")
    return Cloze(prefix, fact.object, suffix, candidates)


@register_benchmark("facts", FactsConfig)
class FactsBenchmark:
    metric = "p_at_1"
    higher_is_better = True

    def __init__(self, config: FactsConfig):
        self.config = config
        self.clozes: list[Cloze] = []
        self.keys: list[str] = []
        for name in config.relations:
            relation = RELATIONS[name]
            facts = relation.facts(config.min_population)
            if not facts:
                raise KnowledgeError(f"benchmark facts: relation {name!r} has no facts with min_population {config.min_population}")
            rng = random.Random(f"{config.seed}-{name}")
            picked = rng.sample(facts, min(config.limit or len(facts), len(facts)))
            objects = sorted({f.object for f in facts})
            for fact in picked:
                others = [o for o in objects if o != fact.object]
                candidates = tuple(rng.sample(others, min(config.num_candidates - 1, len(others))))
                self.clozes.append(_cloze(relation.template, fact, candidates))
                self.keys.append(f"{relation.pid}:{fact.subject}")

    def data_fingerprint(self) -> str:
        return digest(self.clozes)

    def evaluate(self, loaded: LoadedModel) -> BenchmarkResult:
        ranks = cloze_ranks(loaded, self.clozes, self.config.mode, self.config.batch_size)
        metrics = rank_metrics(ranks, self.config.k)
        return BenchmarkResult(
            metric=self.metric,
            value=metrics.pop("p_at_1"),
            n=len(ranks),
            outcomes=encode_outcomes([r == 1 for r in ranks]),
            extra=metrics,
        )
