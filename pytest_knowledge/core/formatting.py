"""How numbers are shown in tables, reports and the CLI: one format everywhere."""

from __future__ import annotations


def number(value: float | None, signed: bool = False) -> str:
    """Four decimals (signed for deltas); ``-`` for a value that was not measured."""
    if value is None:
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"
