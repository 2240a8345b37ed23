"""Content-addressed result cache: a case is recomputed only when something it depends on changed.

The key hashes the model's weight fingerprint, family, dtype and device kind; every method step
with its version, the digest of its source file and its full config; the ratio; the benchmark
with its source digest, config, data fingerprint and scorer version; and the versions of this
package, torch and transformers. Editing a method's or benchmark's file recomputes its cases.
A different model can therefore never be served another model's result (the failure
lm-eval's text-keyed request cache has).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pytest_knowledge import __version__
from pytest_knowledge.benchmarks import BENCHMARKS, BenchmarkResult
from pytest_knowledge.core.config import to_plain
from pytest_knowledge.core.files import dump_json, write_atomic
from pytest_knowledge.core.fingerprints import code_digest, digest
from pytest_knowledge.core.versions import describe_versions
from pytest_knowledge.engine.agreement import Agreement
from pytest_knowledge.methods import MethodReport
from pytest_knowledge.suite.parse import Case

CacheMode = Literal["use", "refresh", "off"]
FORMAT = 2


def _library_versions() -> tuple[str, ...]:
    versions = describe_versions()
    return tuple(versions[p] for p in ("torch", "transformers"))


def case_key(case: Case, fingerprint: str, data_fingerprint: str, scorer_version: str, dense: bool = False,
             device: str = "cpu", reference: str | None = None) -> str:
    """The cache key of ``case`` (or of its dense reference when ``dense``) on a kind of ``device``;
    ``reference`` is the weight fingerprint of the model an artifact is compared with (its agreement
    and KL are measured against that model)."""
    steps = [] if dense or case.method is None else [
        (s.method.name, s.method.version, code_digest(s.method.apply), sorted(to_plain(s.config).items()))
        for s in case.method.steps
    ]
    benchmark = BENCHMARKS.lookup(case.benchmark.kind, "benchmark")
    parts: tuple[object, ...] = (
        FORMAT, __version__, _library_versions(),
        fingerprint, case.model.family, case.model.dtype, device,
        steps, None if dense else case.ratio,
        case.benchmark.kind, code_digest(benchmark.factory), sorted(to_plain(case.benchmark.config).items()),
        data_fingerprint, scorer_version,
    )
    return digest(*parts) if reference is None else digest(*parts, ("reference", reference))


@dataclass(frozen=True)
class CachedResult:
    result: BenchmarkResult
    report: MethodReport | None
    agreement: Agreement | None = None


class ResultCache:
    """JSON files under ``root/<key[:2]>/<key>.json``, written atomically by whichever process computed them."""

    def __init__(self, root: Path, mode: CacheMode = "use"):
        self.root = root
        self.mode = mode

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> CachedResult | None:
        if self.mode != "use":
            return None
        path = self._path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            report, agreed = data.get("report"), data.get("agreement")
            return CachedResult(BenchmarkResult(**data["result"]), MethodReport(**report) if report else None,
                                Agreement(**agreed) if agreed else None)
        except (OSError, ValueError, TypeError, KeyError):
            return None  # missing or unreadable entries are recomputed

    def put(self, key: str, result: BenchmarkResult, report: MethodReport | None,
            agreed: Agreement | None = None) -> None:
        if self.mode == "off":
            return
        payload: dict[str, Any] = {
            "format": FORMAT,
            "result": dataclasses.asdict(result),
            "report": report.to_json() if report else None,
            "agreement": dataclasses.asdict(agreed) if agreed else None,
        }
        write_atomic(self._path(key), dump_json(payload))
