"""Bisection for the largest safe ratio, on synthetic monotone curves."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pytest_knowledge.engine.cache import ResultCache
from pytest_knowledge.engine.engine import Engine
from pytest_knowledge.engine.ratio_search import find_max_ratio
from pytest_knowledge.methods.base import BITS, SPARSITY
from pytest_knowledge.suite.parse import parse_suite


def test_grids_run_from_weakest_to_strongest():
    assert SPARSITY.grid(0.25) == [0.25, 0.5, 0.75]
    assert BITS.grid(1) == [8, 7, 6, 5, 4, 3, 2]


@given(st.integers(1, 40), st.data())
def test_finds_the_last_passing_point_with_few_probes(size, data):
    grid = [round(0.01 * (i + 1), 2) for i in range(size)]
    knee = data.draw(st.integers(-1, size - 1))  # index of the last passing ratio; -1: none pass
    calls = []

    def probe(ratio):
        calls.append(ratio)
        passed = grid.index(ratio) <= knee
        return (1.0 if passed else 0.0), passed

    result = find_max_ratio(grid, probe)
    assert result.safe_ratio == (grid[knee] if knee >= 0 else None)
    assert len(calls) == len(set(calls)) <= 2 + max(1, size).bit_length()
    assert [p.ratio for p in result.points] == sorted(calls, key=grid.index)


def test_search_finds_the_measured_knee_of_the_bert_fixture(pytester: pytest.Pytester, monkeypatch):
    """The fixture knows its facts almost perfectly until heavy pruning: the curve is
    measured first at every grid point, then the search must land within one step of its knee."""
    suite_text = (
        "name: knee\nmodels: [tiny-bert-facts]\nmethods: [{name: prune, method: magnitude}]\nratios: [0.1]\n"
        "benchmarks: [{name: caps, benchmark: facts, relations: [capital]}]\ntolerance: {default: {abs: 0.1}}\n"
    )
    pytester.makefile(".yaml", suite=suite_text)
    template = parse_suite(yaml.safe_load(suite_text), Path("suite.yaml")).cases()[1]
    engine = Engine(ResultCache(pytester.path / "curve-cache", mode="off"))
    grid = SPARSITY.grid(0.1)
    curve = {r: engine.run(replace(template, ratio=r)) for r in grid}
    passes = [curve[r].result.value >= curve[r].dense.value - 0.1 - 1e-9 for r in grid]
    prefix = passes.index(False) if False in passes else len(grid)  # the curve's monotone passing part
    knee = grid[prefix - 1] if prefix else None
    values = {r: c.result.value for r, c in curve.items()}
    assert knee is not None and 0.3 <= knee <= 0.9, values  # a real knee inside the grid
    result = pytester.runpytest("--knowledge-suite=suite.yaml", "--knowledge-find-max-ratio",
                                "--knowledge-search-resolution=0.1", "-k", "max_ratio")
    result.assert_outcomes(passed=1, deselected=2)
    line = next(out for out in result.outlines if out.startswith("tiny-bert-facts  prune"))
    found = float(line.split()[3])
    assert abs(found - knee) <= 0.1 + 1e-9, (found, knee, values)
