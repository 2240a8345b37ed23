"""Failure modes: each one a clear message on the case it hits, while the session goes on."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_knowledge.core.files import write_atomic
from pytest_knowledge.gate.record import Record
from pytest_knowledge.stores.history import HistoryStore, RunMeta

FAULTY_METHODS = '''
import os
from dataclasses import dataclass

import torch

from pytest_knowledge.methods import METHODS, MethodReport, register_method


@dataclass(frozen=True)
class Nothing:
    pass


def _nan(model, config, ratio, context):
    for p in model.parameters():
        p.data.fill_(float("nan"))
    return MethodReport(touched_parameters=0)


def _oom(model, config, ratio, context):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")


def _crash(model, config, ratio, context):
    os._exit(3)


for name, fn in (("nan_weights", _nan), ("oom", _oom), ("crash", _crash)):
    if name not in METHODS:
        register_method(name, Nothing)(fn)
'''

SUITE = """
name: faults
models:
  - {{name: tiny, source: "{source}"}}
methods:
  - {{name: prune, method: magnitude}}
  - {{name: {faulty}, method: {faulty}}}
ratios: [0.2, 0.4, 0.6, 0.8]
benchmarks:
  - {{name: caps, benchmark: facts, limit: 4}}
  - {{name: caps_b, benchmark: facts, limit: 4, seed: 1}}
"""


def _project(pytester: pytest.Pytester, source: Path, faulty: str) -> pytest.Pytester:
    pytester.makeconftest(FAULTY_METHODS)
    pytester.makefile(".yaml", suite=SUITE.format(source=source, faulty=faulty))
    return pytester


def _entries(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "baselines/faults/tiny.json").read_text())["entries"]


@pytest.mark.parametrize("faulty, message", [
    ("nan_weights", "the compressed model outputs NaN/inf logits"),
    ("oom", "out of memory while compressing or evaluating"),
])
def test_a_broken_case_fails_with_its_diagnosis_and_the_rest_go_on(pytester, tiny_llama, faulty, message):
    _project(pytester, tiny_llama, faulty)
    result = pytester.runpytest("--knowledge-suite=suite.yaml", "--knowledge-update-baselines", "--knowledge-no-cache")
    result.assert_outcomes(passed=10, failed=2)
    result.stdout.fnmatch_lines([f"*tiny-{faulty}-caps*{message}*"])
    assert len(_entries(pytester)) == 10
    # the model is restored after the broken case: the next run measures the same values
    again = pytester.runpytest("--knowledge-suite=suite.yaml", "--knowledge-no-cache", "-k", "not " + faulty)
    again.assert_outcomes(passed=10, deselected=2)


def test_a_model_that_cannot_be_found_offline_says_how_to_get_it(pytester, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makefile(".yaml", suite="models: [{name: missing, source: no-such-org/no-such-model}]\n"
                                     "benchmarks: [{name: caps, benchmark: facts, limit: 2}]\n"
                                     "methods: [{name: prune, method: magnitude}]\nratios: [0.5]\n")
    result = pytester.runpytest_subprocess("--knowledge-suite=suite.yaml", "--knowledge-no-cache")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*model 'missing': cannot load 'no-such-org/no-such-model'*local directory*hub*"])


def _history_runs(pytester: pytest.Pytester) -> list:
    with HistoryStore(f"sqlite:///{pytester.path / '.knowledge/history.db'}", create=False) as store:
        return [(run, store.run_records(run.id)) for run in store.runs()]


def test_a_crashed_worker_s_case_is_in_every_output_as_crashed(pytester, tiny_llama):
    _project(pytester, tiny_llama, "crash")
    result = pytester.runpytest_subprocess("--knowledge-suite=suite.yaml", "--knowledge-update-baselines", "-n", "2",
                                           "--knowledge-no-cache", "-p", "no:cacheprovider",
                                           "--knowledge-results=results.json", "--knowledge-report=report.md")
    result.assert_outcomes(passed=10, failed=2)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*crashed while running*", "*knowledge summary*", "*tiny*crash*caps*crashed*",
                                 "2 crashed, 10 new"])
    entries = _entries(pytester)
    assert len(entries) == 10 and not any("crash" in case_id for case_id in entries)

    results = json.loads((pytester.path / "results.json").read_text())["records"]
    assert len(results) == 12
    crashed = [r for r in results if r["method"] == "crash"]
    assert [r["status"] for r in crashed] == ["crashed", "crashed"]
    assert all("crashed while running" in r["message"] and "died" in r["message"] for r in crashed)

    [(run, records)] = _history_runs(pytester)
    assert (run.cases, run.failed, run.exit_status, run.state) == (12, 2, 1, "failed (exit 1)")
    assert sorted(r.status for r in records if r.method == "crash") == ["crashed", "crashed"]

    report = (pytester.path / "report.md").read_text()
    assert "**2 of 12 cases failing" in report and "cases pass" not in report


def test_cases_a_session_never_ran_are_errors_in_every_output(pytester, tiny_llama):
    """-x stops at the first failing case: the cases after it are collected but never run."""
    _project(pytester, tiny_llama, "nan_weights")
    result = pytester.runpytest("--knowledge-suite=suite.yaml", "--knowledge-update-baselines", "--knowledge-no-cache",
                                "-x", "-k", "nan_weights or caps_b", "--knowledge-results=results.json",
                                "--knowledge-report=report.md")
    assert result.ret == 1
    outcomes = result.parseoutcomes()
    ran = outcomes.get("passed", 0) + outcomes["failed"]
    results = json.loads((pytester.path / "results.json").read_text())["records"]
    not_run = [r for r in results if "did not run" in r["message"]]
    assert len(results) == 7 and len(not_run) == 7 - ran > 0
    assert all(r["status"] == "error" for r in not_run)
    [(run, records)] = _history_runs(pytester)
    assert run.cases == 7 and run.exit_status == 1
    assert "of 7 cases failing" in (pytester.path / "report.md").read_text()


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("knowledge-cache")


@pytest.mark.parametrize("attempt", range(3))
def test_update_with_four_workers_records_every_entry(pytester, tiny_llama, shared_cache, attempt):
    """Repeated to give a write race its chances; after the first attempt the workers serve
    their cases from the cache, so their results reach the controller almost at once."""
    pytester.makefile(".yaml", suite=SUITE.format(source=tiny_llama, faulty="q8").replace("method: q8", "method: int8_weight"))
    result = pytester.runpytest_subprocess("--knowledge-suite=suite.yaml", "--knowledge-update-baselines", "-n", "4",
                                           f"--knowledge-cache={shared_cache}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=12)
    assert len(_entries(pytester)) == 12


def test_a_case_that_fails_before_measuring_is_an_error_in_every_output(pytester, tiny_llama):
    _project(pytester, tiny_llama, "nan_weights")
    pytester.makeconftest(FAULTY_METHODS + """
def pytest_runtest_setup(item):
    if "dense" in item.name:
        raise RuntimeError("the GPU driver went away")
""")
    result = pytester.runpytest("--knowledge-suite=suite.yaml", "-k", "dense or prune", "--knowledge-update-baselines",
                                "--knowledge-results=results.json")
    result.assert_outcomes(passed=8, errors=2, deselected=2)
    result.stdout.fnmatch_lines(["2 error, 8 new"])
    errors = [r for r in json.loads((pytester.path / "results.json").read_text())["records"] if r["status"] == "error"]
    assert [r["method"] for r in errors] == ["dense", "dense"]
    assert all("failed in setup before it reported a result: RuntimeError: the GPU driver went away" in r["message"]
               for r in errors)
    [(run, _)] = _history_runs(pytester)
    assert (run.cases, run.failed, run.exit_status) == (10, 2, 1)


def test_collect_only_records_nothing(pytester, tiny_llama):
    _project(pytester, tiny_llama, "nan_weights")
    result = pytester.runpytest("--knowledge-suite=suite.yaml", "--co", "--knowledge-report=report.md")
    assert result.ret == 0 and "knowledge summary" not in result.stdout.str()
    assert not (pytester.path / ".knowledge/history.db").exists()


def test_a_truncated_baseline_file_gives_every_output_with_its_cases_as_errors(pytester, tiny_llama):
    _project(pytester, tiny_llama, "nan_weights")
    path = pytester.path / "baselines/faults/tiny.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"format": 1, "entries": {"tiny-dense-caps": {"metric"')
    result = pytester.runpytest("--knowledge-suite=suite.yaml", "-k", "dense", "--knowledge-results=results.json",
                                "--knowledge-report=report.md")
    result.assert_outcomes(failed=2, deselected=10)
    result.stdout.fnmatch_lines(["*knowledge summary*", "*tiny*dense*caps*error*", "2 error"])
    results = json.loads((pytester.path / "results.json").read_text())["records"]
    assert [r["status"] for r in results] == ["error", "error"]
    assert all(str(path) in r["message"] and "unreadable baseline file" in r["message"] for r in results)
    [(run, records)] = _history_runs(pytester)
    assert (run.cases, run.failed, run.exit_status) == (2, 2, 1)
    report = (pytester.path / "report.md").read_text()
    assert "**2 of 2 cases failing" in report and "cases pass" not in report


def damaged_history(path: Path, how: str) -> Path:
    """A history holding 400 cases, then random bytes throughout, or overwritten past byte 12288."""
    with HistoryStore(f"sqlite:///{path}") as store:
        record = Record(suite="s", case_id="c", model="m", method="dense", ratio=None, benchmark="b", metric="p_at_1",
                        higher_is_better=True, n=1, dense=None, baseline=None, current=0.5, delta=None, retention=None,
                        status="pass", message="x" * 100, method_report="", seconds=0.0, entry=None)
        store.record_run(RunMeta(suites=("s",), device="cpu"), [record] * 400)
    data = path.read_bytes()
    noise = random.Random(0).randbytes(len(data))
    path.write_bytes(noise if how == "random" else data[:12288] + noise[12288:])
    return path


@pytest.mark.parametrize("how", ["random", "overwritten"])
def test_a_damaged_history_stops_the_session_before_any_case_runs(pytester, tiny_llama, how):
    _project(pytester, tiny_llama, "nan_weights")
    path = damaged_history(pytester.path / "history.db", how)
    result = pytester.runpytest("--knowledge-suite=suite.yaml", f"--knowledge-history={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1, result.errlines
    assert errors[0].startswith(f"ERROR: cannot use history database {path}: ")
    assert "move it away to start a new history" in errors[0] and "--knowledge-no-history" in errors[0]
    assert "INTERNALERROR" not in result.stdout.str() and "collected" not in result.stdout.str()


def test_an_unwritable_baselines_folder_fails_the_session_after_its_summary(pytester, tiny_llama):
    """Tests run as root, where chmod does not stop a write: the baseline folder's parent is a regular
    file instead, so creating the folder fails the way a read-only one does."""
    _project(pytester, tiny_llama, "nan_weights")
    (pytester.path / "blocker").write_text("not a folder")
    result = pytester.runpytest("--knowledge-suite=suite.yaml", "-k", "dense", "--knowledge-update-baselines",
                                "--knowledge-baselines=blocker/baselines", "--knowledge-report=report.md")
    result.assert_outcomes(passed=2, deselected=10)
    assert result.ret == 1
    folder = pytester.path / "blocker" / "baselines"
    result.stdout.fnmatch_lines(["*knowledge summary*", "2 new", "*knowledge outputs failed*",
                                 f"ERROR: cannot write baselines under {folder}: *"])
    out = result.stdout.str()
    assert "baselines written under" not in out and "Traceback" not in out and "INTERNALERROR" not in out
    [(run, _)] = _history_runs(pytester)
    assert run.complete and run.exit_status == 1
    assert "cases pass" not in (pytester.path / "report.md").read_text()


def test_unreadable_baseline_fails_its_cases_and_is_left_untouched(pytester, tiny_llama):
    _project(pytester, tiny_llama, "nan_weights")
    path = pytester.path / "baselines/faults/tiny.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"format": 1, "entries": {"tiny-dense-caps": {"metric"')
    for args in ((), ("--knowledge-update-baselines",)):
        result = pytester.runpytest("--knowledge-suite=suite.yaml", "-k", "dense", *args)
        result.assert_outcomes(failed=2, deselected=10)
        result.stdout.fnmatch_lines(["*unreadable baseline file*restore it from version control*"])
    assert path.read_text() == '{"format": 1, "entries": {"tiny-dense-caps": {"metric"'


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "b.json"
    write_atomic(path, "old")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]


KILLER = """
import os
import signal

import pytest

RECORDS = []


@pytest.hookimpl(trylast=True)  # after the plugin has written the record to the history
def pytest_runtest_logreport(report):
    if report.when == "call" and any(key == "knowledge_record" for key, _ in report.user_properties):
        RECORDS.append(report.nodeid)
        if len(RECORDS) == int(os.environ["KILL_AFTER_RECORDS"]):
            os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("kill_after", [1, 5])
def test_a_killed_session_leaves_every_store_readable(pytester, tiny_llama, kill_after):
    """The session is SIGKILLed right after its k-th case was recorded, with baselines and cache being updated."""
    _project(pytester, tiny_llama, "prune2")
    (pytester.path / "suite.yaml").write_text(SUITE.format(source=tiny_llama, faulty="prune2")
                                              .replace("method: prune2", "method: magnitude, scope: ffn"))
    command = [sys.executable, "-m", "pytest", "--knowledge-suite=suite.yaml", "--knowledge-update-baselines",
               "-p", "no:cacheprovider"]
    first = subprocess.run([*command, "-k", "dense"], cwd=pytester.path, capture_output=True)
    assert first.returncode == 0, first.stdout.decode()[-2000:]
    baseline = pytester.path / "baselines/faults/tiny.json"
    before = baseline.read_bytes()
    pytester.makeconftest(FAULTY_METHODS + KILLER)
    killed = subprocess.run(command, cwd=pytester.path, capture_output=True,
                            env={**os.environ, "KILL_AFTER_RECORDS": str(kill_after)})
    assert killed.returncode == -9, killed.stdout.decode()[-2000:]

    assert baseline.read_bytes() == before  # baselines are written only when a session ends
    history = pytester.path / ".knowledge/history.db"
    with sqlite3.connect(history) as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    runs = _history_runs(pytester)
    assert [(run.complete, len(records)) for run, records in runs] == [(True, 2), (False, kill_after)]
    cached = [p for p in (pytester.path / ".knowledge/cache").rglob("*") if p.is_file()]
    assert len(cached) >= kill_after
    for path in cached:
        json.loads(path.read_text())
    assert list(pytester.path.rglob("*.tmp")) == []  # temporary files start with a dot: rglob finds those too
