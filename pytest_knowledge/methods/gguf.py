"""llama.cpp's GGUF quantization types, applied in memory: every weight a quantized GGUF file
would store at ``type`` is quantized and dequantized with the ``gguf`` package (the same code
that writes and reads GGUF files), so the ladder Q8_0 … Q4_0 runs in one suite without
writing files, and gives the weights transformers would load from such a file.

Which tensor gets which type follows ``llama-quantize`` for these block types:

* the linear layers of the blocks (attention and feed-forward projections) get ``type``;
  a layer whose input width is not a multiple of the 32-value block falls back to F16, as
  llama.cpp does;
* the output tensor — the LM head, or the token embedding when the head is tied to it —
  gets ``output_type`` (default Q8_0: llama.cpp's choice when the width is not a multiple of
  256, as for SmolLM2; for wider models llama.cpp picks Q6_K, which the gguf package cannot
  write, so Q8_0 is the nearest writable type there);
* an untied token embedding gets ``type``; norms and biases stay F32.

The quantization grid is row-wise in the input dimension, so llama.cpp's reordering of the
query and key rows in GGUF files changes nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pytest_knowledge.methods.base import (
    CompressionContext,
    MethodReport,
    register_method,
)
from pytest_knowledge.methods.scopes import head_module, linear_layers

if TYPE_CHECKING:
    import torch
    from torch import nn

GGUFType = Literal["Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0"]
OutputType = Literal["Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0", "F16", "F32"]


@dataclass(frozen=True)
class GGUFConfig:
    type: GGUFType = "Q4_0"
    output_type: OutputType = "Q8_0"


def block_size(type_name: str) -> int:
    import gguf

    return gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]][0]


def round_trip(weights: torch.Tensor, type_name: str) -> torch.Tensor:
    """``weights`` (rows x inputs) quantized to a GGUF type and dequantized, as float32 on their device."""
    import gguf
    import torch

    kind = gguf.GGMLQuantizationType[type_name]
    values = weights.detach().to("cpu", torch.float32).numpy()
    restored = gguf.quants.dequantize(gguf.quants.quantize(values, kind), kind)
    return torch.from_numpy(restored.reshape(values.shape)).to(weights.device)


def _apply(weight: torch.Tensor, type_name: str) -> str:
    """Quantize ``weight`` in place; the type used (F16 when the width does not fit the blocks)."""
    used = type_name if weight.shape[-1] % block_size(type_name) == 0 else "F16"
    if used != "F32":
        weight.copy_(round_trip(weight, used).to(weight.dtype))
    return used


@register_method("gguf", GGUFConfig)
def gguf_quantize(model: nn.Module, config: GGUFConfig, ratio: float | None, context: CompressionContext) -> MethodReport:
    """Round-trip the weights a GGUF file of ``config.type`` would quantize (see the module docstring)."""
    layers = linear_layers(model, "all", include_head=False)
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    head = head_module(model)
    tied = head is not None and embeddings is not None and head.weight is embeddings.weight
    used: dict[str, int] = {}
    touched = 0

    def quantize(weight: torch.Tensor, type_name: str) -> None:
        nonlocal touched
        kind = _apply(weight, type_name)
        used[kind] = used.get(kind, 0) + 1
        touched += weight.numel()

    for layer in layers:
        quantize(layer.rows, config.type)
    if head is not None:
        quantize(head.weight, config.output_type)
    if embeddings is not None and not tied:
        quantize(embeddings.weight, config.type)
    mix = ", ".join(f"{n} x {kind}" for kind, n in sorted(used.items()))
    output = f"output {config.output_type}" + (" (tied embedding)" if tied else "")
    return MethodReport(touched_parameters=touched, bits=None, details=f"GGUF {config.type}: {mix}; {output}")
