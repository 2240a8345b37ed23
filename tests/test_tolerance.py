"""Tolerance arithmetic: properties that must hold for any metric and baseline."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_knowledge.core.errors import SuiteError
from pytest_knowledge.suite.tolerance import (
    Tolerance,
    TolerancePolicy,
    parse_policy,
    retention,
    retention_ok,
    within_baseline,
)

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False)
tolerances = st.builds(
    Tolerance,
    abs=st.floats(min_value=0, max_value=10),
    rel=st.floats(min_value=0, max_value=1),
    min_retention=st.none() | st.floats(min_value=0, max_value=1),
)


@given(values, values, values, tolerances, st.booleans())
def test_better_results_never_fail_when_worse_ones_pass(a, b, baseline, tol, higher):
    better, worse = (max(a, b), min(a, b)) if higher else (min(a, b), max(a, b))
    if within_baseline(worse, baseline, tol, higher):
        assert within_baseline(better, baseline, tol, higher)


@given(values, values, tolerances)
def test_lower_is_better_mirrors_higher_is_better(current, baseline, tol):
    assert within_baseline(current, baseline, tol, True) == within_baseline(-current, -baseline, tol, False)


@given(values, values, tolerances, st.floats(min_value=0, max_value=10))
def test_wider_tolerance_never_turns_a_pass_into_a_fail(current, baseline, tol, extra):
    wider = Tolerance(abs=tol.abs + extra, rel=tol.rel, min_retention=tol.min_retention)
    if within_baseline(current, baseline, tol, True):
        assert within_baseline(current, baseline, wider, True)


@given(positive, positive)
def test_retention_is_symmetric_between_directions(current, dense):
    assert retention(current, dense, True) == pytest.approx(retention(1 / current, 1 / dense, False))


def test_examples_by_hand():
    tol = Tolerance(abs=0.02, rel=0.1)
    assert tol.allowed_drop(0.4) == pytest.approx(0.06)
    assert within_baseline(0.35, 0.4, tol, True)
    assert not within_baseline(0.33, 0.4, tol, True)
    assert within_baseline(10.5, 10.0, Tolerance(rel=0.05), False)  # perplexity up 5%
    assert not within_baseline(10.6, 10.0, Tolerance(rel=0.05), False)
    assert retention_ok(0.36, 0.4, Tolerance(min_retention=0.9), True)
    assert not retention_ok(0.35, 0.4, Tolerance(min_retention=0.9), True)
    assert not retention_ok(12.0, 10.0, Tolerance(min_retention=0.9), False)  # ppl 10 -> 12 keeps 0.83


def test_most_specific_override_wins_key_by_key():
    policy = parse_policy(
        {"default": {"abs": 0.01, "rel": 0.1}, "benchmarks": {"b": {"abs": 0.05}}, "methods": {"m": {"min_retention": 0.9}}},
        "tolerance", {"m", "dense"}, {"b"},
    )
    assert policy.for_case("m", "b") == Tolerance(abs=0.05, rel=0.1, min_retention=0.9)
    assert policy.for_case("dense", "b") == Tolerance(abs=0.05, rel=0.1)
    assert TolerancePolicy().for_case("x", "y") == Tolerance()


@pytest.mark.parametrize(
    "data, key",
    [
        ({"default": {"abs": -1}}, "tolerance.default"),
        ({"default": {"absolute": 1}}, "tolerance.default.absolute"),
        ({"methods": {"nope": {"abs": 1}}}, "tolerance.methods.nope"),
        ({"default": {"min_retention": 2}}, "tolerance.default"),
        ({"per_case": {}}, "tolerance.per_case"),
    ],
)
def test_bad_tolerances_name_the_key(data, key):
    with pytest.raises(SuiteError) as error:
        parse_policy(data, "tolerance", {"m"}, {"b"})
    assert error.value.key == key
