"""Wanda (Sun et al. 2023): prune by |W_ij| · ‖X_j‖, where ‖X_j‖ is the L2 norm of input
feature j over a small calibration set, comparing weights within each output row.

Calibration text is offline Wikipedia (``wikitext.articles``), tokenized with the
model's own tokenizer, one text per forward pass so no padding enters the norms. The
norms come from one pass through the model as it is when the method runs; the
reference code instead re-measures each block after pruning the ones before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.data.wikitext import articles
from pytest_knowledge.methods.base import (
    SPARSITY,
    CompressionContext,
    MethodReport,
    register_method,
)
from pytest_knowledge.methods.scopes import (
    Layer,
    Scope,
    linear_layers,
    pruning_report,
)

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class WandaConfig:
    scope: Scope = "all"
    include_head: bool = False
    samples: int = 32  # calibration texts
    max_tokens: int = 128  # tokens kept per text
    seed: int = 0  # which texts; fixed so every ratio of a sweep sees the same calibration set

    def validate(self) -> str | None:
        return None if self.samples >= 1 and self.max_tokens >= 1 else "samples >= 1 and max_tokens >= 1"


def calibration_inputs(tokenizer: Any, config: WandaConfig) -> list[dict[str, torch.Tensor]]:
    texts = [text for _, text in articles(config.samples, config.seed)]
    return [dict(tokenizer(text, return_tensors="pt", truncation=True, max_length=config.max_tokens)) for text in texts]


def input_norms(model: nn.Module, layers: list[Layer], inputs: list[dict[str, torch.Tensor]], encoder_decoder: bool) -> dict[str, torch.Tensor]:
    """‖X_j‖₂ per input feature of every layer, over all calibration tokens."""
    import torch

    squares = {layer.name: torch.zeros(layer.rows.shape[1], device=layer.rows.device) for layer in layers}
    seen = {layer.name: 0 for layer in layers}

    def recorder(name: str) -> Any:
        def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].detach().float()
            squares[name] += x.reshape(-1, x.shape[-1]).pow(2).sum(0)
            seen[name] += 1

        return record

    device = next(model.parameters()).device
    hooks = [layer.module.register_forward_pre_hook(recorder(layer.name)) for layer in layers]
    try:
        for encoded in inputs:
            batch = {key: value.to(device) for key, value in encoded.items() if key in ("input_ids", "attention_mask")}
            if encoder_decoder:
                batch["decoder_input_ids"] = batch["input_ids"]
            model(**batch)
    finally:
        for hook in hooks:
            hook.remove()
    unused = [name for name, count in seen.items() if count == 0]
    if unused:
        raise KnowledgeError(f"method 'wanda': layer {unused[0]} saw no calibration input; narrow the scope")
    return {name: total.sqrt() for name, total in squares.items()}


def prune_rows_by_score(rows: torch.Tensor, scores: torch.Tensor, ratio: float) -> None:
    """Zero the round(ratio * in) lowest-scoring weights of every output row, in place."""
    k = round(ratio * rows.shape[1])
    if k:
        rows.scatter_(1, scores.topk(k, dim=1, largest=False).indices, 0)


@register_method("wanda", WandaConfig, ratio=SPARSITY)
def wanda(model: nn.Module, config: WandaConfig, ratio: float | None, context: CompressionContext) -> MethodReport:
    """Wanda unstructured pruning, ``ratio`` of the weights in every output row."""
    assert ratio is not None
    if context.tokenizer is None:
        raise KnowledgeError("method 'wanda' needs the model's tokenizer for its calibration text")
    layers = linear_layers(model, config.scope, include_head=config.include_head)
    inputs = calibration_inputs(context.tokenizer, config)
    norms = input_norms(model, layers, inputs, context.family == "encoder-decoder")
    for layer in layers:
        rows = layer.rows
        prune_rows_by_score(rows, rows.abs().float() * norms[layer.name], ratio)
    return pruning_report(layers, f"{len(layers)} layers, scope {config.scope}, {len(inputs)} calibration texts")
