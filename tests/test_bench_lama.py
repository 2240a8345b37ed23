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


def test_squad_rows_do_not_share_a_subject_so_every_cloze_has_candidates():
    lama = bench(relations=["Squad", "ConceptNet"], mode="candidates")
    assert [c.candidates for c in lama.clozes] == [("cold",), ("fly",), ("water",), ("Paris",)]
    assert lama.subjects == ["", "", "", ""]  # "Squad" is a placeholder, ConceptNet rows name none
    assert lama.no_candidates == 0


def test_facts_left_without_a_wrong_candidate_are_dropped_and_counted(tmp_path):
    rows = [{"uuid": f"u{i}", "sub_label": s, "obj_label": o, "predicate_id": p} for i, (s, o, p) in enumerate(
        [("France", "Europe", "P30"), ("Spain", "Europe", "P30"), ("France", "Paris", "P36"), ("Peru", "Lima", "P36")])]
    write_rows(tmp_path / "rows.jsonl", rows)
    write_rows(tmp_path / "relations.jsonl", [{"relation": "P30", "template": "[X] is in [Y] ."},
                                              {"relation": "P36", "template": "The capital of [X] is [Y] ."}])
    lama = LamaBenchmark(LamaConfig(path=str(tmp_path / "rows.jsonl"), mode="candidates"))
    assert lama.relations == ["P36", "P36"] and lama.no_candidates == 2  # P30 has one object: nothing competes
    assert LamaBenchmark(LamaConfig(path=str(tmp_path / "rows.jsonl"))).relations == ["P30", "P30", "P36", "P36"]
    with pytest.raises(KnowledgeError, match="no examples left .* 2 had no wrong candidate"):
        LamaBenchmark(LamaConfig(path=str(tmp_path / "rows.jsonl"), relations=("P30",), mode="candidates"))


def test_num_candidates_all_ranks_against_every_other_object_of_the_relation():
    config = build(LamaConfig, {"path": str(LAMA), "relations": ["P36"], "mode": "candidates",
                                "num_candidates": "all"}, "benchmarks[0]")
    objects = {"Paris", "Tokyo", "Nairobi", "Lima", "Cairo", "Berlin"}
    for cloze in LamaBenchmark(config).clozes:
        assert set(cloze.candidates) == objects - {cloze.answer} and list(cloze.candidates) == sorted(cloze.candidates)
    with pytest.raises(SuiteError, match=r"num_candidates: expected an integer or one of 'all', got 'many'"):
        build(LamaConfig, {"path": "x", "num_candidates": "many"}, "benchmarks[0]")
    with pytest.raises(SuiteError, match="multi_token: skip with mode first_token"):
        build(LamaConfig, {"path": "x", "mode": "candidates", "multi_token": "skip"}, "benchmarks[0]")


def test_a_trex_relation_without_a_template_is_an_error_unless_asked_to_use_evidence(tmp_path):
    shutil.copytree(LAMA / "TREx", tmp_path / "TREx")
    shutil.copy(LAMA / "relations.jsonl", tmp_path / "relations.jsonl")
    row = {"uuid": "u1", "sub_label": "Ada Lovelace", "obj_label": "London", "predicate_id": "P19",
           "evidences": [{"masked_sentence": "Ada Lovelace was born in [MASK] ."}]}
    write_rows(tmp_path / "TREx" / "P19.jsonl", [row])
    with pytest.raises(KnowledgeError, match=re.escape(f"{tmp_path / 'TREx' / 'P19.jsonl'}: relation P19 has no template "
                                                       f"in {tmp_path / 'relations.jsonl'} nor on its rows")):
        LamaBenchmark(LamaConfig(path=str(tmp_path)))
    lama = LamaBenchmark(LamaConfig(path=str(tmp_path), missing_template="evidence"))
    born = lama.clozes[lama.relations.index("P19")]
    assert (born.prefix, born.answer) == ("Ada Lovelace was born in ", "London")
    assert lama.clozes[lama.relations.index("P36")].prefix == "The capital of France is "  # templated ones still are
    assert "P19" in LamaBenchmark(LamaConfig(path=str(tmp_path), templates=False)).relations
    write_rows(tmp_path / "x" / "alone" / "TREx" / "P36.jsonl", [{**row, "predicate_id": "P36"}])
    with pytest.raises(KnowledgeError, match=r"relation P36 has no template \(no relations.jsonl found next to the data\)"):
        LamaBenchmark(LamaConfig(path=str(tmp_path / "x" / "alone")))


def test_examples_have_stable_unique_ids():
    lama = bench()
    assert len(set(lama.example_ids)) == len(lama.example_ids) == 17
    ids = dict(zip(lama.example_ids, (c.answer for c in lama.clozes)))
    assert ids["655f4867-0c7a-5349-a2ec-d48993571937"] == "Paris" and ids["squad_2"] == "water"
    hf = LamaBenchmark(LamaConfig(path=str(DATA / "lama_hf" / "rows.jsonl"), templates=False))
    assert len(set(hf.example_ids)) == len(hf.example_ids)


# -- an independent scorer: SmolLM2 on a hand-written LAMA set ----------------------------

HAND_TEMPLATES = [{"relation": "P131", "template": "[X] is a city in the region of [Y] ."},
                  {"relation": "P1412", "template": "[X] used to communicate in [Y] ."}]
HAND_FACTS = {  # several objects per subject (N-M), multi-token objects, one template not ending in [Y]
    "P131": [("Pisa", "Tuscany"), ("Florence", "Tuscany"), ("Lyon", "Auvergne-Rhône-Alpes"), ("Munich", "Bavaria"),
             ("Glasgow", "Scotland")],
    "P1412": [("Galileo Galilei", "Italian"), ("Galileo Galilei", "Latin"), ("Victor Hugo", "French"),
              ("Miguel de Cervantes", "Spanish"), ("Cicero", "Latin")],
}


def hand_written_lama(folder: Path) -> Path:
    write_rows(folder / "relations.jsonl", HAND_TEMPLATES)
    for relation, facts in HAND_FACTS.items():
        write_rows(folder / "TREx" / f"{relation}.jsonl", [
            {"uuid": f"{relation}-{i}", "sub_label": s, "obj_label": o, "predicate_id": relation}
            for i, (s, o) in enumerate(facts)])
    write_rows(folder / "Squad" / "test.jsonl", [  # the placeholder subject LAMA's Squad rows carry
        {"id": f"q{i}", "sub_label": "Squad", "obj_label": o, "masked_sentences": [s]} for i, (s, o) in enumerate(
            [("The Leaning Tower stands in [MASK] .", "Pisa"), ("Dante wrote in [MASK] .", "Italian"),
             ("Oktoberfest is held in [MASK] .", "Munich")])])
    return folder


def independent_ranks(model, tok, mode: str, bos: bool) -> dict[str, int]:
    """Each hand-written fact ranked by plain code, every sentence in one right-padded batch:
    first token against the whole vocabulary, or full sentence log-likelihood against every
    other object of the relation that is not also true of the subject."""
    import torch

    templates = {t["relation"]: t["template"] for t in HAND_TEMPLATES}
    squad = [("The Leaning Tower stands in [MASK] .", "Pisa"), ("Dante wrote in [MASK] .", "Italian"),
             ("Oktoberfest is held in [MASK] .", "Munich")]
    items = [(f"{r}-{i}", templates[r].replace("[X]", s).replace("[Y]", "[MASK]"), o, {o2 for s2, o2 in facts if s2 == s},
              sorted({o2 for _, o2 in facts})) for r, facts in HAND_FACTS.items() for i, (s, o) in enumerate(facts)]
    items += [(f"q{i}", s, o, {o}, sorted({o2 for _, o2 in squad})) for i, (s, o) in enumerate(squad)]
    start = [tok.bos_token_id] if bos else []

    def tokens(text: str) -> list[int]:
        return start + tok(text, add_special_tokens=False)["input_ids"]

    rows, plan = [], []  # plan: (id, context length, gold first token, [row index of gold, then wrong options])
    for uid, sentence, gold, true, objects in items:
        before, after = sentence.split("[MASK]")
        context = tokens(before.rstrip())
        if mode == "first_token":
            plan.append((uid, len(context), tokens(before.rstrip() + " " + gold)[len(context)], [len(rows)]))
            rows.append(context)
            continue
        options = [tokens(before.rstrip() + " " + o + after) for o in [gold] + [o for o in objects if o not in true]]
        assert all(row[: len(context)] == context for row in options)
        plan.append((uid, len(context), None, list(range(len(rows), len(rows) + len(options)))))
        rows += options
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    with torch.no_grad():  # right padding: a causal model's logits at real tokens ignore it
        lp = model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
    ranks = {}
    for uid, context, first, indices in plan:
        if first is not None:
            scores = lp[indices[0], context - 1]
            ranks[uid] = 1 + int((scores > scores[first]).sum())
            continue
        scores = [sum(float(lp[n, i - 1, rows[n][i]]) for i in range(context, len(rows[n]))) for n in indices]
        ranks[uid] = 1 + sum(s >= scores[0] for s in scores[1:])
    return ranks


@pytest.mark.parametrize(("mode", "bos"), [("candidates", "auto"), ("first_token", "always")])
def test_lama_ranks_match_an_independent_scorer_on_smollm2(smollm2, tmp_path, mode, bos):
    import math

    folder = hand_written_lama(tmp_path)
    config = build(LamaConfig, {"path": str(folder), "mode": mode, "num_candidates": "all", "bos": bos}, "b")
    result = LamaBenchmark(config).evaluate(smollm2)
    expected = independent_ranks(smollm2.model, smollm2.tokenizer, mode, bos=bos == "always")
    assert dict(zip(result.example_ids, result.ranks)) == expected
    by_relation: dict[str, list[int]] = {}
    for uid, rank in expected.items():
        by_relation.setdefault("Squad" if uid.startswith("q") else uid.split("-")[0], []).append(rank)
    macro = {name: sum(metric(r) for r in by_relation.values()) / len(by_relation) for name, metric in [
        ("p_at_1", lambda r: sum(x == 1 for x in r) / len(r)), ("mrr", lambda r: sum(1 / x for x in r) / len(r))]}
    assert result.value == pytest.approx(macro["p_at_1"]) and result.extra["mrr"] == pytest.approx(macro["mrr"])
    assert not math.isclose(result.value, 1.0)  # Squad no longer scores every cloze a hit
    if mode == "candidates":
        assert result.extra["candidates.Squad"] == 2 and result.extra["candidates_min.P1412"] == 2  # Galileo: not Latin


def test_first_token_mode_counts_multi_token_objects_and_can_skip_them(smollm2, tmp_path):
    folder = hand_written_lama(tmp_path)
    judged = LamaBenchmark(LamaConfig(path=str(folder))).evaluate(smollm2)
    pieces = {uid: len(smollm2.tokenizer(" " + c.answer, add_special_tokens=False)["input_ids"])
              for uid, c in zip(LamaBenchmark(LamaConfig(path=str(folder))).example_ids,
                                LamaBenchmark(LamaConfig(path=str(folder))).clozes)}
    several = {uid for uid, n in pieces.items() if n > 1}
    for relation, prefix in [("P131", "P131-"), ("P1412", "P1412-"), ("Squad", "q")]:
        count = sum(uid.startswith(prefix) for uid in several)
        assert judged.extra.get(f"multi_token.{relation}", 0) == count
    assert several and len(several) < len(pieces)
    skipped = LamaBenchmark(LamaConfig(path=str(folder), multi_token="skip")).evaluate(smollm2)
    assert set(skipped.example_ids) == set(pieces) - several and skipped.extra["skipped.multi_token"] == len(several)
    ranks = dict(zip(judged.example_ids, judged.ranks))
    assert dict(zip(skipped.example_ids, skipped.ranks)) == {uid: ranks[uid] for uid in skipped.example_ids}
