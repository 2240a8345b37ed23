"""Global magnitude pruning: zero the smallest |w| across all selected layers at once.

``torch.nn.utils.prune.global_unstructured`` concatenates every score into one vector
and keeps mask re-parametrisations; here an exact threshold is found from a histogram
of float bit patterns, so extra memory is one layer at a time and the pruned count is
exactly ``round(ratio * n)`` like torch's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import SPARSITY, CompressionContext, MethodReport, register_method
from .scopes import Scope, linear_layers, parameter_count, sparsity_by_scope

_BUCKETS = 1 << 15  # top 16 bits of a non-negative float32: sign bit is always 0


@dataclass(frozen=True)
class MagnitudeConfig:
    scope: Scope = "all"
    include_head: bool = False


def _abs32(weight: torch.Tensor) -> torch.Tensor:
    return weight.detach().abs().to(torch.float32)


def magnitude_threshold(weights: list[torch.Tensor], k: int) -> tuple[float, int]:
    """The k-th smallest |w| over all tensors, and how many values equal to it must go.

    Non-negative float32 values order like their int32 bit patterns, so a bincount over
    the high 16 bits finds the bucket holding the k-th value; a second pass ranks only
    that bucket's values.
    """
    counts = torch.zeros(_BUCKETS, dtype=torch.int64)
    for w in weights:
        bits = _abs32(w).view(torch.int32) >> 16
        counts += torch.bincount(bits.flatten(), minlength=_BUCKETS)
    cumulative = torch.cumsum(counts, 0)
    bucket = int(torch.searchsorted(cumulative, torch.tensor(k)).item())
    below = int(cumulative[bucket - 1]) if bucket > 0 else 0
    in_bucket = torch.cat([a[(a.view(torch.int32) >> 16) == bucket] for a in map(_abs32, weights)])
    threshold = torch.kthvalue(in_bucket, k - below).values
    smaller = int((in_bucket < threshold).sum())
    return float(threshold), k - below - smaller


def prune_global_magnitude(weights: list[torch.Tensor], ratio: float) -> int:
    """Zero exactly round(ratio * n) smallest-magnitude entries in place; ties at the
    threshold are pruned in tensor order then flat index order. Returns the count."""
    total = sum(w.numel() for w in weights)
    k = round(ratio * total)
    if k == 0:
        return 0
    threshold, ties_to_prune = magnitude_threshold(weights, k)
    for w in weights:
        magnitude = _abs32(w)
        w.masked_fill_(magnitude < threshold, 0)
        if ties_to_prune:
            ties = (magnitude == threshold).flatten().nonzero().squeeze(1)[:ties_to_prune]
            w.view(-1)[ties] = 0
            ties_to_prune -= ties.numel()
    return k


@register_method("magnitude", MagnitudeConfig, ratio=SPARSITY)
def magnitude(model: nn.Module, config: MagnitudeConfig, ratio: float | None, context: CompressionContext) -> MethodReport:
    """Global L1 unstructured pruning over the scope's Linear layers."""
    assert ratio is not None
    layers = linear_layers(model, config.scope, include_head=config.include_head)
    prune_global_magnitude([layer.module.weight.detach() for layer in layers], ratio)
    sparsity, by_scope = sparsity_by_scope(layers)
    return MethodReport(
        touched_parameters=parameter_count(layers),
        sparsity=sparsity,
        sparsity_by_scope=by_scope,
        details=f"{len(layers)} layers, scope {config.scope}",
    )
