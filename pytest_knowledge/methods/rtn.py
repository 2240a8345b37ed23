"""Weight-only round-to-nearest quantization at 2–8 bits, as fake-quant: each weight is
replaced by its dequantized value, so the model runs unchanged on any device while its
weights lie on the quantization grid. Scales are per output channel, or per group of
``group_size`` consecutive inputs; grid arithmetic is torchao's affine quantization.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.methods.base import (
    BITS,
    CompressionContext,
    MethodReport,
    register_method,
)
from pytest_knowledge.methods.scopes import Scope, linear_layers, parameter_count

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class RTNConfig:
    scope: Scope = "all"
    include_head: bool = False
    symmetric: bool = True  # symmetric: zero maps to 0; asymmetric: a zero point per group
    group_size: int | None = None  # None: one scale per output channel

    def validate(self) -> str | None:
        return "group_size >= 1 or null" if self.group_size is not None and self.group_size < 1 else None


@dataclass(frozen=True)
class Grid:
    """Dequantized weights with the grid they lie on: value = scale * (q - zero_point),
    q an integer in [quant_min, quant_max]; scale and zero_point are per (row, group)."""

    values: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor
    quant_min: int
    quant_max: int


def round_to_nearest(rows: torch.Tensor, bits: int, symmetric: bool, group_size: int | None) -> Grid:
    """Quantize ``rows`` (out, in) to ``bits`` and dequantize; ``in`` divisible by group_size."""
    import torch
    from torchao.quantization.quant_primitives import (
        MappingType,
        choose_qparams_affine,
        dequantize_affine,
        quantize_affine,
    )

    quant_min, quant_max = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    block = (1, group_size or rows.shape[1])
    mapping = MappingType.SYMMETRIC if symmetric else MappingType.ASYMMETRIC
    weights = rows.float()
    scale, zero_point = choose_qparams_affine(
        weights, mapping, block, torch.int8, quant_min, quant_max, scale_dtype=torch.float32
    )
    q = quantize_affine(weights, block, scale, zero_point, torch.int8, quant_min, quant_max)
    values = dequantize_affine(q, block, scale, zero_point, torch.int8, quant_min, quant_max, output_dtype=torch.float32)
    return Grid(values, scale, zero_point, quant_min, quant_max)


@register_method("rtn", RTNConfig, ratio=BITS)
def rtn(model: nn.Module, config: RTNConfig, ratio: float | None, context: CompressionContext) -> MethodReport:
    """Fake-quantize every linear layer in scope to ``ratio`` bits."""
    assert ratio is not None
    bits = int(ratio)
    layers = linear_layers(model, config.scope, include_head=config.include_head)
    if config.group_size is not None:
        for layer in layers:
            if layer.rows.shape[1] % config.group_size:
                raise KnowledgeError(
                    f"method 'rtn': layer {layer.name} has {layer.rows.shape[1]} inputs, "
                    f"not a multiple of group_size={config.group_size}"
                )
    for layer in layers:
        rows = layer.rows
        rows.copy_(round_to_nearest(rows, bits, config.symmetric, config.group_size).values)
    grouping = f"group {config.group_size}" if config.group_size else "per channel"
    kind = "symmetric" if config.symmetric else "asymmetric"
    return MethodReport(
        touched_parameters=parameter_count(layers),
        bits=bits,
        details=f"{kind}, {grouping}, {len(layers)} layers, scope {config.scope}",
    )
