"""gradkit_grader.bands: linear credit between two bounds, as pass/fail steps, statistic computed once."""
import math

import pytest

from gradkit_grader.bands import assert_band_step, band_credit, band_threshold, clear_memo, memo


@pytest.mark.parametrize("zero,full", [(0.6, 0.7), (0.693, 0.5)])
def test_credit_is_linear_and_clipped(zero, full):
    assert band_credit(zero, zero=zero, full=full) == 0.0
    assert band_credit(full, zero=zero, full=full) == 1.0
    assert band_credit(zero + 0.25 * (full - zero), zero=zero, full=full) == pytest.approx(0.25)
    assert band_credit(zero - (full - zero), zero=zero, full=full) == 0.0  # beyond the zero bound
    assert band_credit(full + (full - zero), zero=zero, full=full) == 1.0  # beyond the full bound
    assert band_credit(math.nan, zero=zero, full=full) == 0.0
    assert band_credit("x", zero=zero, full=full) == 0.0


def test_steps_pass_up_to_the_floor_of_the_credit():
    """A 4-step band at credit 0.6 passes steps 1 and 2 and fails 3 and 4; thresholds are exact."""
    passed = []
    for k in range(1, 5):
        try:
            assert_band_step(0.66, k, 4, zero=0.6, full=0.7, what="accuracy")
            passed.append(k)
        except AssertionError as exc:
            assert "accuracy = 0.66" in str(exc) and "needs at least" in str(exc) and "earns 2/4" in str(exc)
    assert passed == [1, 2]
    for k in range(1, 5):  # a value exactly on a threshold earns that step
        assert_band_step(band_threshold(k, 4, zero=0.6, full=0.7), k, 4, zero=0.6, full=0.7, what="a")
    with pytest.raises(ValueError):
        band_threshold(0, 4, zero=0.6, full=0.7)
    with pytest.raises(ValueError):
        band_credit(1.0, zero=0.5, full=0.5)


def test_memo_computes_once_and_replays_failures():
    clear_memo()
    calls = []
    assert memo(("t", 1), lambda: calls.append(1) or 0.8) == 0.8
    assert memo(("t", 1), lambda: calls.append(1) or 0.1) == 0.8
    assert calls == [1]

    def boom():
        calls.append(2)
        raise ValueError("student bug")

    with pytest.raises(ValueError, match="student bug"):
        memo(("t", 2), boom)
    with pytest.raises(AssertionError, match="ValueError: student bug"):
        memo(("t", 2), boom)
    assert calls == [1, 2]
    clear_memo()
    assert memo(("t", 1), lambda: 0.3) == 0.3
