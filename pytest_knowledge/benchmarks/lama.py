"""LAMA cloze probes on the suite's own copy of the LAMA files (never downloaded here).

File parameters may use environment variables (``path: ${LAMA_DIR}/TREx``) and are
resolved when a case runs (see ``paths``), so a suite collects without the data and a
missing copy fails its cases with the download address.

The headline metric is P@1 macro-averaged over relations, LAMA's convention; micro
averages, P@k, MRR and per-relation P@1 go to ``extra`` (see docs/benchmarks.md). An
optional common-vocabulary file drops facts whose object is not in it and, in
first-token mode, ranks only among the vocabulary, as LAMA does; the number of dropped
facts is reported, never silently lost. In candidates mode a fact left without a wrong
candidate is dropped and counted too: with nothing competing it would be a free hit.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from pytest_knowledge.api.models import LoadedModel
from pytest_knowledge.benchmarks.base import (
    BenchmarkResult,
    ClozeOptions,
    digest,
    evaluate_clozes,
    pick_candidates,
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
from pytest_knowledge.benchmarks.scoring import Cloze
from pytest_knowledge.core.errors import KnowledgeError

DATA_URL = "https://dl.fbaipublicfiles.com/LAMA/data.zip"
HOW_TO_GET = (f"The LAMA data: download {DATA_URL} and unzip it; its data/ folder holds relations.jsonl, TREx/, "
              "Google_RE/, ConceptNet/ and Squad/ (point LAMA_DIR at it for the bundled suites)")


@dataclass(frozen=True)
class LamaConfig(ClozeOptions):
    path: str
    relations: tuple[str, ...] = ()
    relations_file: str | None = None
    templates: bool = True
    missing_template: Literal["error", "evidence"] = "error"
    vocab: str | None = None
    limit: int | None = None
    seed: int = 0

    def validate(self) -> str | None:
        for name in ("path", "relations_file", "vocab"):  # existence is checked when a case runs
            problem = path_problem(name, getattr(self, name))
            if problem:
                return problem
        if self.limit is not None and self.limit < 1:
            return "limit >= 1"
        return self.cloze_problem()


def _candidates(examples: list[LamaExample], rng: random.Random,
                size: int | Literal["all"]) -> list[tuple[str, ...]]:
    """Per example, ``size - 1`` (or all) other objects of its relation — never another true
    object of its subject; examples without a named subject share none."""
    objects = sorted({e.object for e in examples})
    true_for: dict[str, set[str]] = defaultdict(set)
    for e in examples:
        true_for[e.subject].add(e.object)
    chosen = []
    for e in examples:
        wrong = [o for o in objects if o != e.object and not (e.subject and o in true_for[e.subject])]
        chosen.append(pick_candidates(wrong, rng, size))
    return chosen


@register_benchmark("lama", LamaConfig)
class LamaBenchmark:
    metric = "p_at_1"
    higher_is_better = True
    version = 2  # results carry ranks and example ids; free candidate-set hits are gone

    def __init__(self, config: LamaConfig):
        self.config = config
        path = data_path(config.path, benchmark="lama", parameter="path", how_to_get=HOW_TO_GET)
        templates_file = (data_path(config.relations_file, benchmark="lama", parameter="relations_file", kind="file",
                                    how_to_get=HOW_TO_GET)
                          if config.relations_file else default_templates(path))
        templates = read_templates(templates_file) if templates_file and config.templates else {}
        vocab = (data_path(config.vocab, benchmark="lama", parameter="vocab", kind="file")
                 if config.vocab else None)
        data = read_lama(path, templates, config.templates, templates_file, config.missing_template == "evidence")
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
        self.no_candidates = 0
        self.clozes: list[Cloze] = []
        self.relations: list[str] = []
        self.subjects: list[str] = []
        self.example_ids: list[str] = []
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
                if config.mode == "candidates" and not options:
                    self.no_candidates += 1
                    continue
                self.clozes.append(Cloze(example.prefix, example.object, example.suffix, options))
                self.relations.append(relation)
                self.subjects.append(example.subject)
                self.example_ids.append(example.id)
        if not self.clozes:
            raise KnowledgeError(f"benchmark lama: no examples left in {path} (the vocabulary filter dropped "
                                 f"{self.filtered}, {self.no_candidates} had no wrong candidate)")

    def data_fingerprint(self) -> str:
        return digest(self.clozes, self.relations, self.vocabulary, self.example_ids)

    def evaluate(self, loaded: LoadedModel) -> BenchmarkResult:
        counts = {"filtered.vocab": float(self.filtered), "skipped.masks": float(self.skipped_masks)}
        if self.config.mode == "candidates":
            counts["excluded.no_candidates"] = float(self.no_candidates)
        return evaluate_clozes(loaded, self.config, self.clozes, self.relations, self.subjects, self.example_ids,
                               self.vocabulary, counts)
