"""The end-of-session table: one row per case, dense value next to baseline and current."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tabulate import tabulate

from pytest_knowledge.core.files import dump_json, write_atomic
from pytest_knowledge.core.formatting import number
from pytest_knowledge.gate.record import Record
from pytest_knowledge.suite.parse import format_ratio

HEADERS = ("model", "method", "ratio", "benchmark", "metric", "dense", "baseline", "current", "delta", "p", "agree/KL", "verdict", "from")


def rows(records: list[Record]) -> list[tuple[str, ...]]:
    return [
        (
            r.model, r.method + (f" vs {r.reference}" if r.reference else ""), format_ratio(r.ratio) if r.ratio is not None else "-", r.benchmark, r.metric or "-",
            number(r.dense), number(r.baseline), number(r.current), number(r.delta, signed=True),
            f"{r.p_value:.3g}" if r.p_value is not None else "-",
            f"{r.agreement:.2f}/{r.kl:.3f}" if r.agreement is not None and r.kl is not None else "-", r.status,
            "cache" if r.from_cache else "run",
        )
        for r in records
    ]


FACT_FIELDS = ("suite", "case", "status", "change", "compared_with", "relation", "subject", "expected", "answer")


def fact_rows(records: list[Record]) -> list[dict[str, str]]:
    """Every lost and gained example of every case, for the per-run export."""
    out = []
    for r in records:
        for change, examples in (("lost", r.lost), ("gained", r.gained)):
            out += [{"suite": r.suite, "case": r.case_id, "status": r.status, "change": change,
                     "compared_with": r.compared_with, **example} for example in examples]
    return out


def export_facts(path: Path, records: list[Record]) -> None:
    """Lost and gained facts as CSV (by suffix) or JSON, written atomically.

    Facts and answers come from data sets and models, so a CSV cell that a spreadsheet
    would read as a formula (starting with =, +, -, @, tab or carriage return) gets a
    leading ``'``, as OWASP recommends against CSV injection; the JSON keeps them as they are.
    """
    facts = fact_rows(records)
    if path.suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=FACT_FIELDS)
        writer.writeheader()
        formula = ("=", "+", "-", "@", "\t", "\r")
        writer.writerows({k: f"'{v}" if isinstance(v, str) and v.startswith(formula) else v for k, v in row.items()}
                         for row in facts)
        write_atomic(path, buffer.getvalue())
    else:
        write_atomic(path, dump_json(facts))


def table(records: list[Record]) -> str:
    return tabulate(rows(records), headers=HEADERS, tablefmt="simple", disable_numparse=True)
