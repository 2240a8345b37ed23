"""Shards and worker groups: every case exactly once, balanced, and the same on every host."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.run.sharding import (
    MODEL_LOAD_COST,
    assign_shards,
    case_cost,
    parse_shard,
    worker_groups,
)
from pytest_knowledge.suite.parse import parse_suite


def grid(models: int, ratios: int, benchmarks: int = 1):
    data = {
        "models": [{"name": f"m{i}", "source": f"src{i}"} for i in range(models)],
        "methods": [{"name": "p", "method": "magnitude"}, {"name": "q", "method": "int8_weight"}],
        "ratios": [round(0.05 * (i + 1), 2) for i in range(ratios)],
        "benchmarks": [{"name": f"b{i}", "benchmark": "facts", "limit": 3} for i in range(benchmarks)],
    }
    return parse_suite(data, Path("s.yaml")).cases()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 3), st.integers(1, 5))
def test_shards_partition_the_grid_and_stay_balanced(models, ratios, benchmarks, count):
    cases = grid(models, ratios, benchmarks)
    shards = assign_shards(cases, count)
    assert shards == assign_shards(list(cases), count)  # deterministic
    assert len(shards) == len(cases) and set(shards) <= set(range(count))
    loads = [0.0] * count
    for shard in range(count):
        mine = [c for c, s in zip(cases, shards) if s == shard]
        loads[shard] = sum(map(case_cost, mine)) + MODEL_LOAD_COST * len({c.model.source for c in mine})
    if len(cases) >= count:
        biggest = max(map(case_cost, cases)) + MODEL_LOAD_COST
        assert max(loads) - min(loads) <= biggest


def test_shard_syntax():
    assert parse_shard("2/3").index == 2
    for bad in ("0/3", "4/3", "a/b", "3"):
        with pytest.raises(KnowledgeError, match="--knowledge-shard"):
            parse_shard(bad)


def test_worker_groups_keep_small_grids_on_one_worker_and_split_large_ones():
    small = grid(1, 2)  # 4 cases
    assert set(worker_groups(small, workers=2)) == {"m0#0"}
    large = grid(1, 7)  # 9 cases
    groups = worker_groups(large, workers=2)
    assert set(groups) == {"m0#0", "m0#1"}
    assert abs(groups.count("m0#0") - groups.count("m0#1")) <= 1
    two_models = grid(2, 1)
    assert {g.split("#")[0] for g in worker_groups(two_models, workers=4)} == {"m0", "m1"}
