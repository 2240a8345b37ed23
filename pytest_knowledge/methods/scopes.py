"""Which weight matrices belong to attention, feed-forward, or the output head.

The paper prunes and quantizes "attention", "feed-forward" and "all" modules; model
families name these differently (BERT ``attention``/``intermediate``, Llama
``self_attn``/``mlp``, GPT-2 ``attn``/``mlp``, T5 ``SelfAttention``/``DenseReluDense``,
BART ``self_attn``/``fc1``). Scopes are found from qualified module names, and the
output head from ``get_output_embeddings`` so tied heads are recognised too.
"""

from __future__ import annotations

import re
from typing import Literal

from torch import nn

Scope = Literal["all", "attention", "ffn"]

_ATTENTION = re.compile(r"(^|\.)(self_?attn|attn|attention|selfattention|encdecattention|encoder_attn|cross_?attn)(\.|$)", re.I)
_FFN = re.compile(r"(^|\.)(mlp|ffn|feed_?forward|intermediate|output|densereludense|fc1|fc2|ff)(\.|$)", re.I)


def is_linear(module: nn.Module) -> bool:
    """nn.Linear and GPT-2's Conv1D (a linear layer with transposed weight)."""
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def head_modules(model: nn.Module) -> set[nn.Module]:
    """The final dense layer(s) mapping hidden states to the vocabulary."""
    heads: set[nn.Module] = set()
    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if getter is not None else None
    if isinstance(head, nn.Module):
        heads.add(head)
    return heads


def scope_of(name: str) -> str:
    """'attention', 'ffn' or 'other' for a Linear layer's qualified name."""
    if _ATTENTION.search(name):
        return "attention"
    if _FFN.search(name):
        return "ffn"
    return "other"


def linear_layers(model: nn.Module, scope: Scope = "all", include_head: bool = False) -> list[tuple[str, nn.Module]]:
    """Linear layers in ``scope`` in module order; embeddings are never included and the
    head only when asked, because the paper treats the final layer separately."""
    heads = head_modules(model)
    selected = []
    for name, module in model.named_modules():
        if not is_linear(module):
            continue
        if module in heads:
            if include_head:
                selected.append((name, module))
            continue
        if scope == "all" or scope_of(name) == scope:
            selected.append((name, module))
    return selected
