"""What a compression method is: a frozen config dataclass plus one function.

The function edits the model in place and returns a ``MethodReport``; the engine
snapshots dense weights before and restores them after, so methods never need to undo
themselves. Method modules import torch inside their functions, so suites load and
cached cases are served without importing it.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar

from pytest_knowledge.api.registry import Registry

if TYPE_CHECKING:
    from torch import nn

C = TypeVar("C")


@dataclass(frozen=True)
class RatioSpec:
    """What the suite's ``ratios`` mean for a method and which values are allowed."""

    meaning: str
    low: float
    high: float
    low_inclusive: bool = False
    high_inclusive: bool = False
    integer: bool = False
    higher_is_stronger: bool = True  # more sparsity compresses more; more bits compress less

    def grid(self, resolution: float) -> list[float]:
        """Allowed values on a ``resolution`` grid, weakest compression first (for searches)."""
        step = max(resolution, 1.0) if self.integer else resolution
        count = int(round((self.high - self.low) / step))
        values = [round(self.low + i * step, 10) for i in range(count + 1)]
        allowed = [v for v in values if self.problem(v) is None]
        return allowed if self.higher_is_stronger else allowed[::-1]

    def problem(self, value: object) -> str | None:
        """None when ``value`` is allowed, else the 'expected ...' wording."""
        lo = "[" if self.low_inclusive else "("
        hi = "]" if self.high_inclusive else ")"
        kind = "an integer" if self.integer else "a number"
        expected = f"{kind} in {lo}{self.low:g}, {self.high:g}{hi} ({self.meaning})"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return expected
        if self.integer and float(value) != int(value):
            return expected
        above = value > self.low if not self.low_inclusive else value >= self.low
        below = value < self.high if not self.high_inclusive else value <= self.high
        return None if above and below else expected


SPARSITY = RatioSpec("fraction of weights set to zero", 0.0, 1.0)
BITS = RatioSpec("bit width", 2, 8, low_inclusive=True, high_inclusive=True, integer=True, higher_is_stronger=False)


@dataclass(frozen=True)
class CompressionContext:
    """What a method may need beyond the model: family for scopes, seed for randomness."""

    family: str
    seed: int
    tokenizer: Any = None


@dataclass(frozen=True)
class MethodReport:
    """What a method did, recorded with each result and shown in the end table."""

    touched_parameters: int
    sparsity: float | None = None
    sparsity_by_scope: dict[str, float] = field(default_factory=dict)
    bits: int | None = None
    details: str = ""

    def summary(self) -> str:
        parts = []
        if self.sparsity is not None:
            parts.append(f"sparsity {self.sparsity:.3f}")
        if self.bits is not None:
            parts.append(f"{self.bits}-bit")
        if self.details:
            parts.append(self.details)
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


ApplyFn = Callable[["nn.Module", Any, "float | None", CompressionContext], MethodReport]


@dataclass(frozen=True)
class Method(Generic[C]):
    """A registered method: its suite name, config class, ratio meaning and function."""

    name: str
    config: type[C]
    apply: ApplyFn
    ratio: RatioSpec | None
    version: str = "1"  # bump when results change in a way the source digest cannot see (a dependency's behaviour)


METHODS: Registry[Method] = Registry("method")


def _without_grad(fn: ApplyFn) -> ApplyFn:
    """Methods edit weights in place, which autograd forbids on parameters."""

    @functools.wraps(fn)
    def apply(model: nn.Module, config: Any, ratio: float | None, context: CompressionContext) -> MethodReport:
        import torch

        with torch.no_grad():
            return fn(model, config, ratio, context)

    return apply


def register_method(name: str, config: type, ratio: RatioSpec | None = None,
                    version: str = "1") -> Callable[[ApplyFn], ApplyFn]:
    """Decorator: make ``fn(model, config, ratio, context)`` available as ``name`` in suites."""

    def wrap(fn: ApplyFn) -> ApplyFn:
        METHODS.add(name, Method(name, config, _without_grad(fn), ratio, version))
        return fn

    return wrap
