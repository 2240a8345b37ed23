"""Outputs are plugins of the knowledge hooks: a conftest.py adds one the way the built-in ones work."""

from __future__ import annotations

SUITE = """
name: outputs
models:
  - {{name: tiny, source: "{source}"}}
methods:
  - {{name: prune, method: magnitude}}
ratios: [0.5]
benchmarks:
  - {{name: caps, benchmark: facts, limit: 2}}
"""

CONFTEST = """
def pytest_knowledge_record(session, record):
    with open("seen.txt", "a") as out:
        out.write(record.case_id + "\\n")


def pytest_knowledge_finish(session):
    with open("finished.txt", "w") as out:
        out.write(f"{len(session.records)} {session.status()}\\n")
    session.output_failed("chat notification not sent: no network")
"""


def test_a_conftest_output_sees_every_record_and_can_fail_the_session(pytester, tiny_llama):
    pytester.makefile(".yaml", suite=SUITE.format(source=tiny_llama))
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest_inprocess("--knowledge-suite=suite.yaml", "--knowledge-update-baselines",
                                          "--knowledge-no-cache", "--knowledge-no-history", "-p", "no:cacheprovider")
    assert result.ret == 1  # every case passed, but an output failed
    result.assert_outcomes(passed=2)
    assert sorted((pytester.path / "seen.txt").read_text().split()) == ["tiny-dense-caps", "tiny-prune-0.50-caps"]
    assert (pytester.path / "finished.txt").read_text() == "2 0\n"
    result.stdout.fnmatch_lines(["*knowledge outputs failed*", "ERROR: chat notification not sent: no network"])
