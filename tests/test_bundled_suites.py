"""The suites shipped in suites/: each one collects offline, without its data and without loading a model.

The paper suites name hub models and data that are not here; collecting them must still
work (``--co``), and running one of their cases must fail with a message that says what
is missing, before any model is loaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pytest_knowledge.engine import engine, workbench
from pytest_knowledge.engine import loading as models
from pytest_knowledge.suite.parse import load_suite

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "suites"
LAMA = Path(__file__).parent / "data" / "lama"

# suite file -> (number of cases, some of their ids)
EXPECTED = {
    "default.yaml": (12, [
        "smollm2-135m-dense-facts_capital",
        "smollm2-135m-magnitude_all-0.50-facts_capital",
        "smollm2-135m-int8-facts_capital",
        "tiny-bert-facts-dense-facts_country",
        "tiny-bert-facts-magnitude_all-0.30-facts_country",
        "tiny-bert-facts-int8-facts_country",
    ]),
    "paper-encoders.yaml": (4 * 4 * (1 + 3 * 9 + 9 + 3 + 3 * 9), [
        "bert-base-uncased-dense-lama_trex",
        "bert-base-uncased-magnitude_all-0.10-lama_trex",
        "roberta-base-magnitude_attention-0.90-lama_google_re",
        "albert-base-v2-magnitude_ffn-0.50-lama_conceptnet",
        "distilbert-base-uncased-head-0.70-lama_squad",
        "bert-base-uncased-int8_attention-lama_squad",
        "roberta-base-int8_ffn-lama_trex",
        "albert-base-v2-int8_all-lama_google_re",
        "distilbert-base-uncased-magnitude_all+int8_all-0.40-lama_trex",
        "bert-base-uncased-magnitude_ffn+int8_ffn-0.20-lama_conceptnet",
    ]),
    "paper-decoders.yaml": (2 * 3 * (1 + 3 * 9 + 9 + 3 + 3 * 9), [
        "llama-2-7b-dense-boolq",
        "llama-2-7b-magnitude_all-0.90-piqa",
        "llama-2-7b-head-0.30-winogrande",
        "flan-t5-large-int8_all-boolq",
        "flan-t5-large-magnitude_attention+int8_attention-0.60-piqa",
        "flan-t5-large-dense-winogrande",
    ]),
    "quant-ladder.yaml": (6, [
        "smollm2-135m-dense-facts_capital",
        "smollm2-135m-gguf_q8_0-facts_capital",
        "smollm2-135m-gguf_q5_1-facts_capital",
        "smollm2-135m-gguf_q5_0-facts_capital",
        "smollm2-135m-gguf_q4_1-facts_capital",
        "smollm2-135m-gguf_q4_0-facts_capital",
    ]),
    "release-gate.yaml": (3, [
        "smollm2-135m-dense-facts_capital",
        "smollm2-135m-int8-facts_capital",
        "smollm2-135m-magnitude_all-0.10-facts_capital",
    ]),
}


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way a case reaches a model or benchmark data, replaced by a recorder that refuses."""
    calls: list[str] = []

    def refuse(what: str):
        def call(*args, **kwargs):
            calls.append(f"{what}{args[:2]}")
            raise AssertionError(f"{what} called")
        return call

    monkeypatch.setattr(models, "load", refuse("models.load"))
    monkeypatch.setattr(workbench, "load", refuse("workbench.load"))
    monkeypatch.setattr(engine, "source_fingerprint", refuse("engine.source_fingerprint"))
    monkeypatch.setattr(workbench.Workbench, "model", refuse("Workbench.model"))
    monkeypatch.delenv("LAMA_DIR", raising=False)
    return calls


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(SUITES, pytester.path / "suites")
    return pytester


def test_every_bundled_suite_is_listed_here():
    assert sorted(p.name for p in SUITES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundled_suite_collects_offline_without_loading_anything(project, no_loading, name):
    count, some_ids = EXPECTED[name]
    result = project.runpytest_inprocess(f"--knowledge-suite=suites/{name}", "--co", "-q", "-p", "no:cacheprovider",
                                         "--knowledge-no-history")
    assert result.ret == 0, result.stdout.str()
    collected = [line.split("::", 1)[1] for line in result.stdout.lines if line.startswith(f"suites/{name}::")]
    assert len(collected) == len(set(collected)) == count
    assert set(some_ids) <= set(collected), sorted(set(some_ids) - set(collected))
    assert f"{count} tests collected" in result.stdout.str()
    assert no_loading == []
    assert not (project.path / ".knowledge" / "history.db").exists()


def test_a_lama_case_without_the_data_fails_when_it_runs_and_says_how_to_get_it(project, no_loading):
    result = project.runpytest_inprocess("--knowledge-suite=suites/paper-encoders.yaml", "-p", "no:cacheprovider",
                                         "--knowledge-no-history", "suites/paper-encoders.yaml::bert-base-uncased-dense-lama_squad")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "benchmark lama: parameter 'path': expected an existing file or folder, got '${LAMA_DIR}/Squad'" in out
    assert "environment variable LAMA_DIR is not set" in out
    assert "https://dl.fbaipublicfiles.com/LAMA/data.zip" in out
    assert no_loading == []  # the data is checked before the model would be loaded


def test_a_lama_case_with_lama_dir_set_to_a_missing_folder_names_the_resolved_path(project, no_loading, monkeypatch,
                                                                                   tmp_path):
    monkeypatch.setenv("LAMA_DIR", str(tmp_path / "not-unzipped"))
    result = project.runpytest_inprocess("--knowledge-suite=suites/paper-encoders.yaml", "-p", "no:cacheprovider",
                                         "--knowledge-no-history", "suites/paper-encoders.yaml::roberta-base-dense-lama_trex")
    result.assert_outcomes(failed=1)
    assert f"resolved to '{tmp_path}/not-unzipped/TREx', which does not exist" in result.stdout.str()
    assert no_loading == []


def test_release_gate_gates_on_retention_and_significance():
    suite = load_suite(SUITES / "release-gate.yaml")
    for case in suite.cases():
        assert case.tolerance.significance == 0.05, case.id
        assert case.tolerance.abs > 0, case.id
        if case.method is not None:
            assert case.tolerance.min_retention == 0.8, case.id


@pytest.mark.parametrize("name", ["default.yaml", "release-gate.yaml", "quant-ladder.yaml"])
def test_offline_suites_have_a_baseline_for_every_case(name):
    suite = load_suite(SUITES / name)
    for model in suite.models:
        path = ROOT / "baselines" / suite.name / f"{model.name}.json"
        entries = json.loads(path.read_text())["entries"]
        wanted = {c.id for c in suite.cases() if c.model == model}
        assert set(entries) == wanted, f"{path}: missing {sorted(wanted - set(entries))}, stale {sorted(set(entries) - wanted)}"


def test_the_recorder_notices_a_case_that_reaches_its_model(project, no_loading):
    """Guards the checks above: running a case (not collecting it) does reach the patched loaders."""
    result = project.runpytest_inprocess("--knowledge-suite=suites/release-gate.yaml", "-p", "no:cacheprovider",
                                         "--knowledge-no-history", "--knowledge-no-cache",
                                         "suites/release-gate.yaml::smollm2-135m-dense-facts_capital")
    result.assert_outcomes(failed=1)
    assert no_loading and "smollm2-135m" in no_loading[0]


def small_copy(name: str, models_: list, benchmarks: list | None = None) -> str:
    """The bundled suite with its methods and tolerances, on small local models at one ratio."""
    data = yaml.safe_load((SUITES / name).read_text())
    data["models"], data["ratios"] = models_, [0.5]
    data["benchmarks"] = benchmarks or data["benchmarks"][:1]
    return yaml.safe_dump(data, sort_keys=False)


@pytest.mark.slow
def test_the_encoder_paper_methods_run_on_an_encoder_with_lama_dir(pytester, monkeypatch):
    monkeypatch.setenv("LAMA_DIR", str(LAMA))  # the suite's own ${LAMA_DIR}/TREx, on the test copy of LAMA
    pytester.makefile(".yaml", suite=small_copy("paper-encoders.yaml", ["tiny-bert-facts"]))
    result = pytester.runpytest_subprocess("--knowledge-suite=suite.yaml", "--knowledge-update-baselines",
                                           "--knowledge-no-cache", "--knowledge-no-history", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1 + 3 + 1 + 3 + 3)
    entries = json.loads((pytester.path / "baselines/paper-encoders/tiny-bert-facts.json").read_text())["entries"]
    pruned = entries["tiny-bert-facts-magnitude_attention+int8_attention-0.50-lama_trex"]["method_report"]
    assert pruned["sparsity_by_scope"]["attention"] == pytest.approx(0.5, abs=0.01) and pruned["bits"] == 8
    assert entries["tiny-bert-facts-dense-lama_trex"]["n"] > 0


@pytest.mark.slow
def test_the_decoder_paper_methods_run_on_a_decoder_and_an_encoder_decoder(pytester, monkeypatch, tiny_llama):
    task = [{"name": "yesno", "benchmark": "lm_eval", "task": "knowledge_capitals_yesno", "limit": 4,
             "bootstrap_iters": 0}]
    local = [{"name": "tiny-llama", "source": str(tiny_llama), "family": "decoder"}, "tiny-t5-facts"]
    pytester.makefile(".yaml", suite=small_copy("paper-decoders.yaml", local, task))
    result = pytester.runpytest_subprocess("--knowledge-suite=suite.yaml", "--knowledge-update-baselines",
                                           "--knowledge-no-cache", "--knowledge-no-history", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2 * (1 + 3 + 1 + 3 + 3))
    for model in ("tiny-llama", "tiny-t5-facts"):
        entries = json.loads((pytester.path / f"baselines/paper-decoders/{model}.json").read_text())["entries"]
        assert entries[f"{model}-int8_ffn-yesno"]["method_report"]["bits"] == 8
        assert entries[f"{model}-head-0.50-yesno"]["method_report"]["sparsity_by_scope"]["head"] == pytest.approx(0.5)
