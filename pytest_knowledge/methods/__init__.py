"""Compression methods, registered by the name suites use. One module per method."""

from . import head, int8, int8_dynamic, magnitude, nm, rtn, wanda  # noqa: F401  (registration side effect)
from .base import METHODS, CompressionContext, Method, MethodReport, RatioSpec, register_method

__all__ = ["METHODS", "CompressionContext", "Method", "MethodReport", "RatioSpec", "register_method"]
