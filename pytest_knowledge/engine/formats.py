"""The on-disk formats compressed models ship in, checked before transformers reads them.

transformers loads GGUF files (``gguf_file``, dequantized by the ``gguf`` package) and
compressed-tensors checkpoints (the format llm-compressor saves, through the
``compressed-tensors`` package). When the package a file needs is missing, or too old for a
quantization type in the file, the user gets one error saying which file, which type and
what to install, rather than a traceback from inside the loader.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
from pathlib import Path
from typing import Any

from pytest_knowledge.core.errors import KnowledgeError

COMPRESSED_TENSORS = "compressed-tensors"


def _version(package: str) -> str:
    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return "not installed"


def check_gguf(path: Path) -> None:
    """Every tensor of the GGUF file at ``path`` has a type the installed gguf package can dequantize."""
    import gguf
    from gguf.quants import _type_traits

    readable = {gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, *_type_traits}
    advice = (f"expected types the installed gguf {_version('gguf')} can dequantize "
              f"({', '.join(sorted(t.name for t in readable))}); upgrade it (pip install -U gguf) "
              "or re-quantize the file to one of those types")
    try:
        reader = gguf.GGUFReader(path)
    except ValueError as error:  # a type id this gguf version does not know
        raise KnowledgeError(f"{path}: cannot read the GGUF file ({error}); {advice}") from None
    for tensor in reader.tensors:
        if tensor.tensor_type not in readable:
            raise KnowledgeError(f"{path}: tensor {tensor.name} is stored as {tensor.tensor_type.name}; {advice}")


def load_options(folder: Path) -> dict[str, Any]:
    """Extra ``from_pretrained`` arguments for the checkpoint in ``folder``.

    A compressed-tensors checkpoint is decompressed on load (``dequantize=True``): methods
    then apply on top of plain weights, and it runs on a CPU without compressed kernels.
    """
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    method = (config.get("quantization_config") or {}).get("quant_method")
    if method != COMPRESSED_TENSORS:
        return {}
    if importlib.util.find_spec("compressed_tensors") is None:
        raise KnowledgeError(
            f"{folder} is a compressed-tensors checkpoint (config.json quantization_config.quant_method), "
            "and the compressed-tensors package is not installed; expected it to be: "
            "pip install compressed-tensors (or pip install 'pytest-knowledge[artifacts]')"
        )
    from transformers import CompressedTensorsConfig

    return {"quantization_config": CompressedTensorsConfig(dequantize=True)}
