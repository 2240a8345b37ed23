"""Tiny encoder and encoder-decoder fixture models: trained once, cached, loaded like any checkpoint."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest
import torch
import transformers

from pytest_knowledge import fixtures, models
from pytest_knowledge.benchmarks.facts import FactsBenchmark, FactsConfig
from pytest_knowledge.benchmarks.lama import LamaBenchmark, LamaConfig
from pytest_knowledge.benchmarks.lm_eval_tasks import LmEvalBenchmark, LmEvalConfig
from pytest_knowledge.scoring import Cloze, cloze_ranks, rank_metrics

CACHE = os.environ.get(fixtures.ROOT_VARIABLE) or str(Path(__file__).parents[1] / ".knowledge" / "fixtures")
LAMA = Path(__file__).parent / "data" / "lama"


@pytest.fixture(autouse=True)
def shared_cache(monkeypatch):
    monkeypatch.setenv(fixtures.ROOT_VARIABLE, CACHE)


def load_fixture(name: str) -> models.LoadedModel:
    """Load by built-in name without evicting the model other tests share from the loader's cache."""
    saved = dict(models._LOADED)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(fixtures.ROOT_VARIABLE, CACHE)
            return models.load(name, name)
    finally:
        models._LOADED.clear()
        models._LOADED.update(saved)


@pytest.fixture(scope="module")
def bert() -> models.LoadedModel:
    return load_fixture("tiny-bert-facts")


@pytest.fixture(scope="module")
def t5() -> models.LoadedModel:
    return load_fixture("tiny-t5-facts")


@pytest.mark.parametrize("name", sorted(fixtures.RECIPES))
def test_fixture_is_cached_and_labelled(name):
    directory = fixtures.fixture_dir(name)
    started = time.perf_counter()
    assert fixtures.fixture_dir(name) == directory
    assert time.perf_counter() - started < 10  # a cache hit never retrains
    assert directory.parent == Path(CACHE).resolve() and directory.name.startswith(f"{name}-")
    report = json.loads((directory / "training.json").read_text())
    assert "not a pretrained model" in report["fixture"]
    assert report["exact_match"] >= 0.95 and report["seconds"] < 120
    assert models.resolve(name).location == str(directory)


@pytest.mark.parametrize(("name", "family"), [("tiny-bert-facts", "encoder"), ("tiny-t5-facts", "encoder-decoder")])
def test_fixture_knows_its_own_facts(name, family, request):
    loaded = request.getfixturevalue("bert" if family == "encoder" else "t5")
    assert loaded.family == family
    facts = fixtures.training_facts(fixtures.RECIPES[name])
    ranks = cloze_ranks(loaded, [Cloze(f.prefix, f.object, f.suffix) for f in facts], "first_token", batch_size=128)
    assert rank_metrics(ranks, 10)["p_at_1"] >= 0.95


def test_training_is_deterministic(tmp_path):
    recipe = dataclasses.replace(fixtures.RECIPES["tiny-bert-facts"], relations=("capital",), steps=3)
    facts = fixtures.training_facts(recipe)[:30]
    weights = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        fixtures.train(recipe, facts, tmp_path / run)
        weights.append(transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / run).state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("mode", ["first_token", "candidates"])
def test_fixtures_answer_lama_capitals(bert, t5, mode):
    lama = LamaBenchmark(LamaConfig(path=str(LAMA), relations=("P36",), mode=mode))
    assert lama.evaluate(bert).value == 1.0
    assert lama.evaluate(t5).value == 1.0


def test_facts_probe_runs_on_both_fixtures(bert, t5):
    probe = FactsBenchmark(FactsConfig(relations=("capital", "currency"), limit=10, mode="candidates"))
    for loaded in (bert, t5):
        assert probe.evaluate(loaded).value >= 0.8


def test_lm_eval_runs_the_seq2seq_fixture(t5, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    result = LmEvalBenchmark(LmEvalConfig(task="knowledge_capitals_yesno", limit=4)).evaluate(t5)
    assert result.n == 4 and len(result.outcomes) == 4 and "acc_stderr" in result.extra
