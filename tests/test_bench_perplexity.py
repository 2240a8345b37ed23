"""Strided perplexity on offline Wikipedia text."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from pytest_knowledge.api.models import LoadedModel
from pytest_knowledge.benchmarks.perplexity import (
    PerplexityBenchmark,
    PerplexityConfig,
    windows,
)
from pytest_knowledge.core.config import build
from pytest_knowledge.core.errors import KnowledgeError, SuiteError


class Uniform(nn.Module):
    """Every next token equally likely: perplexity is exactly the vocabulary size."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.config = SimpleNamespace(max_position_embeddings=32)

    def forward(self, input_ids, attention_mask=None, use_cache=None):
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.size))


def test_windows_score_every_token_once_with_context():
    assert windows(10, 4, 2) == [(0, 4, 3), (2, 6, 2), (4, 8, 2), (6, 10, 2)]
    assert windows(8, 4, 4) == [(0, 4, 3), (4, 8, 3)]  # stride == window: each window's first token has no context
    assert windows(3, 8, 4) == [(0, 3, 2)]


def test_uniform_model_has_perplexity_equal_to_its_vocabulary(smollm2):
    size = len(smollm2.tokenizer)
    fake = LoadedModel("uniform", Uniform(size), smollm2.tokenizer, "decoder", "-", torch.device("cpu"))
    result = PerplexityBenchmark(PerplexityConfig(max_tokens=100, window=64, stride=16)).evaluate(fake)
    assert result.value == pytest.approx(size, rel=1e-5)
    assert result.n == 99 and result.higher_is_better is False
    assert result.extra["windows"] == 6  # the model's 32 positions cap the window: 0-32, 16-48, ..., 80-100


def test_matches_one_forward_pass_when_the_window_covers_the_text(smollm2):
    bench = PerplexityBenchmark(PerplexityConfig(max_tokens=48, window=48, stride=48))
    ids = torch.tensor([bench._token_ids(smollm2)])
    with torch.inference_mode():
        logits = smollm2.model(input_ids=ids).logits.float()
    expected = math.exp(float(torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])))
    result = bench.evaluate(smollm2)
    assert result.value == pytest.approx(expected, rel=1e-4)
    assert 1 < result.value < 1000 and result.n == 47


def test_text_is_seeded_and_model_independent():
    one, two = PerplexityBenchmark(PerplexityConfig(max_tokens=64)), PerplexityBenchmark(PerplexityConfig(max_tokens=64))
    assert one.data_fingerprint() == two.data_fingerprint()
    assert PerplexityBenchmark(PerplexityConfig(max_tokens=64, seed=1)).text != one.text


def test_encoders_get_a_clear_error(smollm2):
    encoder = LoadedModel("bert", Uniform(8), smollm2.tokenizer, "encoder", "-", torch.device("cpu"))
    with pytest.raises(KnowledgeError, match="'bert' is an encoder model; perplexity is defined for decoder"):
        PerplexityBenchmark(PerplexityConfig(max_tokens=16)).evaluate(encoder)


def test_config_is_validated():
    with pytest.raises(SuiteError, match="1 <= stride <= window"):
        build(PerplexityConfig, {"window": 8, "stride": 16}, "benchmarks[0]")
