"""Step detection: the median of recent runs against the median of the runs before them."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pytest_knowledge.stores.history import detect_step
from pytest_knowledge.suite.tolerance import Tolerance

values = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
tolerances = st.builds(Tolerance, abs=st.floats(0.0, 0.1), rel=st.floats(0.0, 0.1))


def test_a_slow_drift_is_a_step_although_each_run_is_within_tolerance() -> None:
    drift = [0.40, 0.39, 0.38, 0.37, 0.36]
    step = detect_step(drift, higher_is_better=True, tolerance=Tolerance(abs=0.02))
    assert step is not None
    assert (step.earlier, step.recent) == (pytest.approx(0.395), pytest.approx(0.37))
    assert (step.earlier_start, step.recent_start) == (0, 2)


def test_examples() -> None:
    tol = Tolerance(abs=0.02)
    assert detect_step([0.4], True, tol) is None
    assert detect_step([0.4, 0.3], True, tol) is not None  # two runs: the newest against the one before
    assert detect_step([0.4, 0.3, 0.4], True, tol) is None  # a dip that recovered
    assert detect_step([0.4, 0.4, 0.4, 0.3, 0.4, 0.4], True, tol) is None  # one outlier in the recent window
    assert detect_step([0.4, 0.4, 0.4, 0.4, 0.3, 0.3], True, tol) is not None  # two of the last three
    assert detect_step([0.4, 0.4, 0.4, 0.3, 0.3, 0.3, 0.3], True, tol) is not None
    assert detect_step([0.4, 0.4, 0.4, 0.3, 0.3, 0.3, 0.3, 0.3], True, tol) is None  # the new level is accepted
    assert detect_step([10.0, 10.0, 10.0, 12.0, 12.0, 12.0], False, Tolerance(rel=0.1)) is not None  # perplexity up
    assert detect_step([10.0, 10.0, 10.0, 10.9, 10.9, 10.9], False, Tolerance(rel=0.1)) is None


def test_the_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window"):
        detect_step([0.4, 0.3], True, Tolerance(), window=0)


@given(st.lists(values, min_size=1, max_size=20), tolerances)
def test_a_series_that_never_gets_worse_has_no_step(series: list[float], tol: Tolerance) -> None:
    assert detect_step(sorted(series), True, tol) is None
    assert detect_step(sorted(series, reverse=True), False, tol) is None


@given(values, st.integers(1, 10), st.integers(2, 3), st.floats(0.0, 0.1), st.floats(1e-6, 0.5))
def test_a_lasting_drop_beyond_tolerance_is_found(level: float, before: int, after: int, allowed: float,
                                                  excess: float) -> None:
    """Found once it holds in two of the last three runs (with four runs or more)."""
    assume(before + after >= 4)
    series = [level] * before + [level - allowed - excess] * after
    step = detect_step(series, True, Tolerance(abs=allowed))
    assert step is not None and step.drop == pytest.approx(allowed + excess)


@given(values, st.integers(3, 10), st.integers(1, 10), st.floats(1e-3, 1.0))
def test_a_single_outlier_is_not_a_step(level: float, before: int, after: int, size: float) -> None:
    series = [level] * before + [level - size] + [level] * after
    assert detect_step(series, True, Tolerance()) is None


@given(st.lists(values, min_size=2, max_size=20), tolerances, st.integers(1, 5))
def test_direction_is_symmetric(series: list[float], tol: Tolerance, window: int) -> None:
    """Negating the values and flipping the direction finds the same steps."""
    up = detect_step(series, True, tol, window)
    down = detect_step([-v for v in series], False, tol, window)
    assert (up is None) == (down is None)
    if up is not None:
        assert down.drop == pytest.approx(up.drop) and down.recent_start == up.recent_start


@given(st.lists(values, min_size=2, max_size=20), st.floats(0.0, 0.05), st.floats(-10, 10), st.integers(1, 5))
def test_an_absolute_tolerance_ignores_the_level(series: list[float], allowed: float, shift: float,
                                                 window: int) -> None:
    tol = Tolerance(abs=allowed)
    found = detect_step(series, True, tol, window)
    shifted = detect_step([v + shift for v in series], True, tol, window)
    if found is not None and shifted is not None:
        assert shifted.drop == pytest.approx(found.drop, abs=1e-9)
    else:  # the drop may sit on the tolerance's edge, where float rounding of the shift decides
        step = found or shifted
        assert step is None or step.drop == pytest.approx(allowed, abs=1e-9)
