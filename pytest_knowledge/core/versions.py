"""Library versions recorded with baselines and runs (no heavy imports: the CLI uses it)."""

from __future__ import annotations

import functools
import importlib.metadata as md
import platform
from typing import Any

PACKAGES = ("torch", "transformers", "torchao", "lm_eval", "pytest-knowledge")


def describe_versions() -> dict[str, Any]:
    """A fresh dict each call (callers may extend it); the package metadata is read once."""
    return dict(_versions())


@functools.cache
def _versions() -> dict[str, Any]:
    versions: dict[str, Any] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            continue
    return versions
