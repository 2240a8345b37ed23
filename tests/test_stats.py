"""Significance tests against values computed by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_knowledge.gate.significance import mcnemar, z_test


def test_mcnemar_by_hand():
    # 6 lost, 1 gained, 3 unchanged: P(X >= 6 | X ~ Bin(7, 1/2)) = (7 + 1) / 128
    result = mcnemar("1111111000", "0000001001")
    assert result.p_value == pytest.approx(8 / 128)
    assert (result.low + result.high) / 2 == pytest.approx(-0.5)


def test_identical_outcomes_are_never_significant():
    assert mcnemar("1010", "1010").p_value == 1.0


def test_gains_are_not_a_regression():
    assert mcnemar("0000000000", "1111111111").p_value == 1.0


def test_z_test_by_hand():
    result = z_test(0.80, 0.03, 0.70, 0.04, higher_is_better=True)
    assert result.p_value == pytest.approx(0.5 * math.erfc((0.1 / 0.05) / math.sqrt(2)))
    assert result.low == pytest.approx(-0.1 - 1.959964 * 0.05, abs=1e-5)
    lower_better = z_test(10.0, 0.5, 12.0, 0.5, higher_is_better=False)
    assert lower_better.p_value < 0.01


@given(st.text(alphabet="01", min_size=1, max_size=60), st.data())
def test_more_losses_never_lower_the_p_value_of_a_drop(reference, data):
    current = data.draw(st.text(alphabet="01", min_size=len(reference), max_size=len(reference)))
    ones = [i for i, c in enumerate(current) if c == "1" and reference[i] == "1"]
    if not ones:
        return
    worse = list(current)
    worse[ones[0]] = "0"
    assert mcnemar(reference, "".join(worse)).p_value <= mcnemar(reference, current).p_value + 1e-12
