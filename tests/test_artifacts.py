"""Compressed checkpoints on disk, gated against the model they were made from.

Artifacts are made here, offline, from a tiny random Llama with a byte-level vocabulary (its
GGUF files load in well under a second): GGUF files at every type the gguf package writes, a
compressed-tensors checkpoint, a pruned ``save_pretrained`` folder, and exported cases.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pytest_knowledge.core.errors import KnowledgeError
from pytest_knowledge.engine import formats
from pytest_knowledge.engine.cache import case_key
from pytest_knowledge.engine.loading import load
from pytest_knowledge.engine.workbench import Workbench
from pytest_knowledge.methods import METHODS, CompressionContext
from pytest_knowledge.suite.parse import parse_suite
from pytest_knowledge.testing.artifacts import (
    BYTE_VOCABULARY,
    save_compressed_tensors,
    write_llama_gguf,
)

TYPES = ["Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0"]
BENCH = "{name: caps, benchmark: facts, relations: [capital], limit: 40, mode: candidates}"  # a random model gets some right


def _llama() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=BYTE_VOCABULARY, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                         initializer_range=0.5)  # peaked distributions, so KL and agreement move
    return LlamaForCausalLM(config)


@pytest.fixture(scope="session")
def byte_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama saved with save_pretrained, with the tokenizer transformers reads from its GGUF files."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("byte-llama")
    model = _llama()
    write_llama_gguf(model, folder / "f32.gguf", "F32", output_type="F32")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file="f32.gguf")
    (folder / "f32.gguf").unlink()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def gguf_files(byte_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny Llama written as a GGUF file of every writable type (llama.cpp naming and row order)."""
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("gguf")
    model = AutoModelForCausalLM.from_pretrained(byte_llama, dtype=torch.float32)
    return {t: write_llama_gguf(model, folder / f"tiny-{t}.gguf", t) for t in TYPES}


def _gguf_in_memory(source: Path, type_name: str) -> dict[str, torch.Tensor]:
    loaded = load("dense", str(source))
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    method = METHODS.lookup("gguf", "method")
    method.apply(loaded.model, method.config(type=type_name), None, CompressionContext("decoder", 0))
    after = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    loaded.model.load_state_dict(before)
    return after


@pytest.mark.parametrize("type_name", TYPES)
def test_gguf_method_gives_the_weights_of_the_written_file(byte_llama, gguf_files, type_name):
    """Loading a GGUF file of a type (transformers, gguf_file) and the in-memory method agree bit for bit."""
    in_memory = _gguf_in_memory(byte_llama, type_name)
    from_file = load("file", str(gguf_files[type_name])).model.state_dict()
    assert sorted(from_file) == sorted(in_memory)
    differ = [k for k in in_memory if not torch.equal(from_file[k], in_memory[k])]
    assert differ == []
    dense = load("dense", str(byte_llama)).model.state_dict()
    assert not torch.equal(dense["model.layers.0.mlp.up_proj.weight"], in_memory["model.layers.0.mlp.up_proj.weight"])
    assert torch.equal(dense["model.norm.weight"], in_memory["model.norm.weight"])  # norms stay F32


def test_gguf_method_is_undone_bit_identically(byte_llama):
    suite = parse_suite({"models": [{"name": "tiny", "source": str(byte_llama)}],
                         "methods": [{"name": "q4", "method": "gguf", "type": "Q4_0"}],
                         "benchmarks": [{"name": "caps", "benchmark": "facts", "limit": 8}]}, Path("s.yaml"))
    case = suite.cases()[1]
    bench = workbench_benchmark(case)
    bench_ = Workbench()
    dense = {k: v.clone() for k, v in bench_.model(case.model).model.state_dict().items()}
    _, report, _ = bench_.evaluate_compressed(case, bench)
    assert report is not None and "GGUF Q4_0: 14 x Q4_0" in report.details and "Q8_0" in report.details
    after = bench_.model(case.model).model.state_dict()
    assert all(torch.equal(dense[k], after[k]) for k in dense)


def workbench_benchmark(case):
    from pytest_knowledge.benchmarks import BENCHMARKS

    return BENCHMARKS.lookup(case.benchmark.kind, "benchmark").factory(case.benchmark.config)


def test_a_gguf_type_the_gguf_package_cannot_read_names_the_entry_and_what_to_install(tmp_path):
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(tmp_path / "odd.gguf", "llama")
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((4, 40), np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(KnowledgeError) as error:
        load("odd-quant", str(tmp_path / "odd.gguf"))
    message = str(error.value)
    assert message.startswith("model 'odd-quant': ") and "tensor blk.0.attn_q.weight is stored as Q8_1" in message
    assert "pip install -U gguf" in message


def test_compressed_tensors_checkpoint_loads_decompressed_on_cpu(byte_llama, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(byte_llama, dtype=torch.float32)
    save_compressed_tensors(model, AutoTokenizer.from_pretrained(byte_llama), tmp_path / "w4", bits=4, group_size=16)
    assert json.loads((tmp_path / "w4" / "config.json").read_text())["quantization_config"]["quant_method"] == "compressed-tensors"
    loaded = load("w4", str(tmp_path / "w4"))
    weights = loaded.model.state_dict()
    assert "model.layers.0.mlp.up_proj.weight" in weights and not any("packed" in k for k in weights)
    groups = weights["model.layers.0.mlp.up_proj.weight"].reshape(-1, 16)
    dense = load("dense", str(byte_llama)).model.state_dict()
    original = dense["model.layers.0.mlp.up_proj.weight"].reshape(-1, 16)
    assert max(len(g.unique()) for g in groups) <= 16  # 4-bit: at most 16 values per group
    step = original.abs().amax(-1, keepdim=True) / 7.5  # compressed-tensors' symmetric 4-bit scale
    assert ((groups - original).abs() <= step / 2 + 1e-6).all() and not torch.equal(groups, original)
    assert torch.equal(weights["model.norm.weight"], dense["model.norm.weight"])


def test_compressed_tensors_without_its_package_says_what_to_install(byte_llama, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(byte_llama, dtype=torch.float32)
    save_compressed_tensors(model, AutoTokenizer.from_pretrained(byte_llama), tmp_path / "w4")
    real = formats.importlib.util.find_spec
    monkeypatch.setattr(formats.importlib.util, "find_spec",
                        lambda name, *a: None if name == "compressed_tensors" else real(name, *a))
    with pytest.raises(KnowledgeError, match=r"^model 'llmc-w4': .*compressed-tensors package is not installed.*"
                                             r"pip install compressed-tensors"):
        load("llmc-w4", str(tmp_path / "w4"))


def test_a_pruned_model_saved_with_save_pretrained_loads_as_saved(byte_llama, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(byte_llama, dtype=torch.float32)
    method = METHODS.lookup("magnitude", "method")
    method.apply(model, method.config(), 0.5, CompressionContext("decoder", 0))
    model.save_pretrained(tmp_path / "pruned")
    AutoTokenizer.from_pretrained(byte_llama).save_pretrained(tmp_path / "pruned")
    loaded = load("pruned", str(tmp_path / "pruned")).model.state_dict()
    saved = model.state_dict()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert (loaded["model.layers.0.mlp.up_proj.weight"] == 0).float().mean() > 0.3


def test_the_cache_key_of_an_artifact_includes_its_reference(byte_llama):
    suite = parse_suite({"models": ["base", {"name": "art", "source": str(byte_llama), "reference": "base"}],
                         "benchmarks": [{"name": "caps", "benchmark": "facts"}]}, Path("s.yaml"))
    case = suite.cases()[1]
    assert case.parent is not None and case.parent.name == "base"
    keys = {case_key(case, "w", "d", "1"), case_key(case, "w", "d", "1", reference="r1"),
            case_key(case, "w", "d", "1", reference="r2")}
    assert len(keys) == 3


def _suite(project: pytest.Pytester, models: str, methods: str = "[]") -> None:
    project.makefile(".yaml", suite=f"name: art\nmodels: {models}\nmethods: {methods}\nbenchmarks: [{BENCH}]\n")


def _records(project: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, dict]]:
    result = project.runpytest("--knowledge-suite=suite.yaml", "--knowledge-update-baselines", "--knowledge-no-history",
                               "--knowledge-results=results.json", "-p", "no:cacheprovider", *args)
    data = json.loads((project.path / "results.json").read_text())
    return result, {r["case_id"]: r for r in data["records"]}


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory) -> pytest.Pytester:
    pytester.makeini(f"[pytest]\nknowledge_cache = {tmp_path_factory.mktemp('cache')}\n")
    return pytester


def test_a_gguf_artifact_is_judged_against_its_reference(project, byte_llama, gguf_files):
    """The written Q4_0 file, gated as an artifact, scores what the in-memory method scores on the
    reference, and its retention, agreement/KL and lost facts are against the reference's dense result."""
    _suite(project, f"[{{name: tiny, source: '{byte_llama}'}}, "
                    f"{{name: tiny-q4_0, source: '{gguf_files['Q4_0']}', reference: tiny}}]",
           "[{name: q4_0, method: gguf, type: Q4_0}]")
    result, records = _records(project)
    result.assert_outcomes(passed=4)
    dense, method = records["tiny-dense-caps"], records["tiny-q4_0-caps"]
    artifact, on_top = records["tiny-q4_0-dense-caps"], records["tiny-q4_0-q4_0-caps"]
    assert artifact["reference"] == "tiny" and artifact["dense"] == dense["current"] > 0
    assert 0 < artifact["agreement"] < 1 and artifact["kl"] > 0
    assert artifact["entry"]["outcomes"] == method["entry"]["outcomes"]
    assert (artifact["agreement"], artifact["kl"]) == (method["agreement"], method["kl"])
    assert artifact["retention"] == method["retention"] and artifact["compared_with"] == "dense tiny"
    assert artifact["method_report"] == "vs tiny"
    assert on_top["dense"] == dense["current"] and on_top["kl"] is not None and on_top["method_report"].startswith("vs tiny, GGUF")
    assert "dense vs tiny" in result.stdout.str()
    stored = json.loads((project.path / "baselines/art/tiny-q4_0.json").read_text())["entries"]
    assert set(stored) == {"tiny-q4_0-dense-caps", "tiny-q4_0-q4_0-caps"}


def test_bad_references_fail_their_own_cases_and_the_rest_run(project, byte_llama, tiny_llama):
    _suite(project, f"[{{name: tiny, source: '{byte_llama}'}}, "
                    f"{{name: typo, source: '{byte_llama}', reference: tinny}}, "
                    f"{{name: chained, source: '{byte_llama}', reference: typo}}, "
                    f"{{name: itself, source: '{byte_llama}', reference: itself}}, "
                    f"{{name: other-vocab, source: '{tiny_llama}', reference: tiny}}, "
                    f"{{name: fine, source: '{byte_llama}', reference: tiny}}]")
    result, records = _records(project)
    result.assert_outcomes(passed=2, failed=4)
    out = result.stdout.str()
    assert "model 'typo': reference 'tinny' is not a model of suite 'art'" in out
    assert "model 'chained': reference 'typo' has a reference itself ('tinny')" in out
    assert "model 'itself': reference names the entry itself" in out
    assert "model 'other-vocab': its tokenizer differs from that of its reference 'tiny'" in out
    assert records["fine-dense-caps"]["status"] == "new" and records["fine-dense-caps"]["agreement"] == 1.0
    assert records["typo-dense-caps"]["status"] == "error"


def test_an_exported_case_gated_as_an_artifact_gives_the_same_outcomes(project, byte_llama):
    _suite(project, f"[{{name: tiny, source: '{byte_llama}'}}]",
           "[{name: prune, method: magnitude, ratios: [0.5]}, {name: q4_1, method: gguf, type: Q4_1}]")
    result, records = _records(project, "--knowledge-export=out")
    result.assert_outcomes(passed=3)
    folder = project.path / "out" / "art" / "tiny-prune-0.50-caps"
    meta = json.loads((folder / "knowledge-case.json").read_text())
    assert meta["case"] == "tiny-prune-0.50-caps" and meta["steps"][0]["method"] == "magnitude" and meta["ratio"] == 0.5
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert not (project.path / "out" / "art" / "tiny-dense-caps").exists()
    pruned = records["tiny-prune-0.50-caps"]

    _suite(project, f"[{{name: tiny, source: '{byte_llama}'}}, {{name: shipped, source: out/art/tiny-prune-0.50-caps, "
                    "reference: tiny}]")
    result, records = _records(project)
    result.assert_outcomes(passed=2)
    shipped = records["shipped-dense-caps"]
    assert shipped["entry"]["outcomes"] == pruned["entry"]["outcomes"] == meta["result"]["outcomes"]
    assert (shipped["current"], shipped["retention"]) == (pruned["current"], pruned["retention"])
    assert shipped["kl"] == pytest.approx(pruned["kl"], abs=1e-6)


def test_exporting_a_method_that_leaves_tensor_subclasses_is_an_error(project, byte_llama):
    _suite(project, f"[{{name: tiny, source: '{byte_llama}'}}]", "[{name: int8, method: int8_weight}]")
    result, records = _records(project, "--knowledge-export=out")
    result.assert_outcomes(passed=1, failed=1)
    assert "--knowledge-export cannot write method 'int8'" in result.stdout.str()
