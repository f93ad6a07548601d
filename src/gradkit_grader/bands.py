"""Partial credit by band for accuracy- and rate-type hidden tests.

A banded test has two bounds from its assignment's tolerances: ``full`` (full credit at or
beyond it) and ``zero`` (no credit at or beyond it, on the other side); in
between, credit grows linearly. ``full`` may be above ``zero`` (accuracy:
larger is better) or below it (loss, collapse rate of leaky ReLU: smaller is
better).

Otter scores each test case pass/fail, so a banded test is written as
``steps`` hidden cases of equal points; case ``k`` (1-based) passes when the
credit is at least ``k / steps``. The question's score is then the linear
credit rounded down to a multiple of ``1 / steps``, the same under
``otter run``, ``otter grade`` and Gradescope. The statistic is computed once
per submission and shared by the cases through :func:`memo`; a failure while
computing it (the student's exception, a timeout) fails every case with the
same message instead of running again.

>>> from gradkit_grader.bands import band_credit
>>> round(band_credit(0.65, zero=0.60, full=0.70), 9)
0.5
>>> band_credit(0.2, zero=0.693, full=0.5)   # smaller is better
1.0
"""
from __future__ import annotations

import math
from typing import Any, Callable, Hashable

__all__ = ["band_credit", "band_threshold", "assert_band_step", "memo", "clear_memo"]

_MEMO: dict[Hashable, tuple[bool, Any]] = {}


def band_credit(value: float, *, zero: float, full: float) -> float:
    """Credit in ``[0, 1]``: 0 at or beyond ``zero``, 1 at or beyond ``full``, linear in between.

    NaN or a non-number gives 0.
    """
    if zero == full:
        raise ValueError(f"band bounds must differ (zero = full = {zero})")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return 0.0
    if math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, (value - zero) / (full - zero)))


def band_threshold(step: int, steps: int, *, zero: float, full: float) -> float:
    """The statistic case ``step`` of ``steps`` needs: ``zero + step / steps * (full - zero)``."""
    if not 1 <= step <= steps:
        raise ValueError(f"step must be in 1..{steps}, got {step}")
    return zero + step / steps * (full - zero)


def assert_band_step(value: float, step: int, steps: int, *, zero: float, full: float,
                     what: str, note: str = "") -> None:
    """Fail (AssertionError) unless ``value`` earns case ``step`` of ``steps``.

    ``what`` names the statistic in the message (e.g. "mean test accuracy of your Glorot nets");
    ``note`` is appended (e.g. :func:`gradkit_grader.seeding.seed_note`).
    """
    credit = band_credit(value, zero=zero, full=full)
    # a tiny slack so that a value exactly on a step's threshold earns it despite float rounding
    if credit + 1e-12 >= step / steps:
        return
    direction = "at least" if full > zero else "at most"
    need = band_threshold(step, steps, zero=zero, full=full)
    raise AssertionError(
        f"{what} = {value:.4g}: part {step}/{steps} of this test's credit needs {direction} {need:.4g} "
        f"(full credit at {full:g}, none at {zero:g}, linear in between; this value earns "
        f"{math.floor(credit * steps + 1e-12)}/{steps}). {note}".rstrip())


def memo(key: Hashable, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per ``key`` in this process; later calls return the stored value, or
    raise the stored failure again (as an AssertionError with the same message).

    The key must identify everything the value depends on (test name, seed, tolerances used).
    """
    if key not in _MEMO:
        try:
            _MEMO[key] = (True, compute())
        except Exception as exc:  # noqa: BLE001 - stored and re-raised for every case of the band
            _MEMO[key] = (False, f"{type(exc).__name__}: {exc}" if not isinstance(exc, AssertionError) else str(exc))
            raise
    ok, value = _MEMO[key]
    if not ok:
        raise AssertionError(value)
    return value


def clear_memo() -> None:
    """Forget every stored statistic (tests that re-run hidden tests in one process)."""
    _MEMO.clear()
