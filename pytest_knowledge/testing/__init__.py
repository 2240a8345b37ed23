"""Tiny fixture checkpoints shipped with the package, bit-identical on every machine.

They stand in for encoder and encoder-decoder models, which have no English weights offline.
Baselines recorded on them must hold on any CPU, and training gives different weights on
different CPUs, so the trained checkpoints are package data; ``training`` holds the recipe
that made them and ``python -m pytest_knowledge.testing`` makes them again. Importing this
module registers them as built-in model names.
"""

from __future__ import annotations

from pathlib import Path

from pytest_knowledge.api.models import Weights, register_model
from pytest_knowledge.core.errors import KnowledgeError

CHECKPOINTS = Path(__file__).parent / "checkpoints"
FIXTURE_MODELS = ("tiny-bert-facts", "tiny-t5-facts")


def checkpoint_dir(name: str) -> Path:
    """The shipped folder of fixture model ``name``, loadable like any local checkpoint."""
    if name not in FIXTURE_MODELS:
        raise KnowledgeError(f"unknown fixture model {name!r} (known: {', '.join(FIXTURE_MODELS)})")
    directory = CHECKPOINTS / name
    if not (directory / "config.json").is_file():
        raise KnowledgeError(f"fixture checkpoint {directory} is missing: reinstall pytest-knowledge, "
                             "or regenerate it with `python -m pytest_knowledge.testing`")
    return directory


for _name in FIXTURE_MODELS:
    register_model(_name)(lambda name=_name: Weights(str(checkpoint_dir(name))))
