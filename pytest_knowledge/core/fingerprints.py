"""Short content hashes that key caches and tell baselines apart."""

from __future__ import annotations

import functools
import hashlib
import inspect
from pathlib import Path


def digest(*parts: object) -> str:
    """A 16-hex-digit hash of the ``repr`` of ``parts``."""
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(repr(part).encode())
        hasher.update(b"\0")
    return hasher.hexdigest()[:16]


@functools.cache
def file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def code_digest(obj: object) -> str:
    """Hash of the source file that defines ``obj`` (a method's function, a benchmark's class):
    editing a method or benchmark changes the result-cache keys of its cases."""
    source = inspect.getsourcefile(inspect.unwrap(obj))  # type: ignore[arg-type]
    return file_sha256(source)[:16] if source else "unknown"
