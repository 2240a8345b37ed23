"""LAMA loaders (original layout and Hugging Face rows), their error messages, and the lama benchmark."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from pytest_knowledge.benchmarks.lama import LamaBenchmark, LamaConfig
from pytest_knowledge.benchmarks.lama_files import read_lama, read_templates
from pytest_knowledge.core.config import build
from pytest_knowledge.core.errors import KnowledgeError, SuiteError

DATA = Path(__file__).parent / "data"
LAMA = DATA / "lama"


def write_rows(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def bench(**params) -> LamaBenchmark:
    return LamaBenchmark(build(LamaConfig, {"path": str(LAMA), **params}, "benchmarks[0]"))


def test_original_layout_uses_templates_for_trex_and_sentences_elsewhere():
    data = read_lama(LAMA, read_templates(LAMA / "relations.jsonl"), use_templates=True)
    by_relation: dict[str, list] = {}
    for e in data.examples:
        by_relation.setdefault(e.relation, []).append(e)
    assert sorted(by_relation) == ["ConceptNet", "P1376", "P36", "Squad", "place_of_birth"]
    assert [(e.prefix, e.object, e.suffix) for e in by_relation["P36"][:2]] == [
        ("The capital of France is ", "Paris", " ."), ("The capital of Japan is ", "Tokyo", " .")]
    assert by_relation["P1376"][0].prefix == "Paris is the capital of "
    born = by_relation["place_of_birth"]
    assert [(e.prefix, e.object, e.suffix) for e in born] == [
        ("Ada Lovelace was born in ", "London", " ."), ("Albert Einstein was born in ", "Ulm", " in 1879 ."),
        ("", "Warsaw", " was where Marie Curie was born .")]
    assert len(by_relation["ConceptNet"]) == 2 and data.skipped_masks == 1  # "[MASK] [MASK]" is reported, not used


def test_without_templates_trex_uses_its_evidence_sentences():
    data = read_lama(LAMA / "TREx" / "P36.jsonl", {}, use_templates=False)
    assert (data.examples[0].prefix, data.examples[0].suffix) == ("France has its capital in ", " .")


def test_hugging_face_rows_name_relations_like_the_original_layout():
    data = read_lama(DATA / "lama_hf" / "rows.jsonl", {}, use_templates=True)
    assert [(e.relation, e.prefix, e.object) for e in data.examples] == [
        ("P36", "The capital of France is ", "Paris"),
        ("P36", "The capital of Japan is ", "Tokyo"),
        ("P36", "The capital of Kenya is ", "Nairobi"),
        ("place_of_birth", "Ada Lovelace was born in ", "London"),
        ("ConceptNet", "A bird can ", "fly"),
        ("Squad", "The Eiffel Tower is in ", "Paris"),
    ]


def test_templates_deduplicate_facts(tmp_path):
    row = {"sub_label": "France", "obj_label": "Paris", "predicate_id": "P36", "masked_sentence": "[MASK] is nice .",
           "template": "The capital of [X] is [Y] ."}
    path = write_rows(tmp_path / "rows.jsonl", [row, {**row, "masked_sentence": "Its capital is [MASK] ."}])
    assert len(read_lama(path, {}, use_templates=True).examples) == 1
    assert len(read_lama(path, {}, use_templates=False).examples) == 2


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"obj_label": "Paris", "sub_label": "France", "predicate_id": "P36"}', "{not json"],
         r"P36.jsonl:2: expected one JSON object per line"),
        (['{"sub_label": "France", "predicate_id": "P36"}'], r"P36.jsonl:1: field 'obj_label' is missing \(expected a non-empty string\)"),
        (['{"obj_label": 7, "sub_label": "France", "predicate_id": "P36"}'], r"P36.jsonl:1: field 'obj_label': expected a non-empty string, got 7"),
        (['["a list"]'], r"P36.jsonl:1: expected a JSON object, got list"),
        ([""], r"P36.jsonl: no rows"),
    ],
)
def test_bad_trex_rows_name_file_line_and_field(tmp_path, lines, message):
    write_rows(tmp_path / "TREx" / "P36.jsonl", lines)
    shutil.copy(LAMA / "relations.jsonl", tmp_path / "relations.jsonl")
    with pytest.raises(KnowledgeError, match=message):
        LamaBenchmark(LamaConfig(path=str(tmp_path)))


def test_bad_masked_sentences_and_templates_are_explained(tmp_path):
    write_rows(tmp_path / "Squad" / "test.jsonl", [{"obj_label": "Paris", "masked_sentences": "The [MASK] ."}])
    with pytest.raises(KnowledgeError, match=r"test.jsonl:1: field 'masked_sentences': expected a non-empty list of strings"):
        LamaBenchmark(LamaConfig(path=str(tmp_path)))
    write_rows(tmp_path / "relations.jsonl", [{"relation": "P36", "template": "The capital of [X] ."}])
    with pytest.raises(KnowledgeError, match=r"relations.jsonl:1: field 'template': expected a string with one \[X\] and one \[Y\]"):
        LamaBenchmark(LamaConfig(path=str(tmp_path)))


def test_a_folder_without_lama_files_says_what_it_expected(tmp_path):
    with pytest.raises(KnowledgeError, match=r"no LAMA files \(expected TREx/P\*.jsonl"):
        LamaBenchmark(LamaConfig(path=str(tmp_path)))


def test_structural_problems_are_found_when_the_suite_loads(tmp_path):
    with pytest.raises(SuiteError, match=r"benchmarks\[0\]: expected path: a non-empty path"):
        build(LamaConfig, {"path": ""}, "benchmarks[0]")
    with pytest.raises(SuiteError, match=r"expected vocab: environment variables written as \$\{NAME\} or \$NAME"):
        build(LamaConfig, {"path": "x", "vocab": "${LAMA_DIR/vocab.txt"}, "benchmarks[0]")
    with pytest.raises(SuiteError, match="limit >= 1"):
        build(LamaConfig, {"path": "x", "limit": 0}, "benchmarks[0]")


def test_missing_data_is_reported_when_the_benchmark_is_built_not_when_the_suite_loads(tmp_path, monkeypatch):
    monkeypatch.delenv("LAMA_DIR", raising=False)
    config = build(LamaConfig, {"path": "${LAMA_DIR}/TREx"}, "benchmarks[0]")  # loads without the data
    assert config.path == "${LAMA_DIR}/TREx"  # kept as written: the same cache key on every machine
    with pytest.raises(KnowledgeError) as unset:
        LamaBenchmark(config)
    message = str(unset.value)
    assert "parameter 'path'" in message and "'${LAMA_DIR}/TREx'" in message
    assert "environment variable LAMA_DIR is not set" in message
    assert "https://dl.fbaipublicfiles.com/LAMA/data.zip" in message

    monkeypatch.setenv("LAMA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(KnowledgeError, match=re.escape(f"resolved to '{tmp_path}/nowhere/TREx', which does not exist")):
        LamaBenchmark(config)

    missing_vocab = build(LamaConfig, {"path": str(LAMA), "vocab": "vocab.txt"}, "benchmarks[0]")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KnowledgeError, match=re.escape("parameter 'vocab': expected an existing file, got 'vocab.txt', which "
                                                       f"does not exist; relative paths are read from the working directory {tmp_path}")):
        LamaBenchmark(missing_vocab)


def test_environment_variables_and_relative_paths_find_the_data(tmp_path, monkeypatch):
    shutil.copytree(LAMA, tmp_path / "data")
    monkeypatch.setenv("LAMA_DIR", str(tmp_path / "data"))
    by_variable = LamaBenchmark(build(LamaConfig, {"path": "$LAMA_DIR/TREx", "vocab": "${LAMA_DIR}/common_vocab.txt"},
                                      "benchmarks[0]"))
    monkeypatch.chdir(tmp_path)
    relative = LamaBenchmark(build(LamaConfig, {"path": "data/TREx", "vocab": "data/common_vocab.txt"}, "benchmarks[0]"))
    direct = bench(path=str(LAMA / "TREx"), vocab=str(LAMA / "common_vocab.txt"))
    assert by_variable.clozes == relative.clozes == direct.clozes
    assert {"P36", "P1376"} <= set(direct.relations)  # templates found one folder up, as LAMA lays them out
    assert by_variable.data_fingerprint() == direct.data_fingerprint()


def test_unknown_relations_are_named(tmp_path):
    with pytest.raises(KnowledgeError, match=r"relations \['P19'\] are not in .* \(found: ConceptNet, P1376, P36"):
        bench(relations=["P19"])


def test_vocabulary_filter_reports_what_it_dropped():
    full, filtered = bench(), bench(vocab=str(LAMA / "common_vocab.txt"))
    assert len(full.clozes) == 17 and filtered.filtered == 4  # Berlin, Peru, Ulm, Warsaw are not in the vocabulary
    assert len(filtered.clozes) == 13
    assert full.data_fingerprint() != filtered.data_fingerprint()


def test_limit_samples_each_relation_deterministically():
    picked = bench(relations=["P36", "P1376"], limit=2, seed=3)
    assert picked.relations == ["P1376", "P1376", "P36", "P36"]
    again = bench(relations=["P36", "P1376"], limit=2, seed=3)
    assert picked.clozes == again.clozes and picked.data_fingerprint() == again.data_fingerprint()


def test_candidates_never_include_another_true_object_of_the_subject(tmp_path):
    rows = [{"sub_label": s, "obj_label": o, "predicate_id": "P47"} for s, o in
            [("France", "Spain"), ("France", "Italy"), ("Peru", "Chile"), ("Peru", "Brazil")]]
    write_rows(tmp_path / "TREx" / "P47.jsonl", rows)
    write_rows(tmp_path / "relations.jsonl", [{"relation": "P47", "template": "[X] shares a border with [Y] ."}])
    lama = LamaBenchmark(LamaConfig(path=str(tmp_path), mode="candidates", num_candidates=4))
    for cloze in lama.clozes:
        subject_objects = {"France": {"Spain", "Italy"}, "Peru": {"Chile", "Brazil"}}[cloze.prefix.split()[0]]
        assert cloze.answer not in cloze.candidates and not subject_objects & set(cloze.candidates)
        assert len(cloze.candidates) == 2


def test_lama_on_smollm2_reports_macro_and_micro(smollm2):
    result = bench(relations=["P36", "Squad"]).evaluate(smollm2)
    per_relation = [result.extra["p_at_1.P36"], result.extra["p_at_1.Squad"]]
    assert result.value == pytest.approx(sum(per_relation) / 2)
    assert result.extra["p_at_1.micro"] == pytest.approx(result.outcomes.count("1") / 8)
    assert result.n == 8 and result.extra["n.P36"] == 6 and result.extra["p_at_1.P36"] >= 0.5


def test_data_paths_name_every_unset_variable_and_the_wrong_kind_of_entry(tmp_path):
    from pytest_knowledge.benchmarks.paths import data_path, expand

    env = {"HOME": str(tmp_path), "ROOT": str(tmp_path)}
    assert expand("~/a/${ROOT}/$ROOT", env)[0] == Path(f"~/a/{tmp_path}/{tmp_path}").expanduser()
    with pytest.raises(KnowledgeError, match=r"environment variables A, B are not set\)\. Get it from there$"):
        data_path("${A}/x/$B", benchmark="lama", parameter="path", how_to_get="Get it from there", environ=env)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(KnowledgeError, match=r"expected an existing folder, got '\$ROOT/file.txt', resolved to .*file.txt', "
                                             r"which is not a folder"):
        data_path("$ROOT/file.txt", benchmark="lm_eval", parameter="include_path", kind="dir", environ=env)
    with pytest.raises(KnowledgeError, match=r"expected an existing file, got .*, which is a folder"):
        data_path(str(tmp_path), benchmark="lama", parameter="vocab", kind="file", environ=env)
    assert data_path("${ROOT}/file.txt", benchmark="lama", parameter="vocab", kind="file", environ=env) == tmp_path / "file.txt"
