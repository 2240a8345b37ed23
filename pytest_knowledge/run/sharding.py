"""Split a grid across CI jobs (``--knowledge-shard=K/N``) and across xdist workers.

Both splits keep a model's cases together as far as balance allows, because loading a
model costs several cases' worth of time. Assignment depends only on the grid, so every
job and every worker computes the same split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.suite.parse import Case

MODEL_LOAD_COST = 4.0  # in units of one case's evaluation


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as written on the command line
    count: int


def parse_shard(text: str) -> Shard:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise KnowledgeError(f"--knowledge-shard: expected K/N with integers, got {text!r}") from None
    if not 1 <= index <= count:
        raise KnowledgeError(f"--knowledge-shard: expected 1 <= K <= N, got {text!r}")
    return Shard(index, count)


def case_cost(case: Case) -> float:
    """Relative cost: compressed cases also compress and restore the model."""
    return 1.0 if case.method is None else 1.5


def assign_shards(cases: list[Case], count: int) -> list[int]:
    """0-based shard of each case: greedy longest-first, charging a model load the first
    time a shard gets one of that model's cases."""
    loads = [0.0] * count
    models: list[set[str]] = [set() for _ in range(count)]
    shard_of = [0] * len(cases)
    order = sorted(range(len(cases)), key=lambda i: (cases[i].model.source, -case_cost(cases[i]), cases[i].id))
    for i in order:
        case = cases[i]
        costs = [loads[s] + case_cost(case) + (0 if case.model.source in models[s] else MODEL_LOAD_COST)
                 for s in range(count)]
        best = min(range(count), key=lambda s: (costs[s], s))
        loads[best] = costs[best]
        models[best].add(case.model.source)
        shard_of[i] = best
    return shard_of


def worker_groups(cases: list[Case], workers: int, per_group: int = 4) -> list[str]:
    """xdist group name per case: a model's cases split into at most ``workers`` groups of
    about ``per_group`` or more, so small grids load a model once and large ones use every worker."""
    names = []
    by_model: dict[str, list[int]] = {}
    for i, case in enumerate(cases):
        by_model.setdefault(case.model.name, []).append(i)
    names = [""] * len(cases)
    for model, indices in by_model.items():
        groups = max(1, min(workers, math.ceil(len(indices) / per_group)))
        for position, i in enumerate(indices):
            names[i] = f"{model}#{position % groups}"
    return names
