"""Digests that are slow to compute, remembered on this machine across processes.

A cached rerun should not read a 100 MB checkpoint again or rebuild a benchmark's
examples only to learn their fingerprints. Each digest is stored under a key covering
everything it is computed from — a file's path, size and modification time (as git's
index does), or a generator's source, package versions and config — in
``$XDG_CACHE_HOME/pytest-knowledge/digests`` (else ``~/.cache/pytest-knowledge/digests``).
A missing, unreadable or malformed entry is computed again; a read-only folder only
means computing every time.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Callable

from pytest_knowledge.core.files import write_atomic

_DIGEST = re.compile(r"[0-9a-f]{16,64}")


def cache_home() -> Path:
    """This user's pytest-knowledge cache folder (converted models, remembered digests)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pytest-knowledge"


def remembered(namespace: str, key: str, compute: Callable[[], str]) -> str:
    """The hex digest stored for ``key``, else ``compute()`` stored for next time."""
    path = cache_home() / "digests" / namespace / key
    with contextlib.suppress(OSError, UnicodeDecodeError):
        known = path.read_text(encoding="ascii").strip()
        if _DIGEST.fullmatch(known):
            return known
    value = compute()
    with contextlib.suppress(OSError):
        write_atomic(path, value + "\n")
    return value
