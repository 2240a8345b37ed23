"""Which weight matrices belong to attention, feed-forward, or the output head.

The paper prunes and quantizes "attention", "feed-forward" and "all" modules; model
families name these differently:

- BERT/RoBERTa ``attention.self.query`` … ``intermediate.dense``, ``output.dense``
- ALBERT ``attention.query`` … ``ffn``, ``ffn_output`` (one layer object shared by all depths)
- DistilBERT ``attention.q_lin`` … ``ffn.lin1``, ``ffn.lin2``
- GPT-2 ``attn.c_attn`` … ``mlp.c_fc`` (``Conv1D``: weight stored as (in, out))
- Llama/SmolLM2 ``self_attn.q_proj`` … ``mlp.gate_proj``
- T5 ``SelfAttention``/``EncDecAttention`` … ``DenseReluDense.wi``/``wo``
- BART ``self_attn``/``encoder_attn`` … ``fc1``, ``fc2``

Scopes come from the components of qualified module names; the output head is found
with ``get_output_embeddings`` so it is recognised whatever it is called. Layers in
neither scope (poolers, the MLM transform before the decoder) count as "other" and are
part of "all".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pytest_knowledge.methods.base import MethodReport

if TYPE_CHECKING:
    import torch
    from torch import nn


Scope = Literal["all", "attention", "ffn"]

_ATTENTION = re.compile(
    r"(^|\.)(self_?attn|attn|attention|selfattention|encdecattention|encoder_attn|cross_?attn)(\.|$)", re.I
)
_FFN = re.compile(
    r"(^|\.)(mlp|ffn|ffn_output|feed_?forward|intermediate|output|densereludense|fc1|fc2|ff)(\.|$)", re.I
)


def is_conv1d(module: nn.Module) -> bool:
    """GPT-2's ``Conv1D``: a linear layer whose weight is stored transposed, as (in, out)."""
    return type(module).__name__ == "Conv1D"


def is_linear(module: nn.Module) -> bool:
    from torch import nn

    return isinstance(module, nn.Linear) or is_conv1d(module)


@dataclass(frozen=True)
class Layer:
    """A selected linear layer with its qualified name and scope label."""

    name: str
    module: nn.Module
    scope: str  # "attention", "ffn", "other" or "head"

    @property
    def rows(self) -> torch.Tensor:
        """The weight as (out_features, in_features), sharing storage with the parameter,
        so per-output-row and along-the-input operations read the same for Conv1D."""
        weight = self.module.weight.detach()
        return weight.t() if is_conv1d(self.module) else weight


def head_module(model: nn.Module) -> nn.Module | None:
    """The final dense layer mapping hidden states to the vocabulary (LM head, MLM decoder)."""
    from torch import nn

    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if getter is not None else None
    return head if isinstance(head, nn.Module) and is_linear(head) else None


def scope_of(name: str) -> str:
    """'attention', 'ffn' or 'other' for a linear layer's qualified name."""
    if _ATTENTION.search(name):
        return "attention"
    if _FFN.search(name):
        return "ffn"
    return "other"


def untie_head(model: nn.Module) -> None:
    """Give a head tied to the input embeddings its own copy of the weight, so editing the
    head leaves the embeddings intact. The workbench's DenseSnapshot puts the shared parameter
    back afterwards, which re-ties them."""
    from torch import nn

    head = head_module(model)
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if head is not None and embeddings is not None and head.weight is embeddings.weight:
        head.weight = nn.Parameter(head.weight.detach().clone(), requires_grad=head.weight.requires_grad)


def linear_layers(model: nn.Module, scope: Scope = "all", include_head: bool = False) -> list[Layer]:
    """Linear layers in ``scope``, in module order. Embeddings are never included and the
    head only when asked, because the paper treats the final layer separately; selecting
    a tied head unties it first."""
    head = head_module(model)
    if include_head and head is not None:
        untie_head(model)
    selected = []
    for name, module in model.named_modules():
        if not is_linear(module):
            continue
        if module is head:
            if include_head:
                selected.append(Layer(name, module, "head"))
            continue
        label = scope_of(name)
        if scope == "all" or label == scope:
            selected.append(Layer(name, module, label))
    return selected


def conv1d_as_linear(model: nn.Module, layers: list[Layer]) -> list[Layer]:
    """Swap GPT-2 Conv1D layers for equivalent ``nn.Linear`` ones, for libraries (torchao)
    that only handle ``nn.Linear``. The engine restores the original modules."""
    from torch import nn

    converted = []
    for layer in layers:
        if not is_conv1d(layer.module):
            converted.append(layer)
            continue
        conv = layer.module
        in_features, out_features = conv.weight.shape
        linear = nn.Linear(in_features, out_features, bias=conv.bias is not None, device="meta")
        linear.weight = nn.Parameter(conv.weight.detach().t().contiguous())
        if conv.bias is not None:
            linear.bias = nn.Parameter(conv.bias.detach().clone())
        parent_name, _, attr = layer.name.rpartition(".")
        setattr(model.get_submodule(parent_name), attr, linear)
        converted.append(Layer(layer.name, linear, layer.scope))
    return converted


def sparsity_by_scope(layers: list[Layer], zeros: list[int] | None = None) -> tuple[float, dict[str, float]]:
    """Fraction of zero weights overall and per scope, measured on the weights
    (LLM-KICK's ``check_sparsity``) unless the caller counted ``zeros`` per layer already."""
    import torch

    if zeros is None:
        zeros = [layer.module.weight.numel() - int(torch.count_nonzero(layer.module.weight)) for layer in layers]
    zeros_in: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for layer, count in zip(layers, zeros):
        zeros_in[layer.scope] = zeros_in.get(layer.scope, 0) + count
        sizes[layer.scope] = sizes.get(layer.scope, 0) + layer.module.weight.numel()
    total = sum(sizes.values())
    overall = sum(zeros_in.values()) / total if total else 0.0
    return overall, {s: zeros_in[s] / sizes[s] for s in sorted(sizes)}


def parameter_count(layers: list[Layer]) -> int:
    return sum(layer.module.weight.numel() for layer in layers)


def pruning_report(layers: list[Layer], details: str, zeros: list[int] | None = None) -> MethodReport:
    """What a pruning method reports: parameters touched and the sparsity it measured, per scope."""
    sparsity, by_scope = sparsity_by_scope(layers, zeros)
    return MethodReport(touched_parameters=parameter_count(layers), sparsity=sparsity,
                        sparsity_by_scope=by_scope, details=details)
