"""Compression methods, registered by the name suites use. One module per method."""

from . import int8, magnitude  # noqa: F401  (registration side effect)
from .base import METHODS, CompressionContext, Method, MethodReport, RatioSpec, register_method

__all__ = ["METHODS", "CompressionContext", "Method", "MethodReport", "RatioSpec", "register_method"]
