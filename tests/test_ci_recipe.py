"""The CI recipe in examples/ci/: the shell script run for real on the release-gate suite, and the workflow's shape.

The script runs the suite in two shards and merges them, in a scratch copy of the suite
and its baselines, with the packages already installed (SKIP_INSTALL=1). The runs share
the repository's result cache (as tests/test_docs.py does): the first computes every case
(two SmolLM2 loads, one per shard), the later ones read it, which is what a CI cache does
between pipeline runs.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_knowledge.cli import build_parser
from pytest_knowledge.stores.results_file import read_results
from pytest_knowledge.suite.parse import format_ratio, load_suite

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "ci" / "knowledge-gate.sh"
WORKFLOW = ROOT / "examples" / "ci" / "knowledge-gate.yml"
SUITE = ROOT / "suites" / "release-gate.yaml"
BASELINES = ROOT / "baselines" / "release-gate"
CORRUPTED = "smollm2-135m-int8-facts_capital"
RUN_TIMEOUT = 1200  # seconds; two cold SmolLM2 loads on a busy 2-core machine


def make_workdir(path: Path) -> Path:
    """A scratch checkout: the release-gate suite and the repository's baselines for it."""
    (path / "suites").mkdir(parents=True)
    shutil.copy(SUITE, path / "suites" / SUITE.name)
    shutil.copytree(BASELINES, path / "baselines" / BASELINES.name)
    return path


def gate(workdir: Path, cache: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS"))}
    env.update({
        "SUITE": "suites/release-gate.yaml", "SHARDS": "2", "CACHE_DIR": str(cache), "OUT_DIR": "out",
        "SKIP_INSTALL": "1", "PYTEST": f"{sys.executable} -m pytest",
        "KNOWLEDGE": f"{sys.executable} -m pytest_knowledge.cli", "PYTEST_ARGS": "--knowledge-no-history",
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **settings,
    })
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)


def expected_rows() -> set[tuple[str, str, str, str]]:
    """(model, method, ratio, benchmark) of every case, as the reports' case tables show them."""
    return {(c.model.name, c.method_name, format_ratio(c.ratio) if c.ratio is not None else "-", c.benchmark.name)
            for c in load_suite(SUITE).cases()}


def markdown_rows(text: str) -> dict[tuple[str, str, str, str], str]:
    """The all-cases table of a Markdown report: (model, method, ratio, benchmark) -> verdict."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 13 and cells[0] == "smollm2-135m":
            rows[tuple(cells[:4])] = cells[11]
    return rows


@pytest.fixture(scope="module")
def cache() -> Path:
    """The repository's result cache, which the documentation tests share too."""
    path = ROOT / ".knowledge" / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def passing(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    workdir = make_workdir(tmp_path_factory.mktemp("gate-pass"))
    return gate(workdir, cache), workdir / "out"


@pytest.mark.slow
def test_the_gate_passes_on_the_recorded_baselines(passing):
    run, out = passing
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    shards = [{r.case_id for r in read_results(out / f"results-{k}.json")} for k in (1, 2)]
    assert shards[0] and shards[1] and not shards[0] & shards[1]
    assert shards[0] | shards[1] == {c.id for c in load_suite(SUITE).cases()}
    markdown = (out / "report.md").read_text()
    assert "Knowledge gate: release-gate.yaml" in markdown and "all 3 cases pass" in markdown
    assert markdown_rows(markdown) == {row: "pass" for row in expected_rows()}
    page = (out / "report.html").read_text()
    for row in expected_rows():
        assert "".join(f"<td>{html.escape(cell)}</td>" for cell in row) in page, row
    assert "every case passed" in run.stderr


@pytest.mark.slow
def test_a_baseline_corrupted_beyond_tolerance_fails_the_gate_and_is_named(passing, cache, tmp_path):
    workdir = make_workdir(tmp_path / "work")
    baseline = workdir / "baselines" / "release-gate" / "smollm2-135m.json"
    data = json.loads(baseline.read_text())
    entry = data["entries"][CORRUPTED]
    entry["value"], entry["outcomes"] = 1.0, "1" * entry["n"]  # the baseline claims every capital was known
    baseline.write_text(json.dumps(data))

    run = gate(workdir, cache)
    assert run.returncode == 1, run.stdout[-4000:] + run.stderr[-4000:]
    assert "knowledge regression" in run.stderr
    assert f"not passing: release-gate/{CORRUPTED} (fail)" in run.stderr
    records = [r for k in (1, 2) for r in read_results(workdir / "out" / f"results-{k}.json")]
    assert all(r.from_cache for r in records)  # the shared cache served every case: no model was loaded
    markdown = (workdir / "out" / "report.md").read_text()
    assert "1 of 3 cases failing" in markdown
    failing = markdown.split("#### Failing cases", 1)[1].split("<details>", 1)[0]
    assert CORRUPTED in failing and failing.count("| smollm2-135m-") == 1
    verdicts = markdown_rows(markdown)
    assert verdicts.pop(("smollm2-135m", "int8", "-", "facts_capital")) == "fail"
    assert set(verdicts.values()) == {"pass"}
    assert CORRUPTED in (workdir / "out" / "report.html").read_text()


@pytest.mark.slow
def test_a_missing_shard_fails_the_merge_and_is_reported(passing, cache, tmp_path):
    _, out = passing
    workdir = make_workdir(tmp_path / "work")
    (workdir / "out").mkdir()
    shutil.copy(out / "results-1.json", workdir / "out" / "results-1.json")  # shard 2's job never reported
    lost = {r.case_id for r in read_results(out / "results-2.json")}

    run = gate(workdir, cache, "merge")
    assert run.returncode == 1, run.stderr[-4000:]
    markdown = (workdir / "out" / "report.md").read_text()
    failing = markdown.split("#### Failing cases", 1)[1].split("<details>", 1)[0]
    for case_id in lost:
        assert f"missing: release-gate/{case_id} is in no results file" in run.stderr
        assert re.search(rf"\| {re.escape(case_id)} +\| error ", failing), failing


def test_the_script_refuses_bad_settings_before_running_anything(tmp_path):
    workdir = make_workdir(tmp_path / "work")
    for args, settings, message in [
        ((), {"SHARDS": "0"}, "SHARDS must be a whole number >= 1, got '0'"),
        (("shard", "3"), {}, "shard 3 is not in 1..2"),
        ((), {"SUITE": "suites/nope.yaml"}, "SUITE: no suite file at 'suites/nope.yaml'"),
        (("merge",), {}, "no results-*.json in"),
        (("frobnicate",), {}, "usage:"),
    ]:
        run = gate(workdir, tmp_path / "cache", *args, **settings)
        assert run.returncode == 2 and message in run.stderr, (args, settings, run.stderr)


def test_the_workflow_shards_merges_reports_and_gates():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow["name"] == "knowledge-gate"
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"pull_request", "release"} <= set(triggers)
    shards = int(workflow["env"]["SHARDS"])
    assert workflow["env"]["SUITE"] == "suites/release-gate.yaml"

    shard = workflow["jobs"]["shard"]
    assert shard["strategy"]["matrix"]["shard"] == list(range(1, shards + 1))
    steps = {s.get("name", s.get("uses")): s for s in shard["steps"]}
    cache = next(s for s in shard["steps"] if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == ".knowledge/cache"
    assert "hashFiles(env.SUITE, 'baselines/" in cache["with"]["key"]
    run = next(s["run"] for name, s in steps.items() if name.startswith("Run shard"))
    assert "--knowledge-shard=${{ matrix.shard }}/$SHARDS" in run
    assert "--knowledge-results=results-${{ matrix.shard }}.json" in run
    assert "--knowledge-cache=.knowledge/cache" in run
    upload = steps["Upload shard results"]
    assert upload["uses"].startswith("actions/upload-artifact@") and upload["if"] == "always()"
    assert upload["with"]["path"] == "results-${{ matrix.shard }}.json"

    merge = workflow["jobs"]["merge"]
    assert merge["needs"] == "shard" and merge["if"] == "always()"
    assert merge["permissions"]["pull-requests"] == "write"
    runs = "\n".join(s.get("run", "") for s in merge["steps"])
    assert "pytest-knowledge merge results/results-*.json" in runs
    assert '"$GITHUB_STEP_SUMMARY"' in runs and "cat report.md" in runs
    uses = [s.get("uses", "") for s in merge["steps"]]
    assert any(u.startswith("actions/download-artifact@") for u in uses)
    assert any(u.startswith("marocchino/sticky-pull-request-comment@") for u in uses)
    report_upload = next(s for s in merge["steps"] if s.get("name") == "Upload HTML report")
    assert "report.html" in report_upload["with"]["path"]
    last = merge["steps"][-1]
    assert last["if"] == "always()" and "exit 1" in last["run"] and "steps.merge.outputs.status" in str(last["env"])


def test_workflow_and_script_use_only_existing_options():
    """Every --knowledge-* option they pass exists, and the merge command accepts their arguments."""
    plugin_source = (ROOT / "pytest_knowledge" / "plugin.py").read_text()
    for path in (WORKFLOW, SCRIPT):
        options = set(re.findall(r"--knowledge-[a-z-]+", path.read_text()))
        assert options, path
        for option in options:
            assert f'"{option}"' in plugin_source, f"{path.name}: unknown pytest option {option}"
    args = build_parser().parse_args(["merge", "results-1.json", "results-2.json", "--expect", "s.yaml",
                                      "--title", "t", "--report", "report.md", "--report", "report.html"])
    assert args.expect == ["s.yaml"] and args.report == ["report.md", "report.html"] and args.title == "t"
    for path in (WORKFLOW, SCRIPT):
        text = path.read_text()
        assert "merge" in text and "--expect" in text and "--report" in text, path.name
