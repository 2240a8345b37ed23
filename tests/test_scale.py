"""Cache, xdist, shards and merging, end to end on a tiny local checkpoint."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_knowledge.cli import main as cli
from pytest_knowledge.engine.cache import case_key
from pytest_knowledge.stores.results_file import merge, read_results, write_results
from pytest_knowledge.suite.parse import parse_suite

GRID = """
name: scale
models:
  - {{name: tiny, source: "{source}"}}
methods:
  - {{name: prune, method: magnitude}}
  - {{name: q8, method: int8_weight}}
ratios: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
benchmarks:
  - {{name: caps, benchmark: facts, limit: 6}}
  - {{name: caps_b, benchmark: facts, limit: 6, seed: 1}}
"""
CASES = 20


@pytest.fixture
def project(pytester: pytest.Pytester, tiny_llama: Path) -> pytest.Pytester:
    pytester.makefile(".yaml", suite=GRID.format(source=tiny_llama))
    return pytester


def _entries(project: pytest.Pytester) -> dict:
    return json.loads((project.path / "baselines/scale/tiny.json").read_text())["entries"]


def test_cache_key_depends_on_everything_that_changes_a_result():
    suite = parse_suite(
        {"models": ["m"], "methods": [{"name": "p", "method": "magnitude"}], "ratios": [0.5],
         "benchmarks": [{"name": "b", "benchmark": "facts"}]}, Path("s.yaml"))
    dense, pruned = suite.cases()
    key = case_key(pruned, "weights-a", "data-a", "1")
    assert key == case_key(pruned, "weights-a", "data-a", "1")
    variants = [
        case_key(pruned, "weights-b", "data-a", "1"),  # another model's weights
        case_key(pruned, "weights-a", "data-b", "1"),  # other benchmark data
        case_key(pruned, "weights-a", "data-a", "2"),  # another scorer version
        case_key(replace(pruned, ratio=0.6), "weights-a", "data-a", "1"),
        case_key(replace(pruned, model=replace(pruned.model, dtype="bfloat16")), "weights-a", "data-a", "1"),
        case_key(dense, "weights-a", "data-a", "1"),
    ]
    other_scope = parse_suite(
        {"models": ["m"], "methods": [{"name": "p", "method": "magnitude", "scope": "ffn"}], "ratios": [0.5],
         "benchmarks": [{"name": "b", "benchmark": "facts"}]}, Path("s.yaml")).cases()[1]
    variants.append(case_key(other_scope, "weights-a", "data-a", "1"))
    assert len({key, *variants}) == len(variants) + 1


REPORT_IMPORTS = """
import sys

def pytest_terminal_summary(terminalreporter):
    loaded = {name: name in sys.modules for name in ("torch", "transformers")}
    terminalreporter.write_line(f"heavy imports: {loaded}")
"""


def test_rerun_is_served_from_cache_but_a_changed_model_never_is(project, make_tiny_llama, tmp_path):
    source = tmp_path / "model"
    make_tiny_llama(source, seed=0)
    project.makefile(".yaml", suite=GRID.format(source=source))
    project.makeconftest(REPORT_IMPORTS)
    first = project.runpytest_subprocess("--knowledge-suite=suite.yaml", "--knowledge-update-baselines")
    first.assert_outcomes(passed=CASES)
    first.stdout.fnmatch_lines(["heavy imports: {'torch': True, 'transformers': True}"])
    again = project.runpytest_subprocess("--knowledge-suite=suite.yaml", "--knowledge-results=again.json")
    again.assert_outcomes(passed=CASES)
    assert all(r.from_cache for r in read_results(project.path / "again.json"))
    again.stdout.fnmatch_lines(["heavy imports: {'torch': False, 'transformers': False}"])  # nothing to compute
    make_tiny_llama(source, seed=1)  # same path and config, different weights
    changed = project.runpytest("--knowledge-suite=suite.yaml", "--knowledge-results=changed.json", "-k", "not caps_b")
    changed.assert_outcomes(failed=CASES // 2, deselected=CASES // 2)
    changed.stdout.fnmatch_lines(["*refusing to compare*"])
    assert not any(r.from_cache for r in read_results(project.path / "changed.json"))
    bypass = project.runpytest("--knowledge-suite=suite.yaml", "--knowledge-no-cache", "--knowledge-results=b.json",
                               "-k", "dense")
    assert not any(r.from_cache for r in read_results(project.path / "b.json"))
    assert bypass.ret == 1


def test_outcomes_are_identical_between_one_and_two_workers_and_all_are_recorded(project):
    project.runpytest("--knowledge-suite=suite.yaml", "--knowledge-update-baselines",
                      "--knowledge-no-cache", "--knowledge-results=one.json").assert_outcomes(passed=CASES)
    shutil.rmtree(project.path / "baselines")  # the two-worker run must write every entry itself
    two_workers = project.runpytest_subprocess("--knowledge-suite=suite.yaml", "--knowledge-update-baselines", "-n", "2",
                                               "--knowledge-no-cache", "--knowledge-results=two.json")
    two_workers.assert_outcomes(passed=CASES)
    assert len(_entries(project)) == CASES  # every worker's entry written, by the controller
    one = {r.case_id: r.entry["outcomes"] for r in read_results(project.path / "one.json")}
    two = {r.case_id: r.entry["outcomes"] for r in read_results(project.path / "two.json")}
    assert len(one) == CASES and one == two


@pytest.mark.slow  # three whole sessions
def test_shards_split_the_grid_and_merge_back(project, capsys):
    project.runpytest("--knowledge-suite=suite.yaml", "--knowledge-update-baselines").assert_outcomes(passed=CASES)
    for k in (1, 2):
        project.runpytest("--knowledge-suite=suite.yaml", f"--knowledge-shard={k}/2", f"--knowledge-results=s{k}.json")
    shard_ids = [{r.case_id for r in read_results(project.path / f"s{k}.json")} for k in (1, 2)]
    assert shard_ids[0] and shard_ids[1] and not shard_ids[0] & shard_ids[1]
    assert len(shard_ids[0] | shard_ids[1]) == CASES
    code = cli(["merge", str(project.path / "s1.json"), str(project.path / "s2.json"),
                "--report", str(project.path / "merged.md")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{CASES} cases from 2 files, 0 not passing, 0 conflicts" in out
    assert (project.path / "merged.md").read_text().count("| tiny ") == CASES


def test_merge_reports_conflicts_and_drops_nothing(project, tmp_path):
    project.runpytest("--knowledge-suite=suite.yaml", "-k", "dense", "--knowledge-update-baselines",
                      "--knowledge-results=a.json")
    records = read_results(project.path / "a.json")
    write_results(tmp_path / "b.json", [replace(records[0], current=(records[0].current or 0) + 0.5)], {})
    merged = merge([project.path / "a.json", tmp_path / "b.json"])
    assert len(merged.records) == len(records)
    assert len(merged.conflicts) == 1 and records[0].case_id in merged.conflicts[0]
