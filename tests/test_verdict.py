"""Judging results against baselines and dense, with synthetic results (no model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_knowledge.benchmarks import BenchmarkResult
from pytest_knowledge.engine.engine import CaseResult
from pytest_knowledge.gate.verdict import judge
from pytest_knowledge.suite.parse import parse_suite

BASELINE_OUTCOMES = "1111111111" + "0000000000"  # 20 facts, 10 known


def _case(tolerance: dict):
    suite = parse_suite({
        "models": ["m"], "methods": [{"name": "p", "method": "magnitude"}], "ratios": [0.5],
        "benchmarks": [{"name": "b", "benchmark": "facts"}], "tolerance": {"default": tolerance},
    }, Path("s.yaml"))
    return suite.cases()[1]


def _result(outcomes: str) -> BenchmarkResult:
    return BenchmarkResult("p_at_1", outcomes.count("1") / len(outcomes), len(outcomes), True, outcomes)


def _judge(tolerance: dict, current: str, dense: str = BASELINE_OUTCOMES):
    stored = {"metric": "p_at_1", "value": 0.5, "n": 20, "higher_is_better": True, "outcomes": BASELINE_OUTCOMES,
              "fingerprint": "w", "data_fingerprint": "d"}
    cr = CaseResult(_result(current), _result(dense), None, "w", "d", 0.0)
    return judge(_case(tolerance), cr, stored, update=False, baseline_file="b.json")


NOISE = "0011111111" + "0000000000"  # lost 2 of 10: p = P(X >= 2 | Bin(2, 1/2)) = 0.25
REAL = "0000000011" + "0000000000"  # lost 8: p = 1/256


def test_drop_inside_noise_passes_only_under_significance():
    assert _judge({"abs": 0.02}, NOISE).status == "fail"
    record = _judge({"abs": 0.02, "significance": 0.05}, NOISE)
    assert record.status == "pass"
    assert record.p_value == pytest.approx(0.25)


def test_real_drop_of_the_same_probe_size_fails_with_p_value_and_interval():
    record = _judge({"abs": 0.02, "significance": 0.05}, REAL)
    assert record.status == "fail"
    assert record.p_value == pytest.approx(1 / 256)
    assert "p=0.00391 (exact McNemar)" in record.message
    assert "95% CI of delta [" in record.message
    assert "significant at alpha 0.05" in record.message


def test_retention_gate_uses_the_paired_test_against_dense():
    real = _judge({"min_retention": 0.9, "abs": 1.0, "significance": 0.05}, REAL)
    assert real.status == "fail" and "vs dense" in real.message
    noisy = _judge({"min_retention": 0.9, "abs": 1.0, "significance": 0.05}, NOISE)
    assert noisy.status == "pass"


def test_untestable_drop_counts_as_significant():
    stored = {"metric": "p_at_1", "value": 0.5, "n": 20, "higher_is_better": True, "fingerprint": "w"}
    result = BenchmarkResult("p_at_1", 0.3, 20, True, None)
    cr = CaseResult(result, result, None, "w", "d", 0.0)
    record = judge(_case({"abs": 0.02, "significance": 0.05}), cr, stored, update=False, baseline_file="b.json")
    assert record.status == "fail" and "not testable" in record.message


def test_stderr_metrics_use_a_z_test():
    stored = {"metric": "acc", "value": 0.80, "n": 200, "higher_is_better": True, "fingerprint": "w",
              "extra": {"acc_stderr": 0.03}}
    small = BenchmarkResult("acc", 0.77, 200, True, None, {"acc_stderr": 0.03})
    big = BenchmarkResult("acc", 0.60, 200, True, None, {"acc_stderr": 0.035})
    case = _case({"abs": 0.01, "significance": 0.05})
    assert judge(case, CaseResult(small, small, None, "w", "d", 0.0), stored, False, "b").status == "pass"
    failed = judge(case, CaseResult(big, big, None, "w", "d", 0.0), stored, False, "b")
    assert failed.status == "fail" and "z-test" in failed.message


def test_forgotten_facts_match_the_per_example_outcomes():
    examples = tuple({"relation": "capital", "subject": f"country{i}", "expected": f"city{i}", "answer": f"guess{i}"}
                     for i in range(20))
    current = BenchmarkResult("p_at_1", REAL.count("1") / 20, 20, True, REAL, examples=examples)
    stored = {"metric": "p_at_1", "value": 0.5, "n": 20, "higher_is_better": True, "outcomes": BASELINE_OUTCOMES,
              "fingerprint": "w", "data_fingerprint": "d"}
    cr = CaseResult(current, _result(BASELINE_OUTCOMES), None, "w", "d", 0.0)
    record = judge(_case({"abs": 0.02}), cr, stored, update=False, baseline_file="b.json")
    lost = [i for i in range(20) if BASELINE_OUTCOMES[i] == "1" and REAL[i] == "0"]
    assert [e["subject"] for e in record.lost] == [f"country{i}" for i in lost]
    assert record.gained == [] and record.compared_with == "baseline"
    assert "8 lost, 0 gained vs baseline" in record.message
    assert "country0 [capital]: expected 'city0', answered 'guess0'" in record.message


def test_a_baseline_for_another_metric_is_never_compared():
    stored = {"metric": "acc", "value": 0.5, "n": 20, "higher_is_better": True, "fingerprint": "w",
              "data_fingerprint": "d"}
    cr = CaseResult(_result(BASELINE_OUTCOMES), _result(BASELINE_OUTCOMES), None, "w", "d", 0.0)
    record = judge(_case({"abs": 1.0}), cr, stored, update=False, baseline_file="b.json")
    assert record.status == "fail"
    assert "records metric 'acc', but the benchmark now produces 'p_at_1'" in record.message


def _judge_on(recorded_on: str, measured_on: str, current: str):
    stored = {"metric": "p_at_1", "value": 0.5, "n": 20, "higher_is_better": True, "outcomes": BASELINE_OUTCOMES,
              "fingerprint": "w", "data_fingerprint": "d", "device": recorded_on}
    cr = CaseResult(_result(current), _result(BASELINE_OUTCOMES), None, "w", "d", 0.0, device=measured_on)
    return judge(_case({"abs": 0.06}), cr, stored, update=False, baseline_file="b.json")


def test_a_baseline_from_another_device_kind_is_compared_by_the_tolerance_and_says_so():
    """bf16 on a GPU and fp32 on a CPU give slightly different numbers for the same weights:
    within the tolerance that is a pass (with a note), beyond it a failure — never a refusal."""
    one_fact_less = "0111111111" + "0000000000"
    close = _judge_on("cuda", "cpu", one_fact_less)
    assert close.status == "pass"
    assert close.message == ("baseline recorded on cuda, measured on cpu: compared within the tolerance, "
                             "not expected to match exactly")
    far = _judge_on("cuda", "cpu", REAL)
    assert far.status == "fail" and "worse than baseline" in far.message
    assert "baseline recorded on cuda, measured on cpu" in far.message
    assert _judge_on("cpu", "cpu", one_fact_less).message == ""
    assert _judge_on("cuda", "cpu", one_fact_less).entry["device"] == "cpu"
