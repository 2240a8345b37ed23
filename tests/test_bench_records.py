"""Per-example ranks and ids travel from a result into baseline entries and results files,
and baselines recorded before they existed still load and judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_knowledge.benchmarks import BenchmarkResult
from pytest_knowledge.engine.engine import CaseResult
from pytest_knowledge.gate.verdict import judge
from pytest_knowledge.stores.baselines import BaselineStore
from pytest_knowledge.stores.results_file import read_results, write_results
from pytest_knowledge.suite.parse import parse_suite

RANKS = (1, 3, 1, 12, 2)
IDS = ("capital/France", "capital/Peru", "capital/Japan", "currency/France", "currency/Peru")


def _case():
    suite = parse_suite({"models": ["m"], "methods": [{"name": "p", "method": "magnitude"}], "ratios": [0.5],
                         "benchmarks": [{"name": "b", "benchmark": "facts"}], "tolerance": {"default": {"abs": 0.5}}},
                        Path("s.yaml"))
    return suite.cases()[1]


def _result(ranks=RANKS, ids=IDS) -> BenchmarkResult:
    outcomes = "".join("1" if r == 1 else "0" for r in ranks)
    return BenchmarkResult("p_at_1", outcomes.count("1") / len(ranks), len(ranks), True, outcomes,
                           ranks=ranks, example_ids=ids)


def test_ranks_and_ids_are_stored_next_to_the_outcomes_in_baselines_and_results_files(tmp_path):
    cr = CaseResult(_result(), _result(), None, "w", "d", 0.0)
    record = judge(_case(), cr, None, update=True, baseline_file="b.json")
    assert (record.entry["outcomes"], record.entry["ranks"], record.entry["example_ids"]) == \
           ("10100", list(RANKS), list(IDS))
    store = BaselineStore(tmp_path / "baselines")
    path = store.write("s", "m", {record.case_id: record.entry})
    stored = json.loads(path.read_text())["entries"][record.case_id]
    assert stored["ranks"] == list(RANKS) and stored["example_ids"] == list(IDS)
    write_results(tmp_path / "results.json", [record], {})
    (again,) = read_results(tmp_path / "results.json")
    assert again.entry["ranks"] == list(RANKS) and again.entry["example_ids"] == list(IDS)


def test_a_result_read_back_from_json_keeps_ranks_as_tuples_and_checks_their_length():
    from dataclasses import asdict

    again = BenchmarkResult(**json.loads(json.dumps(asdict(_result()))))  # how the result cache reads it
    assert (again.ranks, again.example_ids) == (RANKS, IDS)
    with pytest.raises(ValueError, match="4 ranks for 5 examples"):
        BenchmarkResult("p_at_1", 0.4, 5, True, "10100", ranks=RANKS[:4])
    with pytest.raises(ValueError, match="2 example_ids for 5 examples"):
        BenchmarkResult("p_at_1", 0.4, 5, True, "10100", example_ids=IDS[:2])


def test_baselines_recorded_without_ranks_still_load_and_judge(tmp_path):
    entry = {"metric": "p_at_1", "value": 0.4, "n": 5, "higher_is_better": True, "outcomes": "10100",
             "fingerprint": "w", "data_fingerprint": "d"}
    path = tmp_path / "s" / "m.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"format": 1, "suite": "s", "model": "m", "entries": {"c": entry}}))
    stored = BaselineStore(tmp_path).get("s", "m", "c")
    worse = _result(ranks=(2, 3, 1, 12, 2))
    record = judge(_case(), CaseResult(worse, _result(), None, "w", "d", 0.0), stored, False, "b.json")
    assert record.status == "pass" and record.baseline == 0.4
    updated = judge(_case(), CaseResult(_result(), _result(), None, "w", "d", 0.0), {**entry, "value": 0.4},
                    update=True, baseline_file="b.json")
    assert updated.status == "updated"  # same outcomes, but the entry gains its ranks and ids


def test_lm_eval_results_carry_document_ids_with_their_outcomes_and_no_ranks():
    from pytest_knowledge.benchmarks.lm_eval_tasks import LmEvalBenchmark, LmEvalConfig

    bench = LmEvalBenchmark.__new__(LmEvalBenchmark)  # _result reads only these; no task is loaded
    bench.config, bench.metric, bench.higher_is_better = LmEvalConfig(task="t"), "acc", True
    samples = [{"doc_id": d, "filter": "none", "acc": a} for d, a in [(2, 0.0), (0, 1.0), (1, 1.0)]]
    result = bench._result({"results": {"t": {"acc,none": 2 / 3}}, "samples": {"t": samples}})
    assert (result.outcomes, result.example_ids, result.ranks) == ("110", ("t/0", "t/1", "t/2"), None)
