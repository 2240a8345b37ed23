"""Suite parsing and grid expansion, without loading any model."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pytest_knowledge.core.errors import SuiteError
from pytest_knowledge.suite.parse import format_ratio, load_suite, parse_suite

BASE = {
    "models": ["smollm2-135m"],
    "methods": [{"name": "prune", "method": "magnitude", "scope": "ffn"}, {"name": "q8", "method": "int8_weight"}],
    "ratios": [0.25, 0.5],
    "benchmarks": [{"name": "caps", "benchmark": "facts", "limit": 5}],
}


def test_grid_has_dense_reference_and_ratio_free_methods_once():
    ids = [c.id for c in parse_suite(BASE, Path("s.yaml")).cases()]
    assert ids == [
        "smollm2-135m-dense-caps",
        "smollm2-135m-prune-0.25-caps",
        "smollm2-135m-prune-0.50-caps",
        "smollm2-135m-q8-caps",
    ]


def test_method_ratios_override_suite_ratios_and_pipelines_get_their_own_id():
    data = dict(BASE, methods=[
        {"name": "prune", "method": "magnitude", "ratios": [0.9]},
        {"name": "prune_q8", "method": [{"method": "magnitude", "scope": "ffn"}, "int8_weight"]},
    ])
    suite = parse_suite(data, Path("s.yaml"))
    assert [c.id for c in suite.cases()][1:] == ["smollm2-135m-prune-0.90-caps", "smollm2-135m-prune_q8-0.25-caps", "smollm2-135m-prune_q8-0.50-caps"]
    pipeline = suite.methods[1]
    assert [s.method.name for s in pipeline.steps] == ["magnitude", "int8_weight"]
    assert pipeline.steps[0].config.scope == "ffn"


def test_seeds_are_stable_and_distinct_per_case():
    cases = parse_suite(BASE, Path("s.yaml")).cases()
    again = parse_suite(BASE, Path("s.yaml")).cases()
    assert [c.seed for c in cases] == [c.seed for c in again]
    assert len({c.seed for c in cases}) == len(cases)


@given(st.lists(st.floats(min_value=0.001, max_value=0.999), min_size=2, max_size=6, unique=True))
def test_distinct_ratios_give_distinct_ids(ratios):
    assert len({format_ratio(r) for r in ratios}) == len(ratios)


def _error(data: object, tmp_path: Path) -> SuiteError:
    path = tmp_path / "bad.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    assert str(path) in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    "change, key, words",
    [
        ({"model": ["x"]}, "model", "did you mean 'models'"),
        ({"methods": [{"name": "p", "method": "magnitud"}]}, "methods[0].method", "did you mean 'magnitude'"),
        ({"benchmarks": [{"name": "b", "benchmark": "fact"}]}, "benchmarks[0].benchmark", "known benchmark"),
        ({"ratios": [0.5, 1.5]}, "ratios[1]", "fraction of weights"),
        ({"ratios": ["half"]}, "ratios[0]", "a number"),
        ({"methods": [{"name": "p", "method": "magnitude", "scope": "heads"}]}, "methods[0].scope", "one of 'all'"),
        ({"methods": [{"name": "p", "method": "magnitude", "sparsity": 0.5}]}, "methods[0].sparsity", "known parameter"),
        ({"benchmarks": [{"name": "b", "benchmark": "facts", "limit": "ten"}]}, "benchmarks[0].limit", "an integer"),
        ({"models": []}, "models", "non-empty"),
        ({"benchmarks": []}, "benchmarks", "non-empty"),
        ({"methods": [{"name": "p", "method": "magnitude"}, {"name": "p", "method": "int8_weight"}]}, "methods[1].name", "not used by another"),
        ({"methods": [{"name": "dense", "method": "magnitude"}]}, "methods[0].name", "not used by another"),
        ({"models": ["m", "m"]}, "models[1].name", "not used by another"),
        ({"ratios": []}, "ratios", "at least one ratio"),
        ({"models": [{"name": "m", "family": "rnn"}]}, "models[0].family", "encoder"),
    ],
)
def test_suite_errors_name_file_key_and_expectation(change, key, words, tmp_path):
    error = _error({**BASE, **change}, tmp_path)
    assert error.key == key
    assert words in str(error)


def test_yaml_syntax_error_gives_line_and_column(tmp_path):
    error = _error("models: [smollm2-135m\nbenchmarks: facts\n", tmp_path)
    assert error.key.startswith("line ")
    assert "column" in error.key


def test_missing_file_is_a_suite_error(tmp_path):
    with pytest.raises(SuiteError, match="readable suite file"):
        load_suite(tmp_path / "nope.yaml")


def test_bundled_suites_parse():
    for path in sorted(Path(__file__).parents[1].joinpath("suites").glob("*.yaml")):
        assert load_suite(path).cases()


def test_benchmarks_can_be_limited_to_some_models():
    data = {"models": ["a", "b"], "benchmarks": [
        {"name": "f", "benchmark": "facts"}, {"name": "p", "benchmark": "perplexity", "models": ["a"]}]}
    assert [c.id for c in parse_suite(data, Path("s.yaml")).cases()] == ["a-dense-f", "a-dense-p", "b-dense-f"]
    with pytest.raises(SuiteError) as error:
        parse_suite({**data, "benchmarks": [{"name": "p", "benchmark": "perplexity", "models": ["z"]}]}, Path("s.yaml"))
    assert error.value.key == "benchmarks[0].models[0]"
    with pytest.raises(SuiteError) as error:
        parse_suite({**data, "benchmarks": [{"name": "p", "benchmark": "perplexity", "models": ["a"]}]}, Path("s.yaml"))
    assert error.value.key == "models[1]"


@pytest.mark.parametrize("change, key", [
    ({"name": "evil\n"}, "name"),
    ({"models": [{"name": "evil\n", "source": "smollm2-135m"}]}, "models[0].name"),
    ({"methods": [{"name": "evil\n", "method": "magnitude"}]}, "methods[0].name"),
    ({"benchmarks": [{"name": "evil\n", "benchmark": "facts"}]}, "benchmarks[0].name"),
])
def test_a_name_with_a_trailing_newline_is_refused(change, key, tmp_path):
    assert _error({**BASE, **change}, tmp_path).key == key


def _alias_bomb(key: str, levels: int = 9) -> str:
    """A dozen lines of YAML whose ``key`` expands to 9**levels strings."""
    anchors = ['  - &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    anchors += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    rest = {"models": "models: [smollm2-135m]", "benchmarks": "benchmarks: [facts]"}
    return "\n".join([f"{key}:", *anchors, *(line for name, line in rest.items() if name != key), ""])


@pytest.mark.parametrize("key", ["description", "models", "ratios", "tolerance", "name"])
def test_a_yaml_alias_bomb_is_refused_quickly_with_a_short_message(key, tmp_path):
    error = _error(_alias_bomb(key), tmp_path)
    assert error.key == key and "each use of a YAML alias counts" in str(error)
    assert len(str(error)) < 300


@pytest.mark.parametrize("change, key, words", [
    ({"description": ["a", "list"]}, "description", "a string describing the suite"),
    ({"description": {"a": 1}}, "description", "a string describing the suite"),
    ({"description": []}, "description", "a string describing the suite"),
    ({"description": "x" * 5000}, "description", "a string of at most 4096 characters"),
    ({"models": [{"name": "m", "source": "s" * 5000}]}, "models[0].source", "a string of at most 4096 characters"),
    ({"x" * 5000: 1}, "x" * 5000, "a string of at most 4096 characters"),
])
def test_every_key_has_a_type_and_a_size(change, key, words, tmp_path):
    error = _error({**BASE, **change}, tmp_path)
    assert error.key == key and words in str(error)


def test_a_description_is_accepted():
    assert parse_suite({**BASE, "description": "Release gate: capitals under pruning."}, Path("s.yaml")).cases()
