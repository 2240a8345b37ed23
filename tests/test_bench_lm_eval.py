"""lm-evaluation-harness tasks on the in-memory model, offline, with the bundled local tasks."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from pytest_knowledge.api.models import LoadedModel
from pytest_knowledge.benchmarks.lm_eval_tasks import (
    LmEvalBenchmark,
    LmEvalConfig,
    _evaluating,
)
from pytest_knowledge.core.config import build
from pytest_knowledge.core.errors import KnowledgeError, SuiteError


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_bundled_multiple_choice_task_on_smollm2(smollm2):
    bench = LmEvalBenchmark(LmEvalConfig(task="knowledge_capitals_mc", limit=4, num_fewshot=1))
    result = bench.evaluate(smollm2)
    assert (result.metric, result.n, result.higher_is_better) == ("acc", 4, True)
    assert result.value == result.outcomes.count("1") / 4
    assert set(result.extra) == {"acc_stderr", "acc_norm", "acc_norm_stderr"}
    assert result.extra["acc_stderr"] == pytest.approx((result.value * (1 - result.value) / 3) ** 0.5)


def test_guards_keep_pruned_heads_and_restore_everything():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = SimpleNamespace(use_cache=True)
            self.head = nn.Linear(2, 2)

        def tie_weights(self):
            self.head.weight = nn.Parameter(torch.ones(2, 2))

    model = Model()
    pruned = model.head.weight
    os.environ.pop("DISABLE_MULTIPROC", None)
    with _evaluating(model):
        model.tie_weights()
        assert model.head.weight is pruned and model.config.use_cache is False
        assert os.environ["DISABLE_MULTIPROC"] == "1"
    assert model.config.use_cache is True and "DISABLE_MULTIPROC" not in os.environ
    model.tie_weights()
    assert model.head.weight is not pruned  # the real method is back


def test_local_task_data_files_are_relative_to_include_path(tmp_path, monkeypatch):
    (tmp_path / "docs.jsonl").write_text('{"q": "2+2", "a": 1}\n{"q": "1+1", "a": 0}\n')
    (tmp_path / "sums.yaml").write_text(
        "task: test_local_sums\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: docs.jsonl\n"
        "output_type: multiple_choice\ntest_split: test\ndoc_to_text: '{{q}}='\ndoc_to_choice: ['2', '4']\n"
        "doc_to_target: a\nmetric_list:\n  - metric: acc\n"
    )
    cwd = Path.cwd()
    monkeypatch.setenv("TASKS_DIR", str(tmp_path))
    bench = LmEvalBenchmark(build(LmEvalConfig, {"task": "test_local_sums", "include_path": "${TASKS_DIR}"}, "b"))
    assert Path.cwd() == cwd
    assert bench.metric == "acc" and len(list(bench.task.eval_docs)) == 2
    assert bench.data_fingerprint() != LmEvalBenchmark(LmEvalConfig(task="test_local_sums", include_path=str(tmp_path), limit=1)).data_fingerprint()


def test_problems_are_explained(tmp_path, smollm2):
    with pytest.raises(KnowledgeError, match=r"unknown task 'knowledge_capital_mc' \(did you mean 'knowledge_capitals_mc'\?\)"):
        LmEvalBenchmark(LmEvalConfig(task="knowledge_capital_mc"))
    with pytest.raises(KnowledgeError, match="has no metric 'f1' \\(it has acc, acc_norm\\)"):
        LmEvalBenchmark(LmEvalConfig(task="knowledge_capitals_mc", metric="f1"))
    missing = build(LmEvalConfig, {"task": "x", "include_path": str(tmp_path / "missing")}, "b")  # loads; runs fail
    with pytest.raises(KnowledgeError, match="parameter 'include_path': expected an existing folder, got .*missing'"):
        LmEvalBenchmark(missing)
    with pytest.raises(SuiteError, match="include_path: a non-empty path"):
        build(LmEvalConfig, {"task": "x", "include_path": " "}, "b")
    bert = LoadedModel("bert", smollm2.model, smollm2.tokenizer, "encoder", "-", torch.device("cpu"))
    with pytest.raises(KnowledgeError, match="'bert' is an encoder model; lm-eval runs decoder and encoder-decoder"):
        LmEvalBenchmark(LmEvalConfig(task="knowledge_capitals_yesno", limit=2)).evaluate(bert)


def test_a_task_whose_data_is_missing_is_explained(tmp_path):
    (tmp_path / "gone.yaml").write_text(
        "task: test_gone\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: missing.jsonl\n"
        "output_type: multiple_choice\ntest_split: test\ndoc_to_text: '{{q}}'\ndoc_to_choice: ['a']\ndoc_to_target: 0\n"
    )
    with pytest.raises(KnowledgeError, match=r"the data of task 'test_gone' is not available .*dataset_path: json"):
        LmEvalBenchmark(LmEvalConfig(task="test_gone", include_path=str(tmp_path)))


TASK = ("task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        "output_type: multiple_choice\ntest_split: test\ndoc_to_text: '{text}'\ndoc_to_choice: ['2', '4']\n"
        "doc_to_target: a\nmetric_list:\n  - metric: acc\n")
WRITES_A_FILE = "def process_docs(dataset):\n    open({marker!r}, 'w').write('ran')\n    return dataset\n"


def _task_folder(folder: Path, marker: Path, process_docs: str = "process_docs: !function utils.process_docs\n",
                 text: str = "{{q}}=") -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "docs.jsonl").write_text('{"q": "2+2", "a": 1}\n{"q": "1+1", "a": 0}\n')
    (folder / "utils.py").write_text(WRITES_A_FILE.format(marker=str(marker)))
    (folder / "sums.yaml").write_text(TASK.format(name="test_code_sums", data="docs.jsonl", text=text) + process_docs)
    return folder


def test_a_task_folder_that_runs_python_is_refused_unless_trusted(tmp_path):
    marker = tmp_path / "ran.txt"
    folder = _task_folder(tmp_path / "tasks", marker)
    config = build(LmEvalConfig, {"task": "test_code_sums", "include_path": str(folder)}, "b")
    with pytest.raises(KnowledgeError, match=r"include_path .*tasks has task YAML that runs Python \(.*sums.yaml:"
                                             r"\d+ !function utils.process_docs\).*'trust_task_code: true'"):
        LmEvalBenchmark(config)
    assert not marker.exists()
    trusted = LmEvalBenchmark(build(LmEvalConfig, {"task": "test_code_sums", "include_path": str(folder),
                                                   "trust_task_code": True}, "b"))
    assert len(list(trusted.task.eval_docs)) == 2 and marker.read_text() == "ran"


@pytest.mark.parametrize("process_docs", [
    "include: ../shared/base.yaml\n",  # the function sits in an included file outside the folder
    "%TAG !py! !func\n---\n",  # the tag spelled through a YAML tag directive
])
def test_python_is_found_however_the_yaml_spells_it(tmp_path, process_docs):
    marker = tmp_path / "ran.txt"
    folder = _task_folder(tmp_path / "tasks", marker, process_docs="")
    sums = folder / "sums.yaml"
    if process_docs.startswith("include"):
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared" / "base.yaml").write_text("process_docs: !function utils.process_docs\n")
        (tmp_path / "shared" / "utils.py").write_text(WRITES_A_FILE.format(marker=str(marker)))
        sums.write_text(sums.read_text() + process_docs)
    else:
        sums.write_text(process_docs + sums.read_text() + "process_docs: !py!tion utils.process_docs\n")
    with pytest.raises(KnowledgeError, match="has task YAML that runs Python"):
        LmEvalBenchmark(LmEvalConfig(task="test_code_sums", include_path=str(folder)))
    assert not marker.exists()


def test_task_templates_render_in_a_sandbox_unless_trusted(tmp_path):
    folder = _task_folder(tmp_path / "tasks", tmp_path / "ran.txt", process_docs="",
                          text="{{ lipsum.__globals__[\"os\"].getcwd() }}")
    with pytest.raises(KnowledgeError, match="Jinja's sandbox stopped a task template .*__globals__.*trust_task_code"):
        LmEvalBenchmark(LmEvalConfig(task="test_code_sums", include_path=str(folder))).data_fingerprint()
    trusted = LmEvalBenchmark(LmEvalConfig(task="test_code_sums", include_path=str(folder), trust_task_code=True))
    assert trusted.task.doc_to_text(next(iter(trusted.task.eval_docs))) == os.getcwd()
