"""Judge one case's result against its stored baseline and the dense reference.

The outcome is a ``Record``: a plain dict-friendly summary that travels from an xdist
worker to the controller, which alone writes baselines and prints the table.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any

from pytest_knowledge.core.versions import describe_versions
from pytest_knowledge.gate.record import Record, same_measurement
from pytest_knowledge.gate.significance import Significance, mcnemar, z_test
from pytest_knowledge.suite.tolerance import (
    beyond_improvement,
    retention,
    retention_ok,
    within_baseline,
    worsening,
)

if TYPE_CHECKING:
    from pytest_knowledge.benchmarks import BenchmarkResult
    from pytest_knowledge.engine.engine import CaseResult
    from pytest_knowledge.suite.parse import Case
SHOWN_FACTS = 10


def baseline_entry(cr: CaseResult) -> dict[str, Any]:
    """What is stored for a case: enough to compare, to audit, and to find changed examples."""
    r = cr.result
    return {
        "metric": r.metric,
        "value": r.value,
        "n": r.n,
        "higher_is_better": r.higher_is_better,
        "outcomes": r.outcomes,
        "ranks": list(r.ranks) if r.ranks is not None else None,
        "example_ids": list(r.example_ids) if r.example_ids is not None else None,
        "extra": dict(sorted(r.extra.items())),
        "fingerprint": cr.fingerprint,
        "data_fingerprint": cr.data_fingerprint,
        "device": cr.device,
        "method_report": cr.report.to_json() if cr.report else None,
        "versions": describe_versions(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _mismatch(case: Case, cr: CaseResult, stored: dict[str, Any]) -> str | None:
    """Why a stored entry cannot be compared with this result, if it cannot."""
    if stored["fingerprint"] != cr.fingerprint:
        return (f"baseline for {case.id} was recorded on model weights {stored['fingerprint']}, "
                f"but {case.model.name!r} now has weights {cr.fingerprint}; refusing to compare. "
                "Re-record with --knowledge-update-baselines if the model change is intended")
    if stored["metric"] != cr.result.metric:
        return (f"baseline for {case.id} records metric {stored['metric']!r}, but the benchmark now produces "
                f"{cr.result.metric!r}; re-record with --knowledge-update-baselines")
    if stored.get("data_fingerprint") not in (None, cr.data_fingerprint):
        return (f"baseline for {case.id} was measured on different benchmark data "
                f"({stored['data_fingerprint']} vs {cr.data_fingerprint}); re-record with --knowledge-update-baselines")
    return None


def _device_note(stored: dict[str, Any], cr: CaseResult) -> str:
    """Results from another device kind (bf16 on a GPU, fp32 on a CPU) are not bit-identical,
    but they measure the same weights: they are compared by the tolerance, and the verdict says so."""
    recorded = stored.get("device")
    if recorded is None or recorded == cr.device:
        return ""
    return (f"baseline recorded on {recorded}, measured on {cr.device}: compared within the tolerance, "
            "not expected to match exactly")


def _stderr(extra: dict[str, Any], metric: str) -> float | None:
    value = extra.get(f"{metric}_stderr", extra.get("stderr"))
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def significance(reference: dict[str, Any], current: BenchmarkResult) -> Significance | None:
    """Paired McNemar when both sides have per-example outcomes over the same examples,
    else a z-test when both report a standard error, else None (not testable)."""
    ref_outcomes = reference.get("outcomes")
    if ref_outcomes and current.outcomes and len(ref_outcomes) == len(current.outcomes):
        return mcnemar(ref_outcomes, current.outcomes)
    ref_se, cur_se = _stderr(reference.get("extra") or {}, current.metric), _stderr(current.extra, current.metric)
    if ref_se is not None and cur_se is not None:
        return z_test(reference["value"], ref_se, current.value, cur_se, current.higher_is_better)
    return None


def _significant(test: Significance | None, alpha: float | None) -> bool:
    """Without ``significance`` every drop counts; without a usable test, too (gates err on failing)."""
    return alpha is None or test is None or test.p_value < alpha


def judge(case: Case, cr: CaseResult, stored: dict[str, Any] | None, update: bool, baseline_file: str) -> Record:
    r = cr.result
    entry = baseline_entry(cr)
    keep = retention(r.value, cr.dense.value, r.higher_is_better) if case.compared_with_dense else None
    base_value = stored["value"] if stored else None
    delta = r.value - base_value if base_value is not None else None
    comparable = stored is not None and stored.get("data_fingerprint") == cr.data_fingerprint
    parent = case.model.reference
    # An artifact's question is what it lost against the model it was made from.
    compared_with = ("baseline" if comparable and stored.get("outcomes") and parent is None
                     else "dense" if parent is None else f"dense {parent}")
    reference = stored.get("outcomes") if compared_with == "baseline" else cr.dense.outcomes
    lost, gained = changed_examples(reference, r)
    common = dict(
        suite=case.suite, case_id=case.id, model=case.model.name, method=case.method_name, ratio=case.ratio,
        benchmark=case.benchmark.name, metric=r.metric, higher_is_better=r.higher_is_better, n=r.n,
        dense=cr.dense.value, baseline=base_value, current=r.value, delta=delta, retention=keep,
        method_report=", ".join(filter(None, [f"vs {parent}" if parent else "", cr.report.summary() if cr.report else ""])),
        seconds=cr.seconds, entry=entry, reference=parent,
        from_cache=cr.from_cache, lost=lost, gained=gained, compared_with=compared_with,
        agreement=cr.agreement.top1 if cr.agreement else None, kl=cr.agreement.kl if cr.agreement else None,
    )
    if update:
        status = "new" if stored is None else ("unchanged" if same_measurement(stored, entry) else "updated")
        return Record(status=status, message="", **common)
    if stored is None:
        return Record(status="missing", message=(
            f"no baseline for {case.id} in {baseline_file}; run with --knowledge-update-baselines to record it"
        ), **common)
    problem = _mismatch(case, cr, stored)
    if problem:
        return Record(status="fail", message=problem, **common)
    note = _device_note(stored, cr)
    tol = case.tolerance
    alpha = tol.significance
    vs_baseline = significance(stored, r) if alpha is not None else None
    vs_dense = significance(_as_entry(cr.dense), r) if alpha is not None and case.compared_with_dense else None
    common["p_value"] = vs_baseline.p_value if vs_baseline else None
    ok_baseline = within_baseline(r.value, base_value, tol, r.higher_is_better) or not _significant(vs_baseline, alpha)
    ok_retention = (not case.compared_with_dense or retention_ok(r.value, cr.dense.value, tol, r.higher_is_better)
                    or not _significant(vs_dense, alpha))
    if ok_baseline and ok_retention:
        status = "improved" if beyond_improvement(r.value, base_value, tol, r.higher_is_better) else "pass"
        return Record(status=status, message=note, **common)
    reasons = []
    if not ok_baseline:
        reasons.append(f"worse than baseline by {worsening(r.value, base_value, r.higher_is_better):.4f}, "
                       f"allowed {tol.allowed_drop(base_value):.4f}")
    if not ok_retention:
        reasons.append(f"retention {keep:.3f} below min_retention {tol.min_retention:g}")
    if alpha is not None:
        untestable = "not testable (no paired outcomes or standard errors), counted as significant"
        reasons.append(f"significant at alpha {alpha:g}" if (vs_baseline or vs_dense) else untestable)
    direction = "higher" if r.higher_is_better else "lower"
    lines = [
        f"knowledge regression in {case.id}: " + "; ".join(reasons),
        f"  metric     {r.metric} ({direction} is better), n={r.n}",
        f"  baseline   {base_value:.4f}",
        f"  current    {r.value:.4f}",
        f"  delta      {delta:+.4f}",
        f"  tolerance  {tol.describe()}",
        f"  dense      {cr.dense.value:.4f}" + (f" ({parent})" if parent else "")
        + (f" (retention {keep:.3f})" if keep is not None else ""),
    ]
    if vs_baseline is not None:
        lines.append(f"  vs base    {vs_baseline.describe()}")
    if vs_dense is not None:
        lines.append(f"  vs dense   {vs_dense.describe()}")
    if cr.report:
        lines.append(f"  method     {cr.report.summary()}")
    if cr.agreement:
        lines.append(f"  vs dense   top-1 agreement {cr.agreement.top1:.3f}, KL {cr.agreement.kl:.4f} nats")
    lines += describe_changes(lost, gained, compared_with)
    if note:
        lines.append(f"  device     {note}")
    return Record(status="fail", message="\n".join(lines), **common)


def changed_examples(reference: str | None, current: BenchmarkResult) -> tuple[list[dict], list[dict]]:
    """Examples right in ``reference`` outcomes and wrong now (lost), and the other way round."""
    if not reference or not current.outcomes or len(reference) != current.n or len(current.examples) != current.n:
        return [], []
    pairs = list(zip(reference, current.outcomes, current.examples))
    lost = [dict(example) for before, now, example in pairs if before == "1" and now == "0"]
    gained = [dict(example) for before, now, example in pairs if before == "0" and now == "1"]
    return lost, gained


def describe_changes(lost: list[dict], gained: list[dict], compared_with: str) -> list[str]:
    """The failure message's list of forgotten facts, top SHOWN_FACTS."""
    if not lost and not gained:
        return []
    lines = [f"  facts      {len(lost)} lost, {len(gained)} gained vs {compared_with}"]
    for example in lost[:SHOWN_FACTS]:
        lines.append(f"    lost     {example['subject']} [{example['relation']}]: expected "
                     f"{example['expected']!r}, answered {example['answer']!r}")
    if len(lost) > SHOWN_FACTS:
        lines.append(f"    ... and {len(lost) - SHOWN_FACTS} more (--knowledge-facts=PATH exports all)")
    return lines


def _as_entry(result: BenchmarkResult) -> dict[str, Any]:
    return {"value": result.value, "outcomes": result.outcomes, "extra": result.extra}
