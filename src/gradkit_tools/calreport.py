"""The report of one stochastic check's reference runs against its bound (:mod:`gradkit_tools.calibrate`).

:func:`summarize` turns a check's runs into a :class:`CheckReport`: mean and spread, false fails and
their 95% Clopper-Pearson upper bound, the margin in standard deviations, and the failing tails of a
normal and of a skew-normal fitted to the runs; :func:`format_reports` prints them as a table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from gradkit_grader.statistic import Check

__all__ = ["DEFAULT_BUDGET", "MIN_POWER", "MIN_CALIBRATION_RUNS", "CheckReport", "summarize", "power_entry",
           "budget_share", "reports_of", "format_reports"]

DEFAULT_BUDGET = 1e-4  # false-fail probability per evaluation, at most
MIN_POWER = 0.99  # each wrong answer must fail the full-credit bound with at least this probability
MIN_CALIBRATION_RUNS = 300  # empirical bounds rest on >= 300 reference runs


def _clopper_pearson_upper(k: int, n: int, level: float = 0.95) -> float:
    """One-sided upper confidence bound of a binomial rate (k of n), exact."""
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(level, k + 1, n - k))


@dataclass
class CheckReport:
    """A check's distribution under the reference, against its bound."""

    assignment: str
    test: str
    name: str
    bound: float
    zero: float | None
    larger_is_better: bool
    runs: int
    mean: float
    sd: float
    lo: float
    hi: float
    false_fails: int
    upper95: float
    margin_sd: float
    tail_prob: float
    budget: float
    seconds: float
    method: str = "empirical"
    values: list[float] = field(default_factory=list, repr=False)
    power: dict[str, dict] = field(default_factory=dict)
    tail_normal: float = math.nan  # P(fail) of a normal fitted to the runs
    tail_skewnorm: float = math.nan  # ... of a skew-normal fitted to them (NaN: too few runs or no spread)

    @property
    def meets_budget(self) -> bool:
        """No reference run failed, and (empirical bounds) the fitted tail stays within the budget.

        An exact bound (a chi-square / binomial quantile at the budget) meets it by construction;
        its runs can only refute it."""
        return self.false_fails == 0 and (self.method == "exact" or self.tail_prob <= self.budget)

    @property
    def powerful(self) -> bool:
        return all(p["fail_prob"] >= MIN_POWER for p in self.power.values())

    @property
    def ok(self) -> bool:
        """What ``gradkit calibrate`` demands: the budget met and (when measured) power >= 0.99."""
        return self.meets_budget and (not self.power or self.powerful)

    def sweep_shortfall(self, min_margin: float) -> str:
        """Why a seed sweep rejects this check ("" when it does not): a false fail, or an empirical
        bound closer than ``min_margin`` sd to the reference mean (an exact bound's statistic, e.g. a
        p-value, has no meaningful margin in sd)."""
        if self.false_fails or (self.method == "empirical" and not self.margin_sd >= min_margin):
            return (f"{self.assignment} {self.test}: {self.false_fails} failure(s), margin {self.margin_sd:.2f} sd "
                    f"(at least {min_margin:g} wanted)")
        return ""


def _passes(values: np.ndarray, bound: float, larger: bool) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (values >= bound) if larger else (values <= bound)


def summarize(check: Check, assignment: str, tol: Mapping[str, Any], values: np.ndarray, seconds: float,
              budget: float = DEFAULT_BUDGET) -> CheckReport:
    """Statistics of ``values`` (reference runs) against the check's full-credit bound."""
    from scipy.stats import norm

    larger = check.larger_is_better(tol)
    bound = float(tol[check.full])
    finite = values[np.isfinite(values)]
    mean = float(np.mean(finite)) if finite.size else math.nan
    sd = float(np.std(finite, ddof=1)) if finite.size > 1 else math.nan
    fails = int(np.sum(~_passes(values, bound, larger)))
    margin = ((mean - bound) if larger else (bound - mean)) / sd if sd and sd > 0 else (
        math.inf if fails == 0 else -math.inf)
    normal, skewed = float(norm.sf(margin)), _skewnorm_tail(finite, bound, larger)
    return CheckReport(assignment, check.test, check.name, bound, float(tol[check.zero]) if check.zero else None,
                       larger, len(values), mean, sd, float(np.min(finite)) if finite.size else math.nan,
                       float(np.max(finite)) if finite.size else math.nan, fails,
                       _clopper_pearson_upper(fails, len(values)), float(margin),
                       normal if math.isnan(skewed) else max(normal, skewed),
                       budget, seconds, values=[float(v) for v in values], tail_normal=normal, tail_skewnorm=skewed)


def _skewnorm_tail(finite: np.ndarray, bound: float, larger: bool) -> float:
    """P(fail) of a skew-normal fitted (maximum likelihood) to the runs; NaN below 30 runs or without
    spread. A skewed statistic (an accuracy capped near 1, a max of deviations) can have a heavier
    failing tail than the normal with its mean and sd; ``tail_prob`` is the larger of the two."""
    from scipy.stats import skewnorm

    if finite.size < 30 or not np.std(finite) > 0:
        return math.nan
    a, loc, scale = skewnorm.fit(finite)
    return float(skewnorm.cdf(bound, a, loc, scale) if larger else skewnorm.sf(bound, a, loc, scale))


def power_entry(check: Check, tol: Mapping[str, Any], vals: np.ndarray) -> dict:
    """How often a wrong answer's runs ``vals`` fail the full-credit bound: observed, and (smaller of
    the two) from a normal fitted to the finite runs (a NaN run is a failure)."""
    from scipy.stats import norm

    larger, bound = check.larger_is_better(tol), float(tol[check.full])
    fails = int(np.sum(~_passes(vals, bound, larger)))
    finite = vals[np.isfinite(vals)]
    if finite.size > 1 and np.std(finite) > 0:
        z = ((np.mean(finite) - bound) if larger else (bound - np.mean(finite))) / np.std(finite, ddof=1)
        fitted = float(norm.cdf(-z)) * finite.size / vals.size + (vals.size - finite.size) / vals.size
    else:
        fitted = fails / len(vals)
    return {"runs": len(vals), "fails": fails, "fail_prob": min(fails / len(vals), fitted),
            "mean": float(np.mean(finite)) if finite.size else math.nan}


def budget_share(budget: float, check: Check, all_checks: Sequence[Check]) -> float:
    """A test with several statistics fails when any of them does: each gets an equal share of its budget."""
    return budget / sum(c.test == check.test for c in all_checks)


def reports_of(name: str, tol: Mapping[str, Any], checks: Sequence[Check], values: Sequence[np.ndarray],
               seconds: Sequence[float], wrong: Sequence[tuple], wrong_values: Sequence[np.ndarray], *,
               budget: float | None, declared: Mapping, all_checks: Sequence[Check], power: bool) -> list[CheckReport]:
    """The reports of a sweep or calibration of assignment ``name`` from its runs (one process's, or the
    merged shards'): ``values[i]``/``seconds[i]`` are ``checks[i]``'s runs, ``wrong_values[j]`` those of the
    wrong answer ``wrong[j]`` (``(check, label, components)``). Each check's budget is ``budget``, else its
    test's in ``declared``, shared among the test's statistics (:func:`budget_share`)."""
    reports = []
    for check, vals, secs in zip(checks, values, seconds):
        share = budget_share(budget if budget is not None else declared[check.test]["budget"], check, all_checks)
        rep = summarize(check, name, tol, vals, secs, share)
        rep.method = declared.get(check.test, {}).get("method", "empirical")
        if power:
            rep.power = {label: power_entry(c, tol, v) for (c, label, _), v in zip(wrong, wrong_values) if c is check}
        reports.append(rep)
    return reports


def format_reports(reports: Sequence[CheckReport]) -> str:
    """One line per check: bound, reference mean ± sd, false fails, upper bound, margin, tail, power."""
    head = ["assignment", "check", "bound", "mean", "sd", "fails/runs", "95% upper", "margin sd", "fitted P(fail)",
            "budget", "power (min fail prob)", "s/run", "verdict"]
    body = []
    for r in reports:
        op = ">=" if r.larger_is_better else "<="
        power = min((p["fail_prob"] for p in r.power.values()), default=math.nan)
        verdict = "ok" if r.ok else "FAIL"
        body.append([r.assignment, r.name, f"{op} {r.bound:g}", f"{r.mean:.4g}", f"{r.sd:.3g}",
                     f"{r.false_fails}/{r.runs}", f"{r.upper95:.3g}", f"{r.margin_sd:.2f}",
                     "exact" if r.method == "exact" else f"{r.tail_prob:.2e}",
                     f"{r.budget:g}", "-" if math.isnan(power) else f"{power:.3f}",
                     "-" if math.isnan(r.seconds) else f"{r.seconds / max(r.runs, 1):.3g}", verdict])
    widths = [max(len(c) for c in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, body)])
