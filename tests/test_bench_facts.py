"""The built-in facts probe: its seven relations, corrections and accepted answers, deterministic sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_knowledge.benchmarks.facts import (
    CORRECTIONS,
    RELATIONS,
    FactsBenchmark,
    FactsConfig,
    relation_facts,
)
from pytest_knowledge.benchmarks.scoring import rank_metrics
from pytest_knowledge.core.config import build
from pytest_knowledge.core.errors import SuiteError

BASELINE = Path(__file__).parents[1] / "baselines" / "default" / "smollm2-135m.json"
DEFAULT_FINGERPRINT = "912e39a8888255b2"  # the default probe with the correction table applied
CORRECTED = {c.subject for c in CORRECTIONS if c.relation == "capital"}


def facts_of(name: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {f.subject: (f.object, f.also_true) for f in relation_facts(name, FactsConfig())}


def test_default_capital_probe_changes_only_where_corrected():
    bench = FactsBenchmark(FactsConfig())
    assert bench.data_fingerprint() == DEFAULT_FINGERPRINT
    assert len(bench.clozes) == 140
    first = bench.clozes[0]
    assert (first.prefix, first.answer, first.suffix) == ("The capital of Spain is ", "Madrid", ".")
    changed = {s for s, c in zip(bench.subjects, bench.clozes) if c.accepted or s in CORRECTED}
    assert changed == CORRECTED


def test_dated_facts_are_corrected_and_every_correction_names_its_source():
    capitals = facts_of("capital")
    assert capitals["Kazakhstan"] == ("Astana", ())  # countryinfo still says Nur-Sultan
    assert capitals["Burundi"] == ("Gitega", ("Bujumbura",))
    assert capitals["Bolivia"] == ("Sucre", ("La Paz",))
    assert capitals["South Africa"] == ("Pretoria", ("Cape Town", "Bloemfontein"))
    capital_of = facts_of("capital_of")
    assert capital_of["Astana"] == ("Kazakhstan", ()) and "Nur-Sultan" not in capital_of
    assert capital_of["Gitega"][0] == capital_of["Bujumbura"][0] == "Burundi"
    assert facts_of("currency")["Bulgaria"] == ("euro", ())
    countries = {f.subject for f in relation_facts("capital", FactsConfig(min_population=0))}
    for correction in CORRECTIONS:
        assert correction.subject in countries and correction.answers and correction.why
        assert correction.source.startswith("https://")


def test_every_true_object_is_an_accepted_answer_never_a_candidate():
    bench = FactsBenchmark(FactsConfig(relations=("capital", "shares_border"), mode="candidates"))
    clozes = dict(zip(bench.example_ids, bench.clozes))
    assert clozes["capital/Burundi"].answers == ("Gitega", "Bujumbura")
    assert set(clozes["shares_border/France"].accepted) == set(facts_of("shares_border")["France"][1])
    for cloze in bench.clozes:
        assert not set(cloze.answers) & set(cloze.candidates)


@pytest.mark.parametrize(
    ("relation", "subject", "gold", "also_true"),
    [
        ("capital", "France", "Paris", None),
        ("continent", "Brazil", "South America", None),
        ("currency", "Japan", "yen", None),
        ("official_language", "France", "French", None),
        ("shares_border", "France", "Germany", "Spain"),  # the most populous neighbour is the gold object
        ("capital_of", "Paris", "France", None),
    ],
)
def test_relations_hold_real_facts(relation, subject, gold, also_true):
    obj, others = facts_of(relation)[subject]
    assert obj == gold
    assert also_true is None or also_true in others


def test_city_country_drops_ambiguous_city_names():
    cities = facts_of("city_country")
    assert cities["Tokyo"] == ("Japan", ())
    assert all(not others for _, others in cities.values())
    assert len(cities) > 300


@pytest.mark.parametrize("relation", sorted(RELATIONS))
def test_every_relation_has_a_lama_template_and_enough_facts(relation):
    template = RELATIONS[relation].template
    assert template.count("[X]") == 1 and template.count("[Y]") == 1
    facts = relation_facts(relation, FactsConfig())
    assert len(facts) >= 90
    assert [f.subject for f in facts] == sorted({f.subject for f in facts})


def test_sampling_is_seeded_per_relation():
    config = FactsConfig(relations=("currency", "shares_border"), limit=15, seed=4)
    one, two = FactsBenchmark(config), FactsBenchmark(config)
    assert one.clozes == two.clozes and one.relations == ["currency"] * 15 + ["shares_border"] * 15
    assert FactsBenchmark(FactsConfig(relations=("currency",), limit=15, seed=4)).clozes == one.clozes[:15]
    assert FactsBenchmark(FactsConfig(relations=("currency", "shares_border"), limit=15, seed=5)).clozes != one.clozes


def test_candidates_never_contain_another_true_object():
    borders = facts_of("shares_border")
    bench = FactsBenchmark(FactsConfig(relations=("shares_border",), num_candidates=30))
    for cloze in bench.clozes:
        subject = cloze.prefix.removesuffix(" shares a border with ")
        assert cloze.answer == borders[subject][0]
        assert not set(borders[subject][1]) & set(cloze.candidates)


def test_relations_are_validated_in_the_suite():
    assert build(FactsConfig, {"relations": ["capital", "currency"]}, "b").relations == ("capital", "currency")
    with pytest.raises(SuiteError, match="distinct relations from capital, capital_of, city_country"):
        build(FactsConfig, {"relations": ["capitals"]}, "b")
    with pytest.raises(SuiteError, match="distinct relations"):
        build(FactsConfig, {"relations": ["capital", "capital"]}, "b")


def test_default_outcomes_match_the_recorded_baseline_where_no_fact_was_corrected(smollm2):
    stored = json.loads(BASELINE.read_text())["entries"]["smollm2-135m-dense-facts_capital"]
    bench = FactsBenchmark(FactsConfig())
    keep = [i for i in range(24) if bench.subjects[i] not in CORRECTED]
    full = {name: getattr(bench, name) for name in ("clozes", "relations", "subjects", "example_ids")}
    for name, values in full.items():
        setattr(bench, name, [values[i] for i in keep])
    assert bench.evaluate(smollm2).outcomes == "".join(stored["outcomes"][i] for i in keep)


def test_several_relations_report_macro_p_at_1_and_each_relation(smollm2):
    result = FactsBenchmark(FactsConfig(relations=("capital", "official_language"), limit=4)).evaluate(smollm2)
    assert result.n == 8 and len(result.outcomes) == 8
    capital, language = result.outcomes[:4].count("1") / 4, result.outcomes[4:].count("1") / 4
    assert (result.extra["p_at_1.capital"], result.extra["p_at_1.official_language"]) == (capital, language)
    assert result.value == pytest.approx((capital + language) / 2)
    assert result.extra["n.capital"] == 4 and "p_at_10.micro" in result.extra


def test_ranks_and_ids_recompute_every_metric_without_the_project(smollm2):
    bench = FactsBenchmark(FactsConfig(relations=("capital", "currency"), limit=6, k=5))
    result = bench.evaluate(smollm2)
    assert result.example_ids == tuple(f"{r}/{s}" for r, s in zip(bench.relations, bench.subjects))
    assert result.outcomes == "".join("1" if r == 1 else "0" for r in result.ranks)
    by_relation = {name: [r for i, r in zip(result.example_ids, result.ranks) if i.startswith(name + "/")]
                   for name in ("capital", "currency")}
    per_relation = [rank_metrics(r, 5) for r in by_relation.values()]
    for key in ("p_at_1", "p_at_5", "mrr"):
        value = result.value if key == "p_at_1" else result.extra[key]
        assert value == pytest.approx(sum(m[key] for m in per_relation) / 2)
