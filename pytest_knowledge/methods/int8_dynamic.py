"""Dynamic int8 quantization (the paper's setting): int8 weights and int8 activations
quantized on the fly, through torchao's ``Int8DynamicActivationInt8WeightConfig``.

torchao scales activations per token. ``torch.ao.quantization.quantize_dynamic``
(deprecated) uses one scale per tensor — the whole padded batch — with a 7-bit range on
x86, and on SmolLM2 that breaks a batch of prompts outright (' located' instead of
' Paris'), so it is not used. The head is excluded by default like every other method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_knowledge.methods.base import (
    CompressionContext,
    MethodReport,
    register_method,
)
from pytest_knowledge.methods.int8 import quantize_layers
from pytest_knowledge.methods.scopes import Scope, linear_layers, parameter_count

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Int8DynamicConfig:
    scope: Scope = "all"
    include_head: bool = False


@register_method("int8_dynamic", Int8DynamicConfig)
def int8_dynamic(model: nn.Module, config: Int8DynamicConfig, ratio: float | None, context: CompressionContext) -> MethodReport:
    """Per-channel symmetric int8 weights, per-token symmetric int8 activations."""
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig

    layers = linear_layers(model, config.scope, include_head=config.include_head)
    quantize_layers(model, layers, Int8DynamicActivationInt8WeightConfig(set_inductor_config=False))
    return MethodReport(touched_parameters=parameter_count(layers), bits=8, details=f"{len(layers)} layers, scope {config.scope}")
