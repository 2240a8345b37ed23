"""End to end: suites over all three model families and all four benchmarks run green under pytest.

SmolLM2 (decoder) takes every benchmark; the masked-LM fixture cannot run perplexity or
lm-eval tasks and the seq2seq fixture cannot run perplexity, so each family has its own
suite file and the folder runs as one session.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

# pytester's in-process run forgets the modules first imported inside it, and importing
# `datasets` a second time in one process fails (it registers pyarrow extension types once),
# so everything lm-eval needs is imported before the run.
import datasets  # noqa: F401
import lm_eval.evaluator  # noqa: F401
import lm_eval.models.huggingface  # noqa: F401
import pytest

from pytest_knowledge import fixtures, models

DATA = Path(__file__).parent / "data"
CACHE = os.environ.get(fixtures.ROOT_VARIABLE) or str(Path(__file__).parents[1] / ".knowledge" / "fixtures")

SUITES = {
    "decoder": """
models: [smollm2-135m]
benchmarks:
  - {name: lama, benchmark: lama, path: lama, relations: [P36, Squad]}
  - {name: facts, benchmark: facts, relations: [capital, currency], limit: 3}
  - {name: ppl, benchmark: perplexity, max_tokens: 64, window: 32, stride: 16}
  - {name: mc, benchmark: lm_eval, task: knowledge_capitals_mc, limit: 3}
""",
    "encoder": """
models: [tiny-bert-facts]
methods: [{name: pruned, method: magnitude}]
ratios: [0.3]
benchmarks:
  - {name: lama, benchmark: lama, path: lama, vocab: lama/common_vocab.txt}
  - {name: facts, benchmark: facts, relations: [capital, currency], limit: 10}
""",
    "seq2seq": """
models: [tiny-t5-facts]
methods: [{name: pruned, method: magnitude}]
ratios: [0.3]
benchmarks:
  - {name: lama, benchmark: lama, path: lama, mode: candidates}
  - {name: facts, benchmark: facts, relations: [capital, currency], limit: 10, mode: candidates}
  - {name: yesno, benchmark: lm_eval, task: knowledge_capitals_yesno, limit: 4}
""",
}


def test_suites_for_every_family_run_green(pytester, monkeypatch, smollm2):
    monkeypatch.setenv(fixtures.ROOT_VARIABLE, CACHE)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "_LOADED", dict(models._LOADED))  # keep the shared SmolLM2 cached for later tests
    shutil.copytree(DATA / "lama", pytester.path / "lama")
    for name, text in SUITES.items():
        pytester.makefile(".yaml", **{f"suites/{name}": f"name: {name}\n{text}"})

    result = pytester.runpytest_inprocess("--knowledge-suite", "suites", "--knowledge-update-baselines", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=4 + 4 + 6)
    recorded = {}
    for suite, model in (("decoder", "smollm2-135m"), ("encoder", "tiny-bert-facts"), ("seq2seq", "tiny-t5-facts")):
        recorded.update(json.loads((pytester.path / "baselines" / suite / f"{model}.json").read_text())["entries"])
    assert recorded["smollm2-135m-dense-ppl"]["higher_is_better"] is False
    assert "acc_stderr" in recorded["smollm2-135m-dense-mc"]["extra"]
    assert recorded["tiny-bert-facts-dense-lama"]["extra"]["filtered.vocab"] == 4
    assert recorded["tiny-bert-facts-dense-lama"]["extra"]["p_at_1.P36"] == 1.0
    assert recorded["tiny-t5-facts-dense-lama"]["extra"]["p_at_1.P36"] == 1.0
    assert recorded["tiny-t5-facts-pruned-0.30-yesno"]["method_report"]["sparsity"] == pytest.approx(0.3, abs=0.01)
