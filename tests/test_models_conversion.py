"""GGUF checkpoints are converted once to a save_pretrained folder; what loads from it must be
exactly what the GGUF file holds, and a changed file must never reuse an old conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import transformers
from safetensors import safe_open

from pytest_knowledge.api.models import Weights
from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.engine import loading as models
from pytest_knowledge.engine.loading import converted, converted_root, resolve


def test_converted_weights_equal_the_gguf_tensors(smollm2) -> None:
    from gguf import GGUFReader
    from gguf.quants import dequantize

    weights = resolve("smollm2-135m")
    folder = Path(converted(weights).location)
    assert folder.parent == converted_root()
    assert models.file_fingerprint(weights) in folder.name
    reader = GGUFReader(Path(weights.location) / weights.gguf_file)
    embedding = next(t for t in reader.tensors if t.name == "token_embd.weight")
    expected = dequantize(embedding.data, embedding.tensor_type)
    with safe_open(folder / "model.safetensors", "np") as stored:
        head = stored.get_tensor("lm_head.weight")  # tied to the embedding in SmolLM2
    assert head.shape == expected.shape == (49152, 576)
    assert np.array_equal(head, expected.astype(np.float32))
    assert "quantization_config" not in (folder / "config.json").read_text()
    # The loaded model's fingerprint stays the GGUF file's, so result-cache keys do not change.
    assert smollm2.fingerprint == models.file_fingerprint(weights)


def test_each_gguf_content_gets_its_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(models.CONVERTED_VARIABLE, str(tmp_path / "converted"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"first")
    weights = Weights(str(tmp_path), gguf_file="m.gguf")
    first = converted_root() / f"m-{models.file_fingerprint(weights)}-transformers{transformers.__version__}"
    first.mkdir(parents=True)  # an existing conversion is used as is, without reading the GGUF file
    assert converted(weights).location == str(first)
    gguf.write_bytes(b"second")
    with pytest.raises(KnowledgeError, match="cannot read the GGUF file"):  # conversion is attempted, never the old folder reused
        converted(weights)
    assert sorted(p.name for p in converted_root().iterdir()) == [first.name]  # no scratch folder left


def test_folders_without_gguf_are_used_directly(tmp_path: Path) -> None:
    weights = Weights(str(tmp_path))
    assert converted(weights) is weights
