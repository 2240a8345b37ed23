"""Run cases: from the result cache when it has them, else on the workbench.

Everything needed to look a case up (weight-file fingerprints, method configs, benchmark
data fingerprints, the device kind) is known without torch, so a suite whose cases are
all cached runs without importing torch or transformers. The dense result of each
(model, benchmark) is measured once and reused by every compressed case that needs it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_knowledge.benchmarks import BENCHMARKS, Benchmark, BenchmarkResult
from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.engine.agreement import Agreement
from pytest_knowledge.engine.cache import ResultCache, case_key
from pytest_knowledge.engine.devices import compute_kind
from pytest_knowledge.engine.loading import source_fingerprint
from pytest_knowledge.engine.references import reference_of
from pytest_knowledge.methods import MethodReport
from pytest_knowledge.suite.parse import BenchmarkEntry, Case, ModelEntry

if TYPE_CHECKING:
    from pytest_knowledge.engine.workbench import Workbench


@dataclass(frozen=True)
class CaseResult:
    """What running one case produced, before it is judged against a baseline."""

    result: BenchmarkResult
    dense: BenchmarkResult
    report: MethodReport | None
    fingerprint: str
    data_fingerprint: str
    seconds: float
    from_cache: bool = False
    agreement: Agreement | None = None
    device: str = "cpu"  # the device kind that computed it: 'cpu' or 'cuda'


def _check_finite(result: BenchmarkResult, case: Case) -> None:
    if not math.isfinite(result.value):
        raise KnowledgeError(
            f"{case.id}: {result.metric} is {result.value} — the compressed model produces NaN/inf"
        )


class Engine:
    """Per-process memo of benchmarks and dense results in front of the on-disk result
    cache; the workbench (and torch with it) is created at the first cache miss."""

    def __init__(self, cache: ResultCache | None = None, device: str | None = None, threads: int | None = None,
                 export: Path | None = None):
        self.cache = cache or ResultCache(Path(), mode="off")
        self.device = device
        self.threads = threads
        self.export = export  # write each computed compressed model under this folder
        self._workbench: Workbench | None = None
        self._kind: str | None = None
        self._benchmarks: dict[BenchmarkEntry, Benchmark] = {}
        self._dense: dict[tuple[ModelEntry, BenchmarkEntry], tuple[BenchmarkResult, bool]] = {}

    @property
    def workbench(self) -> Workbench:
        if self._workbench is None:
            from pytest_knowledge.engine.workbench import Workbench

            self._workbench = Workbench(self.device, self.threads)
        return self._workbench

    @property
    def device_kind(self) -> str:
        if self._kind is None:
            self._kind = compute_kind(self.device)
        return self._kind

    def benchmark(self, entry: BenchmarkEntry) -> Benchmark:
        if entry not in self._benchmarks:
            self._benchmarks[entry] = BENCHMARKS.lookup(entry.kind, "benchmark").factory(entry.config)
        return self._benchmarks[entry]

    def fingerprint(self, entry: ModelEntry) -> str:
        """From the weight files when possible, so cached cases never load the model."""
        return source_fingerprint(entry.source) or self.workbench.model(entry).fingerprint

    def _dense_result(self, model: ModelEntry, benchmark: BenchmarkEntry, key: str) -> tuple[BenchmarkResult, bool]:
        memo = (model, benchmark)
        if memo not in self._dense:
            hit = self.cache.get(key)
            if hit is not None:
                self._dense[memo] = (hit.result, True)
            else:
                result = self.workbench.evaluate_dense(model, self.benchmark(benchmark))
                self.cache.put(key, result, None)
                self._dense[memo] = (result, False)
        return self._dense[memo]

    def run(self, case: Case) -> CaseResult:
        """The case's result and the dense result it is judged against: its own model's, or for an
        artifact its reference's (evaluated once, however many artifacts name it)."""
        start = time.perf_counter()
        bench = self.benchmark(case.benchmark)
        parent = reference_of(case)
        fingerprint = self.fingerprint(case.model)
        data = bench.data_fingerprint()
        version = str(getattr(bench, "version", "1"))
        kind = self.device_kind
        dense_case = case if parent is None else replace(case, model=parent, method=None, ratio=None, parent=None)
        dense_fingerprint = fingerprint if parent is None else self.fingerprint(parent)
        dense_key = case_key(dense_case, dense_fingerprint, data, version, dense=True, device=kind)
        dense, cached = self._dense_result(dense_case.model, case.benchmark, dense_key)
        result: BenchmarkResult = dense
        report: MethodReport | None = None
        agreed: Agreement | None = None
        if case.compared_with_dense:
            reference = None if parent is None else dense_fingerprint
            key = case_key(case, fingerprint, data, version, device=kind, reference=reference)
            exporting = self.export is not None and case.method is not None
            hit = None if exporting else self.cache.get(key)  # an export needs the model in memory
            if hit is not None:
                result, report, agreed, cached = hit.result, hit.report, hit.agreement, True
            else:
                result, report, agreed = self.workbench.evaluate_compressed(case, bench, parent,
                                                                            self.export if exporting else None)
                self.cache.put(key, result, report, agreed)
                cached = False
        _check_finite(result, case)
        return CaseResult(result, dense, report, fingerprint, data, time.perf_counter() - start, cached, agreed, kind)
