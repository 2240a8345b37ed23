"""Local pruning of the final dense layer only (the LM head / MLM decoder), as in the
paper's final-layer experiments, with the four ``torch.nn.utils.prune`` methods.

Small models tie the head to the input embeddings; the head is untied first so that
pruning it leaves the embeddings dense (the engine re-ties them on restore).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.methods.base import (
    SPARSITY,
    CompressionContext,
    MethodReport,
    register_method,
)
from pytest_knowledge.methods.scopes import head_module, is_conv1d, untie_head

if TYPE_CHECKING:
    from torch import nn

HeadPruning = Literal["l1_unstructured", "random_unstructured", "random_structured", "ln_structured"]
STRUCTURED = ("random_structured", "ln_structured")


@dataclass(frozen=True)
class HeadConfig:
    kind: HeadPruning = "l1_unstructured"
    axis: Literal["output", "input"] = "output"  # structured kinds: drop vocabulary rows or hidden columns
    norm: float = 2.0  # ln_structured: the n of the L_n norm ranking rows/columns

    def validate(self) -> str | None:
        return "norm > 0" if self.norm <= 0 else None


def prune_head_weight(head: nn.Module, config: HeadConfig, ratio: float) -> None:
    """Prune ``head.weight`` in place with torch's pruning function for ``config.kind``,
    then make it permanent so no mask re-parametrisation stays behind."""
    from torch.nn.utils import prune

    dim = 0 if config.axis == "output" else 1
    if is_conv1d(head):
        dim = 1 - dim
    if config.kind == "l1_unstructured":
        prune.l1_unstructured(head, "weight", amount=ratio)
    elif config.kind == "random_unstructured":
        prune.random_unstructured(head, "weight", amount=ratio)
    elif config.kind == "random_structured":
        prune.random_structured(head, "weight", amount=ratio, dim=dim)
    else:
        prune.ln_structured(head, "weight", amount=ratio, n=config.norm, dim=dim)
    prune.remove(head, "weight")


@register_method("head", HeadConfig, ratio=SPARSITY)
def head(model: nn.Module, config: HeadConfig, ratio: float | None, context: CompressionContext) -> MethodReport:
    """Prune the output head to ``ratio`` sparsity; the random kinds draw from the case seed."""
    import torch

    assert ratio is not None
    module = head_module(model)
    if module is None:
        raise KnowledgeError(f"method 'head': {type(model).__name__} has no output head (get_output_embeddings)")
    untie_head(model)
    device = module.weight.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(context.seed)
        prune_head_weight(module, config, ratio)
    sparsity = float((module.weight == 0).sum()) / module.weight.numel()
    return MethodReport(
        touched_parameters=module.weight.numel(),
        sparsity=sparsity,
        sparsity_by_scope={"head": sparsity},
        details=f"head {config.kind}" + (f" along {config.axis}" if config.kind in STRUCTURED else ""),
    )
