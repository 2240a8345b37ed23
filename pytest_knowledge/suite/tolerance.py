"""How far a measured metric may move from its baseline before a case fails.

Three kinds, all optional and combinable (a case must satisfy every one it has), plus
``significance`` which makes the first two statistical (see docs/tolerances.md):

* ``abs`` and ``rel`` bound the *worsening* against the stored baseline like
  ``numpy.isclose``: allowed = abs + rel * |baseline|.
* ``min_retention`` floors compressed / dense (dense / compressed when lower is
  better), the ratio release gates use.

"Worsening" respects the metric's direction, so perplexity going up is a drop.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from pytest_knowledge.core.config import build
from pytest_knowledge.core.errors import SuiteError

EPSILON = 1e-12


@dataclass(frozen=True)
class Tolerance:
    abs: float = 0.0
    rel: float = 0.0
    min_retention: float | None = None
    significance: float | None = None

    def validate(self) -> str | None:
        if self.abs < 0 or self.rel < 0:
            return "abs and rel to be >= 0"
        if self.min_retention is not None and not 0 <= self.min_retention <= 1:
            return "min_retention in [0, 1]"
        if self.significance is not None and not 0 < self.significance < 1:
            return "significance (alpha) in (0, 1)"
        return None

    def allowed_drop(self, baseline: float) -> float:
        return self.abs + self.rel * abs(baseline)

    def describe(self) -> str:
        parts = [f"abs {self.abs:g}", f"rel {self.rel:g}"]
        if self.min_retention is not None:
            parts.append(f"min_retention {self.min_retention:g}")
        if self.significance is not None:
            parts.append(f"significance {self.significance:g}")
        return ", ".join(parts)


def worsening(current: float, reference: float, higher_is_better: bool) -> float:
    """How much worse ``current`` is than ``reference`` (negative when better)."""
    return reference - current if higher_is_better else current - reference


def retention(current: float, dense: float, higher_is_better: bool) -> float:
    """Fraction of the dense model's score kept; 1.0 when there was nothing to keep."""
    if higher_is_better:
        return current / dense if dense > 0 else 1.0
    return dense / current if current > 0 else 1.0


def within_baseline(current: float, baseline: float, tolerance: Tolerance, higher_is_better: bool) -> bool:
    return worsening(current, baseline, higher_is_better) <= tolerance.allowed_drop(baseline) + EPSILON


def beyond_improvement(current: float, baseline: float, tolerance: Tolerance, higher_is_better: bool) -> bool:
    """Better than baseline by more than the tolerance: passes, but the baseline is stale."""
    return -worsening(current, baseline, higher_is_better) > tolerance.allowed_drop(baseline) + EPSILON


def retention_ok(current: float, dense: float, tolerance: Tolerance, higher_is_better: bool) -> bool:
    if tolerance.min_retention is None:
        return True
    return retention(current, dense, higher_is_better) >= tolerance.min_retention - EPSILON


@dataclass(frozen=True)
class TolerancePolicy:
    """Suite-wide default, overridden per benchmark, then per method (most specific wins, key by key)."""

    default: Tolerance = Tolerance()
    benchmarks: tuple[tuple[str, dict[str, Any]], ...] = ()
    methods: tuple[tuple[str, dict[str, Any]], ...] = ()

    def for_case(self, method: str, benchmark: str) -> Tolerance:
        result = self.default
        for overrides in (dict(self.benchmarks).get(benchmark), dict(self.methods).get(method)):
            if overrides:
                result = replace(result, **overrides)
        return result


def parse_policy(data: Any, key: str, methods: set[str], benchmarks: set[str]) -> TolerancePolicy:
    """Read the suite's ``tolerance`` mapping; overrides must name methods and benchmarks of the suite."""
    if data is None:
        return TolerancePolicy()
    if not isinstance(data, dict):
        raise SuiteError(key, "a mapping with default, benchmarks, methods", data)
    unknown = set(data) - {"default", "benchmarks", "methods"}
    if unknown:
        raise SuiteError(f"{key}.{sorted(unknown)[0]}", "one of default, benchmarks, methods", sorted(unknown)[0])
    default = build(Tolerance, data.get("default"), f"{key}.default")
    known = {f.name for f in fields(Tolerance)}
    parsed = {}
    for section, names in (("benchmarks", benchmarks), ("methods", methods)):
        entries = data.get(section) or {}
        if not isinstance(entries, dict):
            raise SuiteError(f"{key}.{section}", "a mapping of name to tolerance", entries)
        items = []
        for name, override in entries.items():
            where = f"{key}.{section}.{name}"
            if name not in names:
                raise SuiteError(where, f"a {section[:-1]} name of this suite ({', '.join(sorted(names))})", name)
            checked = build(Tolerance, override, where)  # validates types and ranges
            items.append((name, {k: getattr(checked, k) for k in (override or {}) if k in known}))
        parsed[section] = tuple(items)
    return TolerancePolicy(default, parsed["benchmarks"], parsed["methods"])
