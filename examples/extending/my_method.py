"""A compression method in one file: random unstructured pruning.

Zeroes a random ``ratio`` of the weights of every selected linear layer. Registered as
``random``, so a suite can say ``method: random``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pytest_knowledge import (
    SPARSITY,
    CompressionContext,
    MethodReport,
    Scope,
    linear_layers,
    pruning_report,
    register_method,
)


@dataclass(frozen=True)
class RandomConfig:
    """The keys a suite may set on this method, with their defaults."""

    scope: Scope = "all"
    include_head: bool = False


@register_method("random", RandomConfig, ratio=SPARSITY)
def random_prune(model: nn.Module, config: RandomConfig, ratio: float | None,
                 context: CompressionContext) -> MethodReport:
    """Edit the model in place; the engine restores the dense weights after the case."""
    assert ratio is not None
    generator = torch.Generator().manual_seed(context.seed)  # the case's seed: reruns prune the same weights
    layers = linear_layers(model, config.scope, include_head=config.include_head)
    for layer in layers:
        weight = layer.module.weight
        keep = torch.rand(weight.shape, generator=generator) >= ratio
        weight.mul_(keep.to(device=weight.device, dtype=weight.dtype))
    return pruning_report(layers, f"{len(layers)} layers, scope {config.scope}")
