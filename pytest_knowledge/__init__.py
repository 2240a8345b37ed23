"""pytest-knowledge: gate compressed language models on the facts they still know.

The public API for extending it: everything a method, a benchmark or a model registration
needs is importable from here. Names load on first use, so ``import pytest_knowledge`` (which
pytest does for the plugin) imports no implementation.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    # compression methods
    "register_method": "pytest_knowledge.methods.base",
    "MethodReport": "pytest_knowledge.methods.base",
    "CompressionContext": "pytest_knowledge.methods.base",
    "RatioSpec": "pytest_knowledge.methods.base",
    "SPARSITY": "pytest_knowledge.methods.base",
    "BITS": "pytest_knowledge.methods.base",
    "Scope": "pytest_knowledge.methods.scopes",
    "linear_layers": "pytest_knowledge.methods.scopes",
    "parameter_count": "pytest_knowledge.methods.scopes",
    "sparsity_by_scope": "pytest_knowledge.methods.scopes",
    "pruning_report": "pytest_knowledge.methods.scopes",
    # benchmarks
    "register_benchmark": "pytest_knowledge.benchmarks.base",
    "BenchmarkResult": "pytest_knowledge.benchmarks.base",
    "encode_outcomes": "pytest_knowledge.benchmarks.base",
    # models
    "register_model": "pytest_knowledge.api.models",
    "LoadedModel": "pytest_knowledge.api.models",
    "Weights": "pytest_knowledge.api.models",
    # shared
    "digest": "pytest_knowledge.core.fingerprints",
    "KnowledgeError": "pytest_knowledge.core.errors",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'pytest_knowledge' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
