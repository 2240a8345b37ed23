"""Failure modes: each one a clear message on the case it hits, while the session goes on."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_knowledge.core.files import write_atomic

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


def test_a_crashed_worker_loses_only_its_case(pytester, tiny_llama):
    _project(pytester, tiny_llama, "crash")
    result = pytester.runpytest_subprocess("--knowledge-suite=suite.yaml", "--knowledge-update-baselines", "-n", "2",
                                           "--knowledge-no-cache", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=10, failed=2)
    result.stdout.fnmatch_lines(["*crashed while running*"])
    entries = _entries(pytester)
    assert len(entries) == 10 and not any("crash" in case_id for case_id in entries)


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


@pytest.mark.parametrize("delay", [4.0, 7.0, 10.0])
def test_a_killed_session_leaves_every_store_readable(pytester, tiny_llama, delay):
    _project(pytester, tiny_llama, "prune2")
    (pytester.path / "suite.yaml").write_text(SUITE.format(source=tiny_llama, faulty="prune2")
                                              .replace("method: prune2", "method: magnitude, scope: ffn"))
    command = [sys.executable, "-m", "pytest", "--knowledge-suite=suite.yaml", "--knowledge-update-baselines",
               "-p", "no:cacheprovider"]
    process = subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    baseline = pytester.path / "baselines/faults/tiny.json"
    if baseline.exists():
        json.loads(baseline.read_text())
    history = pytester.path / ".knowledge/history.db"
    if history.exists():
        with sqlite3.connect(history) as db:
            assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    for cached in (pytester.path / ".knowledge/cache").rglob("*"):
        if cached.is_file():
            json.loads(cached.read_text())
    leftovers = [p for p in pytester.path.rglob("*.tmp")]
    assert not leftovers or all(p.name.startswith(".") for p in leftovers)  # temp files never replace a store
