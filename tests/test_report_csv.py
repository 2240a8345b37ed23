"""The lost/gained facts export: a spreadsheet opens the CSV without running anything in it."""

from __future__ import annotations

import csv
import json

import pytest

from pytest_knowledge.gate.record import Record
from pytest_knowledge.reports.table import export_facts

FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


def _record(lost: list[dict[str, str]]) -> Record:
    return Record(suite="s", case_id="m-prune-0.50-caps", model="m", method="prune", ratio=0.5, benchmark="caps",
                  metric="p_at_1", higher_is_better=True, n=len(lost), dense=1.0, baseline=1.0, current=0.0,
                  delta=-1.0, retention=0.0, status="regressed", message="", method_report="", seconds=0.0,
                  entry=None, lost=lost, compared_with="baseline")


@pytest.mark.parametrize("text", FORMULAS)
def test_csv_cells_that_start_like_a_formula_are_quoted(text, tmp_path):
    fact = {"relation": text, "subject": text, "expected": text, "answer": text}
    export_facts(tmp_path / "facts.csv", [_record([fact])])
    with (tmp_path / "facts.csv").open(newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert [row[k] for k in fact] == ["'" + text] * 4
    assert row["case"] == "m-prune-0.50-caps" and row["change"] == "lost"


def test_csv_keeps_plain_cells_and_json_keeps_every_value_as_it_is(tmp_path):
    facts = [{"relation": "capital", "subject": "France", "expected": " Paris", "answer": text} for text in FORMULAS]
    export_facts(tmp_path / "facts.csv", [_record(facts)])
    export_facts(tmp_path / "facts.json", [_record(facts)])
    with (tmp_path / "facts.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["subject"], r["expected"]) for r in rows} == {("France", " Paris")}
    assert [r["answer"] for r in json.loads((tmp_path / "facts.json").read_text())] == FORMULAS
