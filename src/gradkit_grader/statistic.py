"""The record of a stochastic hidden test: :class:`Check`.

A hidden test whose value depends on random draws or training (an accuracy after training, a
collapse rate, a gradient ratio) computes its statistic with a function of its assignment's
``course/<name>/statistics.py`` and compares it with bounds from its assignment's tolerances.
The same function, given gradkit's reference components instead of the student's, is what the
seed sweep (``gradkit sweep``) and the
calibration of the bounds run many times; so the number a student is graded on and the
number the bound was calibrated on come from one piece of code.

Each assignment's statistics module exports ``CHECKS``: a tuple of :class:`Check`. A check whose
statistic trains models may also give ``batched``, the statistic of many seeds in one go (their runs
trained side by side); the single-seed statistic is then its one-seed case, so a grade and a
calibration still come from one piece of code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

__all__ = ["Check", "direction"]


@dataclass(frozen=True)
class Check:
    """One stochastic hidden test.

    Attributes
    ----------
    name : str
        Short label for tables, e.g. ``"q4 Glorot circles accuracy"``.
    test : str
        The hidden test's function name in the master (a banded test: the common prefix of
        its cases ``<test>_band_<k>``).
    statistic : callable
        ``statistic(components, tol, seed) -> float``: ``components`` maps the student names
        the test uses (e.g. ``"glorot_uniform"``) to objects; ``tol`` is the assignment's
        tolerances (``course/<name>/tolerances.yml``); ``seed`` the test's seed. Student calls inside are guarded
        (:func:`gradkit.guard.student_call`).
    full : str
        Key in ``tol`` of the bound that earns full credit (a pass/fail test: its bound).
    zero : str or None
        Key in ``tol`` of the bound that earns no credit (banded tests); None for pass/fail.
    reference : callable
        ``reference(tol) -> components``: gradkit's own correct components, for sweeps and
        calibration. The wrong answers a bound must reject are not listed here: they are the
        entries of the assignment's ``answers.yml`` whose ``fails:`` names the test.
    batched : callable or None
        ``batched(components, tol, seeds) -> list of float``, one value per seed in the order of
        ``seeds``, each the value ``statistic(components, tol, seed)`` gives (the same code: the
        statistic is its one-seed case); what sweeps and calibrations run when present, a chunk of
        seeds per call (:func:`gradkit_tools.calibrate.run_checks`). None: the statistic seed by seed.
    """

    name: str
    test: str
    statistic: Callable[[Mapping[str, Any], Mapping[str, Any], int], float]
    full: str
    zero: str | None
    reference: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    batched: Callable[[Mapping[str, Any], Mapping[str, Any], Sequence[int]], list[float]] | None = None

    def larger_is_better(self, tol: Mapping[str, Any]) -> bool:
        """True when values above the full-credit bound pass (accuracy), False when below (loss)."""
        return direction(tol[self.full], tol[self.zero]) if self.zero else self._pass_fail_direction(tol)

    def _pass_fail_direction(self, tol: Mapping[str, Any]) -> bool:
        key = self.full.lower()
        if any(w in key for w in ("max", "upper", "_hi")):
            return False
        if any(w in key for w in ("min", "lower", "_lo")):
            return True
        raise ValueError(f"{self.test}: cannot tell the direction of pass/fail bound {self.full!r}; "
                         "name it *_min_* or *_max_*")


def direction(full: float, zero: float) -> bool:
    """True when larger values are better (the full-credit bound lies above the no-credit one)."""
    if full == zero:
        raise ValueError(f"band bounds must differ (both {full})")
    return full > zero
