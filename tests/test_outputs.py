"""Outputs are plugins of the knowledge hooks: a conftest.py adds one the way the built-in ones work."""

from __future__ import annotations

import pytest

CONFTEST = """
def pytest_knowledge_record(session, record):
    with open("seen.txt", "a") as out:
        out.write(record.case_id + "\\n")


def pytest_knowledge_finish(session):
    with open("finished.txt", "w") as out:
        out.write(f"{len(session.records)} {session.status()}\\n")
    session.output_failed("chat notification not sent: no network")
"""


def test_a_conftest_output_sees_every_record_and_can_fail_the_session(pytester, tiny_llama, tiny_suite):
    pytester.makefile(".yaml", suite=tiny_suite(tiny_llama, name="outputs"))
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest_inprocess("--knowledge-suite=suite.yaml", "--knowledge-update-baselines",
                                          "--knowledge-no-cache", "--knowledge-no-history", "-p", "no:cacheprovider")
    assert result.ret == 1  # every case passed, but an output failed
    result.assert_outcomes(passed=2)
    assert sorted((pytester.path / "seen.txt").read_text().split()) == ["tiny-dense-caps", "tiny-prune-0.50-caps"]
    assert (pytester.path / "finished.txt").read_text() == "2 0\n"
    result.stdout.fnmatch_lines(["*knowledge outputs failed*", "ERROR: chat notification not sent: no network"])


def test_long_runs_log_their_steps_and_progress(pytester, tiny_llama, tiny_suite):
    """One-time steps and each case's phases go through the pytest_knowledge logger, and a run of
    several cases logs cases done, rate and ETA: pytest's live logging shows them."""
    pytester.makefile(".yaml", suite=tiny_suite(tiny_llama, name="outputs", ratios="[0.2, 0.4, 0.6]"))
    result = pytester.runpytest_inprocess("--knowledge-suite=suite.yaml", "--knowledge-update-baselines",
                                          "--knowledge-no-cache", "--knowledge-no-history", "-p", "no:cacheprovider",
                                          "--log-cli-level=INFO")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines_random([
        "*loading model tiny from*",
        "*scoring tiny dense*",
        "*tiny-prune-0.20-caps: compressing*",
        "*tiny-prune-0.20-caps: scoring*",
        "*tiny-prune-0.20-caps: restoring the dense weights*",
        "*knowledge: 1/4 cases done, * cases/s, ETA * s*",
        "*knowledge: 4/4 cases done, * cases/s*",
    ])


@pytest.mark.slow
def test_progress_counts_every_case_under_xdist(pytester, tiny_llama, tiny_suite):
    """Under xdist the controller collects nothing itself: the total comes from the workers' collection."""
    pytester.makefile(".yaml", suite=tiny_suite(tiny_llama, name="outputs", ratios="[0.2, 0.4, 0.6]"))
    result = pytester.runpytest_subprocess("--knowledge-suite=suite.yaml", "--knowledge-update-baselines",
                                           "--knowledge-no-cache", "--knowledge-no-history", "-p", "no:cacheprovider",
                                           "-n", "2", "--log-cli-level=INFO")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines_random(["*knowledge: 1/4 cases done*ETA*", "*knowledge: 4/4 cases done*"])
