"""The end-of-session table: one row per case, dense value next to baseline and current."""

from __future__ import annotations

from tabulate import tabulate

from .suite import format_ratio
from .verdict import Record

HEADERS = ("model", "method", "ratio", "benchmark", "metric", "dense", "baseline", "current", "delta", "p", "verdict", "from")


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def rows(records: list[Record]) -> list[tuple[str, ...]]:
    return [
        (
            r.model, r.method, format_ratio(r.ratio) if r.ratio is not None else "-", r.benchmark, r.metric or "-",
            _num(r.dense), _num(r.baseline), _num(r.current), _num(r.delta, signed=True),
            f"{r.p_value:.3g}" if r.p_value is not None else "-", r.status,
            "cache" if r.from_cache else "run",
        )
        for r in records
    ]


def table(records: list[Record]) -> str:
    return tabulate(rows(records), headers=HEADERS, tablefmt="simple", disable_numparse=True)
