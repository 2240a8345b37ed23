"""LAMA cloze probes on the suite's own copy of the LAMA files (never downloaded here).

File parameters may use environment variables (``path: ${LAMA_DIR}/TREx``) and are
resolved when a case runs (see ``paths``), so a suite collects without the data and a
missing copy fails its cases with the download address.

The headline metric is P@1 macro-averaged over relations, LAMA's convention; micro
averages, P@k, MRR and per-relation P@1 go to ``extra`` (see docs/benchmarks.md). An
optional common-vocabulary file drops facts whose object is not in it and, in
first-token mode, ranks only among the vocabulary, as LAMA does; the number of dropped
facts is reported, never silently lost.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from pytest_knowledge.api.models import LoadedModel
from pytest_knowledge.benchmarks.base import (
    BenchmarkResult,
    cloze_result,
    digest,
    register_benchmark,
)
from pytest_knowledge.benchmarks.lama_files import (
    LamaExample,
    default_templates,
    read_lama,
    read_templates,
    read_vocabulary,
)
from pytest_knowledge.benchmarks.paths import data_path, path_problem
from pytest_knowledge.benchmarks.scoring import Cloze, cloze_predictions
from pytest_knowledge.core.errors import KnowledgeError

DATA_URL = "https://dl.fbaipublicfiles.com/LAMA/data.zip"
HOW_TO_GET = (f"The LAMA data: download {DATA_URL} and unzip it; its data/ folder holds relations.jsonl, TREx/, "
              "Google_RE/, ConceptNet/ and Squad/ (point LAMA_DIR at it for the bundled suites)")


@dataclass(frozen=True)
class LamaConfig:
    path: str
    relations: tuple[str, ...] = ()
    relations_file: str | None = None
    templates: bool = True
    vocab: str | None = None
    limit: int | None = None
    seed: int = 0
    mode: Literal["first_token", "candidates"] = "first_token"
    num_candidates: int = 10
    k: int = 10
    batch_size: int = 32

    def validate(self) -> str | None:
        for name in ("path", "relations_file", "vocab"):  # existence is checked when a case runs
            problem = path_problem(name, getattr(self, name))
            if problem:
                return problem
        if self.limit is not None and self.limit < 1:
            return "limit >= 1"
        if self.num_candidates < 2 or self.k < 1 or self.batch_size < 1:
            return "num_candidates >= 2, k >= 1, batch_size >= 1"
        return None


def _candidates(examples: list[LamaExample], rng: random.Random, size: int) -> list[tuple[str, ...]]:
    """Per example, ``size - 1`` other objects of its relation — never another true object of its subject."""
    objects = sorted({e.object for e in examples})
    true_for: dict[str, set[str]] = defaultdict(set)
    for e in examples:
        true_for[e.subject].add(e.object)
    chosen = []
    for e in examples:
        wrong = [o for o in objects if o != e.object and not (e.subject and o in true_for[e.subject])]
        chosen.append(tuple(rng.sample(wrong, min(size - 1, len(wrong)))))
    return chosen


@register_benchmark("lama", LamaConfig)
class LamaBenchmark:
    metric = "p_at_1"
    higher_is_better = True

    def __init__(self, config: LamaConfig):
        self.config = config
        path = data_path(config.path, benchmark="lama", parameter="path", how_to_get=HOW_TO_GET)
        templates_file = (data_path(config.relations_file, benchmark="lama", parameter="relations_file", kind="file",
                                    how_to_get=HOW_TO_GET)
                          if config.relations_file else default_templates(path))
        templates = read_templates(templates_file) if templates_file and config.templates else {}
        vocab = (data_path(config.vocab, benchmark="lama", parameter="vocab", kind="file")
                 if config.vocab else None)
        data = read_lama(path, templates, config.templates)
        self.skipped_masks = data.skipped_masks
        self.vocabulary = read_vocabulary(vocab) if vocab else None
        by_relation: dict[str, list[LamaExample]] = defaultdict(list)
        for example in data.examples:
            by_relation[example.relation].append(example)
        unknown = [r for r in config.relations if r not in by_relation]
        if unknown:
            found = ", ".join(sorted(by_relation))
            raise KnowledgeError(f"benchmark lama: relations {unknown} are not in {path} (found: {found})")
        kept = set(self.vocabulary or ())
        self.filtered = 0
        self.clozes: list[Cloze] = []
        self.relations: list[str] = []
        self.subjects: list[str] = []
        for relation in sorted(config.relations or by_relation):
            examples = by_relation[relation]
            if self.vocabulary is not None:
                self.filtered += sum(e.object not in kept for e in examples)
                examples = [e for e in examples if e.object in kept]
            if not examples:
                continue
            rng = random.Random(f"{config.seed}-{relation}")
            if config.limit is not None and config.limit < len(examples):
                examples = [examples[i] for i in sorted(rng.sample(range(len(examples)), config.limit))]
            candidates = (_candidates(examples, rng, config.num_candidates) if config.mode == "candidates"
                          else [()] * len(examples))
            for example, options in zip(examples, candidates):
                self.clozes.append(Cloze(example.prefix, example.object, example.suffix, options))
                self.relations.append(relation)
                self.subjects.append(example.subject)
        if not self.clozes:
            raise KnowledgeError(f"benchmark lama: no examples left in {path} "
                                 f"(the vocabulary filter dropped {self.filtered})")

    def data_fingerprint(self) -> str:
        return digest(self.clozes, self.relations, self.vocabulary)

    def evaluate(self, loaded: LoadedModel) -> BenchmarkResult:
        restrict = self.vocabulary if self.config.mode == "first_token" else None
        predictions = cloze_predictions(loaded, self.clozes, self.config.mode, self.config.batch_size,
                                        vocabulary=restrict)
        counts = {"filtered.vocab": float(self.filtered), "skipped.masks": float(self.skipped_masks)}
        return cloze_result(predictions, self.clozes, self.relations, self.subjects, self.config.k, counts)
