"""Methods on the real SmolLM2 (shared, so every test restores it): int8 dynamic sanity,
head untying, and a prune-then-quantize pipeline run through the engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pytest_knowledge.api.models import LoadedModel
from pytest_knowledge.core.config import build
from pytest_knowledge.engine.engine import Engine
from pytest_knowledge.engine.workbench import DenseSnapshot
from pytest_knowledge.methods import METHODS, CompressionContext
from pytest_knowledge.suite.parse import load_suite

CAPITALS = {"The capital of France is": " Paris", "The capital of Germany is": " Berlin",
            "The capital of the United Kingdom is": " London"}


def next_tokens(loaded: LoadedModel, prompts: list[str]) -> list[str]:
    """Greedy next token after each prompt, run as one right-padded batch."""
    batch = loaded.tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = loaded.model(**batch).logits
    last = batch["attention_mask"].sum(1) - 1
    return [loaded.tokenizer.decode(int(i)) for i in logits[torch.arange(len(prompts)), last].argmax(-1)]


def apply(loaded: LoadedModel, method: str, params: dict, ratio: float | None):
    entry = METHODS.lookup(method, "method")
    context = CompressionContext(loaded.family, 0, loaded.tokenizer)
    return entry.apply(loaded.model, build(entry.config, params, "methods[0]"), ratio, context)


def test_int8_dynamic_keeps_capitals_top1_in_a_padded_batch(smollm2: LoadedModel) -> None:
    snapshot = DenseSnapshot(smollm2.model)
    try:
        report = apply(smollm2, "int8_dynamic", {}, None)
        quantized = next_tokens(smollm2, list(CAPITALS))
    finally:
        snapshot.restore()
    assert report.bits == 8 and report.touched_parameters > 100_000_000
    assert quantized == list(CAPITALS.values())


def test_head_pruning_unties_smollm2_and_restore_reties(smollm2: LoadedModel) -> None:
    model = smollm2.model
    assert model.lm_head.weight is model.model.embed_tokens.weight
    snapshot = DenseSnapshot(model)
    embeddings = model.model.embed_tokens.weight.detach().clone()
    try:
        report = apply(smollm2, "head", {"kind": "l1_unstructured"}, 0.5)
        assert model.lm_head.weight is not model.model.embed_tokens.weight
        assert torch.equal(model.model.embed_tokens.weight, embeddings)
        assert report.sparsity == round(0.5 * embeddings.numel()) / embeddings.numel()
    finally:
        snapshot.restore()
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert torch.equal(model.lm_head.weight, embeddings)


PIPELINE_SUITE = """
name: pipeline
models: [smollm2-135m]
ratios: [0.3]
methods:
  - {name: mag_ffn, method: magnitude, scope: ffn}
  - int8_weight
  - name: mag_ffn+int8
    method: [{method: magnitude, scope: ffn}, {method: int8_weight, scope: ffn}]
benchmarks:
  - {name: capitals, benchmark: facts, limit: 4}
"""


def test_prune_then_quantize_pipeline_suite_runs_under_its_own_id(smollm2: LoadedModel, tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE_SUITE, encoding="utf-8")
    cases = load_suite(path).cases()
    assert [case.id for case in cases] == [
        "smollm2-135m-dense-capitals",
        "smollm2-135m-mag_ffn-0.30-capitals",
        "smollm2-135m-int8_weight-capitals",
        "smollm2-135m-mag_ffn+int8-0.30-capitals",
    ]
    pipeline = cases[-1]
    assert [step.method.name for step in pipeline.method.steps] == ["magnitude", "int8_weight"]

    up_proj = smollm2.model.model.layers[0].mlp.up_proj
    dense_weight = up_proj.weight.detach().clone()
    outcome = Engine().run(pipeline)
    assert outcome.report is not None
    assert outcome.report.bits == 8
    assert outcome.report.sparsity_by_scope["ffn"] == pytest.approx(0.3, abs=1e-6)
    assert " then " in outcome.report.details
    assert outcome.result.n == 4 and outcome.dense.n == 4
    assert type(up_proj.weight) is torch.nn.Parameter and torch.equal(up_proj.weight, dense_weight)
