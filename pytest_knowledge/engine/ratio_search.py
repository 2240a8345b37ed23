"""The largest safe ratio: how far a method can compress before a benchmark breaks.

Assumes that passing is monotone in compression strength (a model that fails at 50%
sparsity does not pass at 60%) and bisects over the ratio grid, weakest to strongest.
Each probe is an ordinary case run through the engine, so points already in the result
cache cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Point:
    ratio: float
    value: float
    passed: bool


@dataclass
class SearchResult:
    safe_ratio: float | None
    points: list[Point] = field(default_factory=list)

    def describe(self) -> str:
        shown = " ".join(f"{p.ratio:g}:{p.value:.3f}{'+' if p.passed else 'x'}" for p in self.points)
        safe = "none (the weakest setting already fails)" if self.safe_ratio is None else f"{self.safe_ratio:g}"
        return f"safe ratio {safe}; evaluated {shown}"


def find_max_ratio(grid: list[float], probe: Callable[[float], tuple[float, bool]]) -> SearchResult:
    """Bisect ``grid`` (weakest first) for the last ratio whose probe passes."""
    result = SearchResult(None)

    def passes(index: int) -> bool:
        value, ok = probe(grid[index])
        result.points.append(Point(grid[index], value, ok))
        return ok

    if not grid or not passes(0):
        return result
    good, bad = 0, len(grid)
    if len(grid) > 1 and passes(len(grid) - 1):
        good = len(grid) - 1
    elif len(grid) > 1:
        bad = len(grid) - 1
        while bad - good > 1:
            middle = (good + bad) // 2
            if passes(middle):
                good = middle
            else:
                bad = middle
    result.safe_ratio = grid[good]
    result.points.sort(key=lambda p: grid.index(p.ratio))
    return result
