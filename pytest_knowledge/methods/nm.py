"""Semi-structured N:M sparsity by magnitude: in every group of M consecutive weights
along the input dimension keep the N largest |w| (2:4 is what sparse tensor cores run).
Sparsity is fixed by the pattern (1 - N/M), so the method takes no ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.methods.base import (
    CompressionContext,
    MethodReport,
    register_method,
)
from pytest_knowledge.methods.scopes import (
    Scope,
    linear_layers,
    pruning_report,
)

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class NMConfig:
    n: int = 2
    m: int = 4
    scope: Scope = "all"
    include_head: bool = False

    def validate(self) -> str | None:
        return None if 0 < self.n < self.m else "0 < n < m (keep n of every m weights)"


def prune_n_m(rows: torch.Tensor, n: int, m: int) -> None:
    """Zero the m - n smallest |w| of each group of m consecutive entries of every row,
    in place; ``rows`` is (out, in) with ``in`` divisible by m."""
    import torch

    out_features, in_features = rows.shape
    groups = rows.abs().reshape(out_features, in_features // m, m)
    dropped = groups.topk(m - n, dim=-1, largest=False).indices
    keep = torch.ones_like(groups, dtype=torch.bool).scatter_(-1, dropped, False)
    rows.mul_(keep.reshape(out_features, in_features))


@register_method("nm", NMConfig)
def nm(model: nn.Module, config: NMConfig, ratio: float | None, context: CompressionContext) -> MethodReport:
    """N:M magnitude pruning of every linear layer in scope."""
    layers = linear_layers(model, config.scope, include_head=config.include_head)
    for layer in layers:
        if layer.rows.shape[1] % config.m:
            raise KnowledgeError(
                f"method 'nm': layer {layer.name} has {layer.rows.shape[1]} inputs, not a multiple of m={config.m}"
            )
    for layer in layers:
        prune_n_m(layer.rows, config.n, config.m)
    return pruning_report(layers, f"{config.n}:{config.m}, {len(layers)} layers, scope {config.scope}")
