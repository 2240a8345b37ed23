"""The plugin end to end through pytester, on the real SmolLM2 with a dozen facts.

The model is loaded once per test process (``models.load`` keeps it), and every project
here shares one result cache: the first run computes the three cases, later runs judge
them against each test's own baselines (the cache itself is tested in test_scale.py).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

SUITE = """
name: mini
models: [smollm2-135m]
methods:
  - {name: prune, method: magnitude, scope: all}
ratios: [0.1, 0.5]
benchmarks:
  - {name: caps, benchmark: facts, relations: [capital], limit: 12}
tolerance:
  default: {abs: 0.02}
"""
IDS = ["smollm2-135m-dense-caps", "smollm2-135m-prune-0.10-caps", "smollm2-135m-prune-0.50-caps"]
BASELINE = Path("baselines/mini/smollm2-135m.json")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("knowledge-cache")


@pytest.fixture
def project(pytester: pytest.Pytester, smollm2, shared_cache: Path) -> pytest.Pytester:
    pytester.makefile(".yaml", suite=SUITE)
    pytester.makeini(f"[pytest]\nknowledge_cache = {shared_cache}\n")
    return pytester


def _run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest("--knowledge-suite=suite.yaml", "-p", "no:randomly", *args)


def _entries(project: pytest.Pytester) -> dict:
    return json.loads((project.path / BASELINE).read_text())["entries"]


def _record(project: pytest.Pytester) -> pytest.RunResult:
    result = _run(project, "--knowledge-update-baselines")
    result.assert_outcomes(passed=3)
    return result


def test_collects_one_item_per_case_with_stable_ids(project):
    result = _run(project, "--co", "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"suite.yaml::{case_id}" for case_id in IDS])


def test_missing_baseline_fails_and_names_the_flag(project):
    result = _run(project)
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*no baseline for smollm2-135m-dense-caps in baselines?mini?smollm2-135m.json*--knowledge-update-baselines*"])
    assert not (project.path / "baselines").exists()


def test_update_records_readable_baselines_then_rerun_passes(project):
    result = _record(project)
    result.stdout.fnmatch_lines(["*3 new*"])
    text = (project.path / BASELINE).read_text()
    data = json.loads(text)
    assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    entry = data["entries"]["smollm2-135m-prune-0.50-caps"]
    assert entry["n"] == 12 and len(entry["outcomes"]) == 12 and set(entry["outcomes"]) <= {"0", "1"}
    assert entry["method_report"]["sparsity"] == pytest.approx(0.5, abs=1e-6)
    assert {"fingerprint", "versions", "date", "metric", "value"} <= set(entry)
    again = _run(project)
    again.assert_outcomes(passed=3)
    again.stdout.fnmatch_lines(["*knowledge summary*", "*model*method*ratio*benchmark*metric*dense*baseline*current*delta*verdict*", "*3 pass*"])


def test_pruned_model_knows_measurably_less(project):
    _record(project)
    entries = _entries(project)
    dense = entries["smollm2-135m-dense-caps"]["value"]
    pruned = entries["smollm2-135m-prune-0.50-caps"]["value"]
    assert dense >= 0.25
    assert pruned <= dense - 0.2


def test_baseline_edited_beyond_tolerance_fails_exactly_that_case(project):
    _record(project)
    data = json.loads((project.path / BASELINE).read_text())
    data["entries"]["smollm2-135m-prune-0.10-caps"]["value"] += 0.25
    (project.path / BASELINE).write_text(json.dumps(data))
    result = _run(project)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*knowledge regression in smollm2-135m-prune-0.10-caps: worse than baseline by 0.2500, allowed 0.0200*",
        "FAILED suite.yaml::smollm2-135m-prune-0.10-caps*",
    ])
    for word in ("baseline ", "current ", "delta ", "tolerance ", "dense "):
        assert word in result.stdout.str()


def test_drop_within_tolerance_passes(project):
    _record(project)
    data = json.loads((project.path / BASELINE).read_text())
    data["entries"]["smollm2-135m-prune-0.10-caps"]["value"] += 0.015
    (project.path / BASELINE).write_text(json.dumps(data))
    _run(project).assert_outcomes(passed=3)


def test_min_retention_gates_compressed_cases_against_dense(project):
    _record(project)
    (project.path / "suite.yaml").write_text(SUITE.replace("{abs: 0.02}", "{abs: 0.02, min_retention: 0.8}"))
    result = _run(project)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*prune-0.50-caps: retention * below min_retention 0.8*"])


def test_changed_model_fingerprint_refuses_to_compare(project):
    _record(project)
    data = json.loads((project.path / BASELINE).read_text())
    data["entries"]["smollm2-135m-dense-caps"]["fingerprint"] = "0000000000000000"
    (project.path / BASELINE).write_text(json.dumps(data))
    result = _run(project, "-k", "dense")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["*recorded on model weights 0000000000000000*refusing to compare*"])


def test_stale_entries_are_reported(project):
    _record(project)
    data = json.loads((project.path / BASELINE).read_text())
    data["entries"]["smollm2-135m-prune-0.90-caps"] = dict(data["entries"]["smollm2-135m-prune-0.50-caps"])
    (project.path / BASELINE).write_text(json.dumps(data))
    result = _run(project, "-k", "dense")  # deselected cases are still in use
    result.stdout.fnmatch_lines(["*1 baseline entries not used by any case*", "*smollm2-135m-prune-0.90-caps"])


def test_last_failed_reruns_only_the_failing_case(project):
    _record(project)
    data = json.loads((project.path / BASELINE).read_text())
    data["entries"]["smollm2-135m-dense-caps"]["value"] += 0.5
    (project.path / BASELINE).write_text(json.dumps(data))
    _run(project).assert_outcomes(passed=2, failed=1)
    _run(project, "--lf").assert_outcomes(failed=1, deselected=2)


def test_junit_xml_carries_metric_and_verdict(project):
    _record(project)
    _run(project, "--junitxml=out.xml").assert_outcomes(passed=3)
    tree = ET.parse(project.path / "out.xml")
    props = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in tree.iter("testcase")
    }
    assert props["smollm2-135m-prune-0.50-caps"]["knowledge_status"] == "pass"
    assert props["smollm2-135m-prune-0.50-caps"]["knowledge_metric"] == "p_at_1"


@pytest.mark.parametrize(
    "suite, message",
    [
        ("models: [smollm2-135m]\nbenchmark: []\n", "suite.yaml: benchmark: expected a suite key"),
        ("models: [smollm2-135m]\nbenchmarks: [{name: b, benchmark: facts}]\nmethods: [{name: p, method: magnitude}]\nratios: [2]\n",
         "suite.yaml: ratios[0]: expected a number in (0, 1) (fraction of weights set to zero) for method 'p'"),
        ("models: [smollm2-135m]\nbenchmarks: [{name: b, benchmark: nope}]\n", "suite.yaml: benchmarks[0].benchmark: expected a known benchmark"),
        ("models: [smollm2-135m\n", "suite.yaml: line 1, column 22: expected valid YAML"),
    ],
)
def test_suite_errors_stop_the_run_with_one_message(pytester: pytest.Pytester, suite, message):
    pytester.makefile(".yaml", suite=suite)
    result = pytester.runpytest("--knowledge-suite=suite.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert not (pytester.path / "baselines").exists()


def test_suite_folder_runs_every_suite(pytester: pytest.Pytester):
    pytester.mkdir("many")
    (pytester.path / "many" / "a.yaml").write_text("models: [smollm2-135m]\nbenchmarks: [{name: b, benchmark: facts, limit: 2}]\n")
    (pytester.path / "many" / "b.yaml").write_text("models: [smollm2-135m]\nbenchmarks: [{name: c, benchmark: facts, limit: 2}]\n")
    result = pytester.runpytest("--knowledge-suite=many", "--co", "-q")
    result.stdout.fnmatch_lines(["many/a.yaml::smollm2-135m-dense-b", "many/b.yaml::smollm2-135m-dense-c"])


def test_ini_option_names_the_default_suite(pytester: pytest.Pytester):
    pytester.makefile(".yaml", other="models: [smollm2-135m]\nbenchmarks: [{name: b, benchmark: facts, limit: 2}]\n")
    pytester.makeini("[pytest]\nknowledge_suite = other.yaml\n")
    result = pytester.runpytest("--knowledge-suite", "--co", "-q")
    result.stdout.fnmatch_lines(["other.yaml::smollm2-135m-dense-b"])


def test_without_the_flag_the_plugin_stays_out_of_the_way(pytester: pytest.Pytester):
    pytester.makefile(".yaml", suite=SUITE)
    pytester.makepyfile("def test_ok():\n    assert True\n")
    pytester.runpytest().assert_outcomes(passed=1)
