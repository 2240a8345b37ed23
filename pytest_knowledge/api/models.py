"""What a model is to methods and benchmarks, and the registry of built-in model names.

A suite's ``source`` is a registered name (a model that ships inside a package, so it works
offline), a local folder or GGUF file, or a hub id. Packages add names with ``register_model``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

from pytest_knowledge.api.registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

Family = Literal["encoder", "decoder", "encoder-decoder"]
FAMILIES: tuple[str, ...] = ("encoder", "decoder", "encoder-decoder")
DTYPES: tuple[str, ...] = ("auto", "float32", "float16", "bfloat16")


@dataclass(frozen=True)
class Weights:
    """Where a model's weights come from: a directory (optionally one GGUF file in it) or a hub id."""

    location: str
    gguf_file: str | None = None
    package: str | None = None


@dataclass
class LoadedModel:
    """A model in memory with what benchmarks and methods need to use it."""

    name: str
    model: nn.Module
    tokenizer: Any
    family: Family
    fingerprint: str
    device: torch.device


WeightsFn = Callable[[], Weights]
MODELS: Registry[WeightsFn] = Registry("model")


def register_model(name: str) -> Callable[[WeightsFn], WeightsFn]:
    """Decorator: ``fn() -> Weights`` answers for the built-in model name ``name`` in suites."""

    def wrap(fn: WeightsFn) -> WeightsFn:
        MODELS.add(name, fn)
        return fn

    return wrap
