"""Resolve a suite's model entry to weights on disk, load it once, fingerprint it.

Registered names (``api.models.MODELS``) map to models that ship inside packages, so they
work offline; anything else is a local directory or a Hugging Face model id, loaded with
the ``AutoModelFor...`` class of its family.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_knowledge.api.models import MODELS, Family, LoadedModel, Weights
from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.core.files import folder_atomic
from pytest_knowledge.core.remembered import cache_home, remembered
from pytest_knowledge.engine.formats import check_gguf, load_options

if TYPE_CHECKING:
    import torch
    from torch import nn

_ENCODER_TYPES = {"bert", "roberta", "albert", "distilbert", "electra", "deberta", "deberta-v2", "xlm-roberta", "camembert", "mpnet"}

log = logging.getLogger("pytest_knowledge")


def resolve(source: str) -> Weights:
    """Registered name, local directory or GGUF file, or hub id — in that order."""
    builtin = MODELS.get(source)
    if builtin is not None:
        return builtin()
    path = Path(source).expanduser()
    if path.is_dir():
        return Weights(str(path.resolve()))
    if path.suffix == ".gguf" and path.is_file():
        return Weights(str(path.parent.resolve()), gguf_file=path.name)
    return Weights(source)


def detect_family(config: Any) -> Family:
    """Encoder-decoder from the config flag, encoder (masked LM) from the model type, else decoder."""
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    if getattr(config, "model_type", "") in _ENCODER_TYPES:
        return "encoder"
    if any(a.endswith("ForMaskedLM") for a in getattr(config, "architectures", None) or ()):
        return "encoder"
    return "decoder"


def _auto_class(family: Family) -> Any:
    import transformers

    return {
        "encoder": transformers.AutoModelForMaskedLM,
        "decoder": transformers.AutoModelForCausalLM,
        "encoder-decoder": transformers.AutoModelForSeq2SeqLM,
    }[family]


RACY_NS = 2_000_000_000  # files modified this recently are hashed but their digest is not remembered


def _file_digest(paths: list[Path]) -> str:
    """Hash of file names and contents, remembered per (path, size, mtime) so reruns need not read them."""
    stamps = tuple(sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths))
    return _digest_files(stamps)


@functools.lru_cache(maxsize=64)
def _digest_files(stamps: tuple[tuple[str, int, int], ...]) -> str:
    def read() -> str:
        digest = hashlib.sha256()
        for name, _, _ in stamps:
            digest.update(Path(name).name.encode())
            with open(name, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(chunk)
        return digest.hexdigest()[:16]

    if any(mtime > time.time_ns() - RACY_NS for _, _, mtime in stamps):
        return read()  # modified just now: a rewrite within the clock's tick could keep this stamp
    return remembered("files", hashlib.sha256(repr(stamps).encode()).hexdigest(), read)


def state_fingerprint(model: nn.Module) -> str:
    """Hash of every parameter and buffer: identifies the exact weights evaluated."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def file_fingerprint(weights: Weights) -> str | None:
    """Hash of the local weight files, computable without loading the model; None for hub ids."""
    directory = Path(weights.location)
    if weights.gguf_file:
        return _file_digest([directory / weights.gguf_file])
    if directory.is_dir():
        files = [p for p in directory.iterdir() if p.suffix in {".safetensors", ".bin", ".pt", ".gguf"}]
        if files:
            return _file_digest(files)
    return None


def source_fingerprint(source: str) -> str | None:
    """Fingerprint of ``source``'s weights before loading it (what the result cache keys on)."""
    try:
        return file_fingerprint(resolve(source))
    except KnowledgeError:
        return None


_LOADED: dict[tuple, LoadedModel] = {}


def target_device(device: str | None) -> torch.device:
    import torch

    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' is bfloat16 on GPUs that support it (half the memory, full speed) and float32 elsewhere."""
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load(name: str, source: str, family: str | None = None, dtype: str = "auto",
         device: str | None = None, trust_remote_code: bool = False) -> LoadedModel:
    """The model for ``source``, read from disk at most once per process.

    Only the most recent model is kept; callers must hand it back dense (the engine
    restores its snapshot after every case).
    """
    key = (source, family, dtype, device, trust_remote_code)
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = _load(name, source, family, dtype, device, trust_remote_code)
    cached = _LOADED[key]
    return LoadedModel(name, cached.model, cached.tokenizer, cached.family, cached.fingerprint, cached.device)


CONVERTED_VARIABLE = "PYTEST_KNOWLEDGE_MODELS"


def converted_root() -> Path:
    """Where GGUF checkpoints are kept once converted: ``$PYTEST_KNOWLEDGE_MODELS``, else the user cache."""
    if os.environ.get(CONVERTED_VARIABLE):
        return Path(os.environ[CONVERTED_VARIABLE]).expanduser().resolve()
    return cache_home() / "models"


def converted(weights: Weights, trust_remote_code: bool = False) -> Weights:
    """A GGUF checkpoint as a float32 ``save_pretrained`` folder, converted once per file and library version.

    transformers parses GGUF metadata in Python three times per load (config, tokenizer,
    weights — about 45 s for SmolLM2 on two cores); the converted folder loads in about a
    second. It is named by the GGUF file's content hash, so a changed file is converted
    anew, and written to a scratch folder first, then renamed into place.
    """
    import torch
    import transformers
    from safetensors.torch import save_model

    if not weights.gguf_file:
        return weights
    fingerprint = file_fingerprint(weights)
    target = converted_root() / f"{Path(weights.gguf_file).stem}-{fingerprint}-transformers{transformers.__version__}"
    if not target.is_dir():
        log.info("converting %s to a safetensors folder, once per file (%s)", weights.gguf_file, target)
        check_gguf(Path(weights.location) / weights.gguf_file)
        kwargs: dict[str, Any] = {"gguf_file": weights.gguf_file, "trust_remote_code": trust_remote_code}
        config = transformers.AutoConfig.from_pretrained(weights.location, **kwargs)
        tokenizer = transformers.AutoTokenizer.from_pretrained(weights.location, **kwargs)
        model = _auto_class(detect_family(config)).from_pretrained(weights.location, dtype=torch.float32, **kwargs)
        with folder_atomic(target) as scratch:
            tokenizer.save_pretrained(scratch)
            # The weights are already dequantized, but transformers refuses save_pretrained on
            # anything loaded from GGUF, so config and tensors are written separately.
            config = model.config.to_dict()
            config.pop("quantization_config", None)  # it would make transformers read the GGUF file again
            (scratch / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
            save_model(model, str(scratch / "model.safetensors"))
    return Weights(str(target))


def _load(name: str, source: str, family: str | None, dtype: str, device: str | None,
          trust_remote_code: bool) -> LoadedModel:
    """Load tokenizer and model; raise a KnowledgeError saying how to get them when they are not available."""
    import transformers

    if trust_remote_code:
        print(f"pytest-knowledge: trust_remote_code is enabled for model {source!r} by the suite")

    weights = resolve(source)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    try:
        readable = converted(weights, trust_remote_code)
        options = load_options(Path(readable.location))
        config = transformers.AutoConfig.from_pretrained(readable.location, **kwargs)
        tokenizer = transformers.AutoTokenizer.from_pretrained(readable.location, **kwargs)
        chosen: Family = family or detect_family(config)  # type: ignore[assignment]
        target = target_device(device)
        model = _auto_class(chosen).from_pretrained(readable.location, dtype=resolve_dtype(dtype, target),
                                                    **kwargs, **options)
    except KnowledgeError as error:
        raise KnowledgeError(f"model {name!r}: {error}") from None
    except ImportError as error:
        raise KnowledgeError(f"model {name!r}: loading {source!r} needs a package that is not installed "
                             f"({str(error).splitlines()[0]}); expected it installed: pip install it") from None
    except (OSError, ValueError) as error:
        offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
        raise KnowledgeError(
            f"model {name!r}: cannot load {source!r} ({type(error).__name__}: {str(error).splitlines()[0]}). "
            "Use a built-in name (" + ", ".join(MODELS.names()) + "), a local directory saved with "
            "save_pretrained, or a hub id on a machine with hub access"
            + (" (HF_HUB_OFFLINE is set)" if offline else "")
        ) from error
    model.to(target).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return LoadedModel(name, model, tokenizer, chosen, file_fingerprint(weights) or state_fingerprint(model), target)
