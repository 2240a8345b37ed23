"""Compression methods, registered by the name suites use. One module per method."""

from pytest_knowledge.methods import (  # noqa: F401  (registration side effect)
    gguf,
    head,
    int8,
    int8_dynamic,
    magnitude,
    nm,
    rtn,
    torchao_lowbit,
    wanda,
)
from pytest_knowledge.methods.base import (
    METHODS,
    CompressionContext,
    Method,
    MethodReport,
    RatioSpec,
    register_method,
)

__all__ = ["METHODS", "CompressionContext", "Method", "MethodReport", "RatioSpec", "register_method"]
