"""End to end: one suite over all three model families and all four benchmarks runs green.

SmolLM2 (decoder) takes every benchmark; the masked-LM fixture cannot run perplexity or
lm-eval tasks and the seq2seq fixture cannot run perplexity, so benchmark entries name
the models they apply to.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# pytester's in-process run forgets the modules first imported inside it, and importing
# `datasets` a second time in one process fails (it registers pyarrow extension types once),
# so everything lm-eval needs is imported before the run.
import datasets  # noqa: F401
import lm_eval.evaluator  # noqa: F401
import lm_eval.models.huggingface  # noqa: F401
import pytest

from pytest_knowledge.engine import loading as models

DATA = Path(__file__).parent / "data"

SUITE = """
name: families
models: [smollm2-135m, tiny-bert-facts, tiny-t5-facts]
methods: [{name: pruned, method: magnitude}]
ratios: [0.3]
benchmarks:
  - {name: lama, benchmark: lama, path: lama, relations: [P36, Squad], models: [smollm2-135m]}
  - {name: facts, benchmark: facts, relations: [capital, currency], limit: 3, models: [smollm2-135m]}
  - {name: ppl, benchmark: perplexity, max_tokens: 64, window: 32, stride: 16, models: [smollm2-135m]}
  - {name: mc, benchmark: lm_eval, task: knowledge_capitals_mc, limit: 3, models: [smollm2-135m]}
  - {name: lama_vocab, benchmark: lama, path: lama, vocab: lama/common_vocab.txt, models: [tiny-bert-facts]}
  - {name: facts10, benchmark: facts, relations: [capital, currency], limit: 10, models: [tiny-bert-facts]}
  - {name: lama_cand, benchmark: lama, path: lama, mode: candidates, models: [tiny-t5-facts]}
  - {name: facts_cand, benchmark: facts, relations: [capital, currency], limit: 10, mode: candidates,
     models: [tiny-t5-facts]}
  - {name: yesno, benchmark: lm_eval, task: knowledge_capitals_yesno, limit: 4, models: [tiny-t5-facts]}
"""


def test_one_suite_over_every_family_runs_green(pytester, monkeypatch, smollm2):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "_LOADED", dict(models._LOADED))  # keep the shared SmolLM2 cached for later tests
    shutil.copytree(DATA / "lama", pytester.path / "lama")
    pytester.makefile(".yaml", suite=SUITE)

    result = pytester.runpytest_inprocess("--knowledge-suite=suite.yaml", "--knowledge-update-baselines",
                                          "-p", "no:cacheprovider")

    result.assert_outcomes(passed=8 + 4 + 6)
    recorded = {}
    for model in ("smollm2-135m", "tiny-bert-facts", "tiny-t5-facts"):
        recorded.update(json.loads((pytester.path / "baselines" / "families" / f"{model}.json").read_text())["entries"])
    assert recorded["smollm2-135m-dense-ppl"]["higher_is_better"] is False
    assert "acc_stderr" in recorded["smollm2-135m-dense-mc"]["extra"]
    assert recorded["tiny-bert-facts-dense-lama_vocab"]["extra"]["filtered.vocab"] == 4
    assert recorded["tiny-bert-facts-dense-lama_vocab"]["extra"]["p_at_1.P36"] == 1.0
    assert recorded["tiny-t5-facts-dense-lama_cand"]["extra"]["p_at_1.P36"] == 1.0
    assert recorded["tiny-t5-facts-pruned-0.30-yesno"]["method_report"]["sparsity"] == pytest.approx(0.3, abs=0.01)
