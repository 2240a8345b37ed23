"""Tiny encoder and encoder-decoder fixture models: shipped, labelled, loaded like any checkpoint,
and reproducible from their recipe."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import transformers

from pytest_knowledge import testing
from pytest_knowledge.benchmarks.facts import FactsBenchmark, FactsConfig
from pytest_knowledge.benchmarks.lama import LamaBenchmark, LamaConfig
from pytest_knowledge.benchmarks.lm_eval_tasks import LmEvalBenchmark, LmEvalConfig
from pytest_knowledge.benchmarks.scoring import Cloze, cloze_ranks, rank_metrics
from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.engine import loading as models
from pytest_knowledge.testing import __main__ as regenerate
from pytest_knowledge.testing import training

LAMA = Path(__file__).parent / "data" / "lama"


def load_fixture(name: str) -> models.LoadedModel:
    """Load by built-in name without evicting the model other tests share from the loader's cache."""
    saved = dict(models._LOADED)
    try:
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


@pytest.mark.parametrize("name", testing.FIXTURE_MODELS)
def test_fixture_is_shipped_labelled_and_never_trained_on_use(name, monkeypatch):
    monkeypatch.setattr(training, "train", lambda *a: pytest.fail("a shipped fixture was trained on use"))
    directory = testing.checkpoint_dir(name)
    assert directory.parent == Path(testing.__file__).parent / "checkpoints"
    assert models.resolve(name).location == str(directory)
    report = json.loads((directory / "training.json").read_text())
    assert "not a pretrained model" in report["fixture"]
    assert training.Recipe(**{**report["recipe"], "relations": tuple(report["recipe"]["relations"])}) == training.RECIPES[name]
    assert report["exact_match"] >= 0.95


def test_baselines_on_the_fixtures_match_the_shipped_weights():
    """The default suite's baselines were recorded on the shipped files, so they compare on any machine."""
    stored = json.loads((Path(__file__).parents[1] / "baselines/default/tiny-bert-facts.json").read_text())
    fingerprints = {entry["fingerprint"] for entry in stored["entries"].values()}
    assert fingerprints == {models.source_fingerprint("tiny-bert-facts")}


def test_an_unknown_or_missing_fixture_says_what_to_do(monkeypatch, tmp_path):
    with pytest.raises(KnowledgeError, match="unknown fixture model 'tiny-gpt'"):
        testing.checkpoint_dir("tiny-gpt")
    monkeypatch.setattr(testing, "CHECKPOINTS", tmp_path)
    with pytest.raises(KnowledgeError, match="python -m pytest_knowledge.testing"):
        testing.checkpoint_dir("tiny-bert-facts")


@pytest.mark.slow
def test_a_fresh_training_reproduces_the_shipped_p_at_1(capsys):
    """Training again (on whatever CPU runs this) lands within the regenerator's tolerance of
    the shipped checkpoints' P@1, so the recipe stays the truth about how they were made."""
    assert regenerate.main(["--check"]) == 0, capsys.readouterr().out
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == list(testing.FIXTURE_MODELS)


@pytest.mark.parametrize(("name", "family"), [("tiny-bert-facts", "encoder"), ("tiny-t5-facts", "encoder-decoder")])
def test_fixture_knows_its_own_facts(name, family, request):
    loaded = request.getfixturevalue("bert" if family == "encoder" else "t5")
    assert loaded.family == family
    facts = training.training_facts(training.RECIPES[name])
    ranks = cloze_ranks(loaded, [Cloze(f.prefix, f.object, f.suffix) for f in facts], "first_token", batch_size=128)
    assert rank_metrics(ranks, 10)["p_at_1"] >= 0.95


def test_training_is_deterministic(tmp_path):
    recipe = dataclasses.replace(training.RECIPES["tiny-bert-facts"], relations=("capital",), steps=3)
    facts = training.training_facts(recipe)[:30]
    weights = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        training.train(recipe, facts, tmp_path / run)
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
