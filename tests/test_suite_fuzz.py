"""Generated suite documents: the loader accepts them or raises SuiteError, nothing else."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_knowledge.core.errors import SuiteError
from pytest_knowledge.suite.parse import parse_suite

scalars = st.none() | st.booleans() | st.integers(-5, 10) | st.floats(allow_nan=True) | st.text(max_size=12)
names = st.sampled_from(["smollm2-135m", "magnitude", "int8_weight", "facts", "rtn", "nm", "x", "", "dense", "a-b"])
keys = st.sampled_from(["name", "method", "benchmark", "scope", "ratios", "limit", "relations", "source", "family",
                        "dtype", "abs", "rel", "min_retention", "significance", "default", "methods", "n", "m"])
values = st.recursive(scalars | names, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=12)
entries = names | st.dictionaries(keys, values, max_size=4)
documents = st.fixed_dictionaries(
    {},
    optional={
        "name": scalars | names,
        "models": st.lists(entries, max_size=3) | scalars,
        "methods": st.lists(entries, max_size=3) | scalars,
        "ratios": st.lists(st.floats(allow_nan=True) | st.integers(-1, 9) | st.text(max_size=3), max_size=4) | scalars,
        "benchmarks": st.lists(entries, max_size=3) | scalars,
        "tolerance": st.dictionaries(st.sampled_from(["default", "methods", "benchmarks", "x"]), values, max_size=3) | scalars,
        "extra": values,
    },
) | values


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_loader_accepts_or_raises_its_own_error(document):
    try:
        suite = parse_suite(document, Path("fuzz.yaml"))
    except SuiteError:
        return
    assert suite.models and suite.benchmarks
    ids = [case.id for case in suite.cases()]
    assert len(ids) == len(set(ids))
