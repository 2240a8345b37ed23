"""The structure stays visible: layer contract, lint, public API, third-party entry points,
and result-cache keys that follow a method's source."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pytest_knowledge
from pytest_knowledge.api import plugins
from pytest_knowledge.engine.cache import case_key
from pytest_knowledge.methods import METHODS
from pytest_knowledge.suite.parse import parse_suite

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_layers_contract_holds():
    """pyproject.toml's import-linter contracts: data flows one way, no cycles inside a layer."""
    run = subprocess.run([str(BIN / "lint-imports")], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "2 kept, 0 broken" in run.stdout


def test_ruff_passes():
    run = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]


def test_public_api_resolves_every_name():
    for name in pytest_knowledge.__all__:
        assert getattr(pytest_knowledge, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Engine'"):
        pytest_knowledge.Engine  # noqa: B018


def install_entry_point(folder: Path, monkeypatch, distribution: str, line: str) -> None:
    """An installed distribution (its dist-info on sys.path) naming ``line`` in the pytest_knowledge group,
    and registries that load their plugins again."""
    info = folder / f"{distribution.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[pytest_knowledge]\n{line}\n")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setitem(plugins._state, "loaded", False)


def test_an_installed_entry_point_registers_a_method_without_a_conftest(tmp_path, monkeypatch):
    (tmp_path / "thirdparty_noop.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from pytest_knowledge import MethodReport, register_method

        @dataclass(frozen=True)
        class NoopConfig:
            pass

        @register_method("thirdparty_noop", NoopConfig)
        def noop(model, config, ratio, context):
            return MethodReport(touched_parameters=0)
    '''))
    install_entry_point(tmp_path, monkeypatch, "thirdparty-noop", "noop = thirdparty_noop")
    try:
        assert "thirdparty_noop" in METHODS
        suite = parse_suite({"models": ["m"], "methods": [{"name": "n", "method": "thirdparty_noop"}],
                             "benchmarks": [{"name": "b", "benchmark": "facts"}]}, Path("s.yaml"))
        assert [c.method_name for c in suite.cases()] == ["dense", "n"]
    finally:
        METHODS._entries.pop("thirdparty_noop", None)
        sys.modules.pop("thirdparty_noop", None)


def test_a_broken_entry_point_names_itself(tmp_path, monkeypatch):
    install_entry_point(tmp_path, monkeypatch, "broken", "broken = no_such_module_here")
    with pytest.raises(pytest_knowledge.KnowledgeError, match="entry point 'broken' = 'no_such_module_here'"):
        METHODS.names()


def test_editing_a_methods_source_changes_its_cache_key(tmp_path, monkeypatch):
    """The key follows the file that defines the method's function, not only its name and config."""
    monkeypatch.syspath_prepend(str(tmp_path))
    keys = []
    for variant in ("a", "b"):
        (tmp_path / f"method_{variant}.py").write_text(f"def apply(model, config, ratio, context):\n    return '{variant}'\n")
        apply = importlib.import_module(f"method_{variant}").apply
        suite = parse_suite({"models": ["m"], "methods": [{"name": "p", "method": "magnitude"}], "ratios": [0.5],
                             "benchmarks": [{"name": "b", "benchmark": "facts"}]}, Path("s.yaml"))
        case = suite.cases()[1]
        step = case.method.steps[0]
        method = dataclasses.replace(step.method, apply=apply)
        edited = dataclasses.replace(case, method=dataclasses.replace(case.method, steps=(dataclasses.replace(step, method=method),)))
        keys.append(case_key(edited, "weights", "data", "1"))
    assert keys[0] != keys[1]
    versioned = dataclasses.replace(step.method, version="2")
    bumped = dataclasses.replace(case, method=dataclasses.replace(case.method, steps=(dataclasses.replace(step, method=versioned),)))
    assert case_key(bumped, "weights", "data", "1") != case_key(case, "weights", "data", "1")
