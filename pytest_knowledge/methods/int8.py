"""Int8 weight-only quantization through torchao, scoped like pruning.

torchao's ``Int8WeightOnlyConfig`` runs on CPU and GPU; the deprecated
``torch.ao.quantization.quantize_dynamic`` is avoided. The output head is left alone
by default because the paper treats the final layer separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_knowledge.methods.base import (
    CompressionContext,
    MethodReport,
    register_method,
)
from pytest_knowledge.methods.scopes import (
    Layer,
    Scope,
    conv1d_as_linear,
    linear_layers,
    parameter_count,
)

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Int8WeightConfig:
    scope: Scope = "all"
    include_head: bool = False


def quantize_layers(model: nn.Module, layers: list[Layer], torchao_config: object) -> None:
    """Apply a torchao config to exactly these layers (GPT-2 Conv1D converted to Linear first)."""
    from torchao.quantization import quantize_

    selected = {id(layer.module) for layer in conv1d_as_linear(model, layers)}
    quantize_(model, torchao_config, filter_fn=lambda module, fqn: id(module) in selected)


@register_method("int8_weight", Int8WeightConfig)
def int8_weight(model: nn.Module, config: Int8WeightConfig, ratio: float | None, context: CompressionContext) -> MethodReport:
    """Per-channel symmetric int8 weights (torchao), activations kept in float."""
    from torchao.quantization import Int8WeightOnlyConfig

    layers = linear_layers(model, config.scope, include_head=config.include_head)
    quantize_layers(model, layers, Int8WeightOnlyConfig(set_inductor_config=False))
    return MethodReport(touched_parameters=parameter_count(layers), bits=8, details=f"{len(layers)} layers, scope {config.scope}")
