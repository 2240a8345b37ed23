"""Int8 weight-only quantization through torchao, scoped like pruning.

torchao's ``Int8WeightOnlyConfig`` runs on CPU and GPU; the deprecated
``torch.ao.quantization.quantize_dynamic`` is avoided. The output head is left alone
by default because small models tie it to the input embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .base import CompressionContext, MethodReport, register_method
from .scopes import Scope, linear_layers


@dataclass(frozen=True)
class Int8WeightConfig:
    scope: Scope = "all"
    include_head: bool = False


@register_method("int8_weight", Int8WeightConfig)
def int8_weight(model: nn.Module, config: Int8WeightConfig, ratio: float | None, context: CompressionContext) -> MethodReport:
    """Per-channel symmetric int8 weights (torchao), activations kept in float."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    layers = linear_layers(model, config.scope, include_head=config.include_head)
    selected = {id(module) for _, module in layers}
    touched = sum(module.weight.numel() for _, module in layers)
    quantize_(model, Int8WeightOnlyConfig(), filter_fn=lambda module, fqn: id(module) in selected)
    return MethodReport(touched_parameters=touched, bits=8, details=f"{len(layers)} layers, scope {config.scope}")
