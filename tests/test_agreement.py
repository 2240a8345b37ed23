"""Agreement with the dense model on a tiny checkpoint."""

from __future__ import annotations

from pytest_knowledge.engine import agreement
from pytest_knowledge.engine.loading import load
from pytest_knowledge.engine.workbench import DenseSnapshot
from pytest_knowledge.methods.magnitude import prune_global_magnitude
from pytest_knowledge.methods.scopes import linear_layers


def test_dense_agrees_with_itself_and_pruning_moves_it(tiny_llama):
    loaded = load("tiny", str(tiny_llama))
    texts = agreement.agreement_texts(["The capital of France is"])
    dense = agreement.reference(loaded, texts)
    same = agreement.compare(loaded, texts, dense)
    assert same.top1 == 1.0 and same.kl < 1e-6
    snapshot = DenseSnapshot(loaded.model)
    prune_global_magnitude([layer.module.weight.data for layer in linear_layers(loaded.model)], 0.9)
    moved = agreement.compare(loaded, texts, dense)
    snapshot.restore()
    assert moved.top1 < 1.0 and moved.kl > 1e-5  # a random model is near-uniform: small, but far above 0


def test_trust_remote_code_is_announced(tiny_llama, capsys):
    load("tiny", str(tiny_llama), trust_remote_code=True)  # a new load key: really loads
    assert f"trust_remote_code is enabled for model {str(tiny_llama)!r}" in capsys.readouterr().out
