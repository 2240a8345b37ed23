"""Test ids: unique per suite file wherever it lives, and never silently shared."""

from __future__ import annotations

import pytest

IDS = ["tiny-dense-caps", "tiny-prune-0.50-caps"]


def _outside_suites(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory, tiny_suite, source, names):
    """Suite files with one grid, each in its own folder outside the rootdir, linked from one suite folder."""
    pytester.makeini("[pytest]\n")  # the rootdir is the project, not a common parent of the suites
    linked = tmp_path_factory.mktemp("suites")
    files = []
    for i, name in enumerate(names):
        target = tmp_path_factory.mktemp(f"elsewhere{i}") / "suite.yaml"
        target.write_text(tiny_suite(source, name=name))
        (linked / f"{i}.yaml").symlink_to(target)
        files.append(target)
    return linked, files


def test_suites_outside_the_rootdir_each_run_every_case_under_xdist(pytester, tmp_path_factory, tiny_llama, tiny_suite):
    folder, files = _outside_suites(pytester, tmp_path_factory, tiny_suite, tiny_llama, ["first", "second"])
    assert not any(f.is_relative_to(pytester.path) for f in files)
    result = pytester.runpytest_subprocess(f"--knowledge-suite={folder}", "--knowledge-update-baselines",
                                           "--knowledge-no-cache", "--knowledge-no-history", "-n", "2", "-rA")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines_random([f"PASSED {f.as_posix()}::{case_id}" for f in files for case_id in IDS])


def test_two_files_with_one_suite_name_are_refused_before_any_case_runs(pytester, tmp_path_factory, tiny_llama, tiny_suite):
    folder, files = _outside_suites(pytester, tmp_path_factory, tiny_suite, tiny_llama, ["same", "same"])
    result = pytester.runpytest_subprocess(f"--knowledge-suite={folder}", "--knowledge-no-cache",
                                           "--knowledge-no-history")
    assert result.ret != 0
    result.stdout.fnmatch_lines([f"*{files[1]}: case 'same/tiny-dense-caps' is collected also from {files[0]}*"])
    result.assert_outcomes(errors=1)


def test_suite_inside_the_rootdir_keeps_its_relative_id(pytester, tiny_llama, tiny_suite):
    pytester.mkdir("suites").joinpath("mini.yaml").write_text(tiny_suite(tiny_llama, name="mini"))
    result = pytester.runpytest("--knowledge-suite=suites/mini.yaml", "--co", "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"suites/mini.yaml::{case_id}" for case_id in IDS])


def test_a_suite_whose_entries_spell_one_id_twice_is_refused(pytester, tiny_llama):
    """'x' quantised by 'm' to 4 bits and 'x-m' by a method named '4' are both 'x-m-4-caps'."""
    pytester.makefile(".yaml", suite=f"""
models: [{{name: x, source: "{tiny_llama}"}}, {{name: x-m, source: "{tiny_llama}"}}]
methods: [{{name: m, method: rtn, ratios: [4]}}, {{name: "4", method: int8_weight}}]
benchmarks: [{{name: caps, benchmark: facts, limit: 2}}]
""")
    result = pytester.runpytest("--knowledge-suite=suite.yaml", "--co", "-q")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*suite.yaml: case 'suite/x-m-4-caps' is collected twice in this file*"])
