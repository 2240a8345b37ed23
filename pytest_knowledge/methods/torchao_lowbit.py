"""torchao's low-bit configs beyond int8: int4 weights, int8 activations with int4 weights, float8.

One method, ``torchao``, whose ``scheme`` picks the torchao config. Kernels differ by hardware:
where this machine cannot run a scheme the case is skipped with the reason (``Unavailable``),
not failed. On a CPU, ``int4_weight`` uses torchao's portable int4 layout (``IntxWeightOnlyConfig``);
on CUDA it uses ``Int4WeightOnlyConfig`` (tinygemm kernels). ``float8_dynamic`` needs a GPU of
compute capability 8.9 or newer (Ada, Hopper) or an MI300.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pytest_knowledge.core.errors import KnowledgeError, Unavailable
from pytest_knowledge.methods.base import CompressionContext, MethodReport, register_method
from pytest_knowledge.methods.int8 import quantize_layers
from pytest_knowledge.methods.scopes import Scope, linear_layers, parameter_count

if TYPE_CHECKING:
    from torch import nn

Scheme = Literal["int4_weight", "int8_dynamic_int4", "float8_weight", "float8_dynamic"]
BITS = {"int4_weight": 4, "int8_dynamic_int4": 4, "float8_weight": 8, "float8_dynamic": 8}


@dataclass(frozen=True)
class TorchaoConfig:
    scheme: Scheme = "int4_weight"
    group_size: Literal[16, 32, 64, 128, 256] = 32  # int4 schemes: weights per scale
    scope: Scope = "all"
    include_head: bool = False


def _float8_dynamic_supported(device_type: str) -> bool:
    import torch

    return device_type == "cuda" and torch.cuda.get_device_capability() >= (8, 9)


def torchao_config(config: TorchaoConfig, device_type: str) -> tuple[object, str]:
    """The torchao config object for ``config`` on a ``device_type`` ('cpu', 'cuda'), and its name."""
    import torch
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Float8WeightOnlyConfig,
        Int4WeightOnlyConfig,
        Int8DynamicActivationIntxWeightConfig,
        IntxWeightOnlyConfig,
    )
    from torchao.quantization.granularity import PerGroup

    if config.scheme == "int4_weight":
        if device_type == "cuda":
            return Int4WeightOnlyConfig(group_size=config.group_size), "Int4WeightOnlyConfig"
        return IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(config.group_size)), \
            "IntxWeightOnlyConfig(int4)"
    if config.scheme == "int8_dynamic_int4":
        return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4,
                                                     weight_granularity=PerGroup(config.group_size)), \
            "Int8DynamicActivationIntxWeightConfig(int4)"
    if config.scheme == "float8_weight":
        return Float8WeightOnlyConfig(), "Float8WeightOnlyConfig"
    if not _float8_dynamic_supported(device_type):
        raise Unavailable("torchao scheme float8_dynamic needs a GPU of compute capability 8.9 or newer "
                          f"(Ada, Hopper) or an MI300; this case runs on {device_type}")
    return Float8DynamicActivationFloat8WeightConfig(), "Float8DynamicActivationFloat8WeightConfig"


@register_method("torchao", TorchaoConfig)
def torchao(model: nn.Module, config: TorchaoConfig, ratio: float | None, context: CompressionContext) -> MethodReport:
    """Quantize the scope's Linear layers with the torchao config the scheme names."""
    layers = linear_layers(model, config.scope, include_head=config.include_head)
    device_type = next(model.parameters()).device.type
    ao_config, name = torchao_config(config, device_type)
    odd = [layer.name for layer in layers if layer.rows.shape[1] % config.group_size]
    if config.scheme.startswith("int") and odd:
        raise KnowledgeError(f"method 'torchao' scheme {config.scheme}: layer {odd[0]} has inputs not divisible by "
                             f"group_size {config.group_size}; choose a group_size that divides every layer's inputs")
    quantize_layers(model, layers, ao_config)
    return MethodReport(touched_parameters=parameter_count(layers), bits=BITS[config.scheme],
                        details=f"{name}, {len(layers)} layers, scope {config.scope}")
