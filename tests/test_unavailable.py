"""A case this machine cannot run is skipped with the reason, and shows as skipped in every output."""

from __future__ import annotations

import json


def test_a_scheme_the_cpu_cannot_run_is_a_skip_in_every_output(pytester, tiny_llama, tiny_suite):
    pytester.makefile(".yaml", suite=tiny_suite(tiny_llama, name="hardware", ratios="[]", methods="[{name: fp8_dynamic, method: torchao, scheme: float8_dynamic}, {name: fp8_weight, method: torchao, scheme: float8_weight}]"))
    result = pytester.runpytest_inprocess("--knowledge-suite=suite.yaml", "--knowledge-update-baselines",
                                          "--knowledge-no-cache", "--knowledge-results=results.json",
                                          "--knowledge-report=report.md", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*torchao scheme float8_dynamic needs a GPU of compute capability 8.9*"])
    statuses = {r["case_id"]: r["status"] for r in json.loads((pytester.path / "results.json").read_text())["records"]}
    assert statuses == {"tiny-dense-caps": "new", "tiny-fp8_dynamic-caps": "skipped", "tiny-fp8_weight-caps": "new"}
    report = (pytester.path / "report.md").read_text()
    assert "**2 of 3 cases pass, 1 skipped on this machine (2 new, 1 skipped)**" in report
    entries = json.loads((pytester.path / "baselines/hardware/tiny.json").read_text())["entries"]
    assert sorted(entries) == ["tiny-dense-caps", "tiny-fp8_weight-caps"]
