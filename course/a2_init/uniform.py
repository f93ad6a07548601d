"""The distribution test of ``random_uniform`` (a2_init's question 7): seed 004's ``RandomUniform(0, 1)``."""
from __future__ import annotations

import math
from typing import Any, Mapping

from scipy import stats

from gradkit._ensemble_layers import derive_seed
from gradkit.stats import variance_interval
from gradkit_grader.course.a2_init.draws import draws, seeding_findings

__all__ = ["uniform_findings", "uniform_pvalue", "uniform_failure"]


def uniform_findings(fn: Any, tol: Mapping, seed: int) -> list[tuple[float, str]]:
    """Every check of ``random_uniform``'s distribution test with its two-sided p-value.

    ``fn(shape, minval=0.0, maxval=1.0, dtype="float32", seed=None)``; each case ``[shape, range]`` of
    ``tol["uniform_cases"]`` draws one kernel with seed ``derive_seed(seed, 200 + i)``, at the defaults
    where ``range`` is null (expected U(0, 1)), else with ``minval, maxval = range``. Per case: the range
    (p = 0 or 1), the mean (z), the variance (chi-square: conservative, a uniform's sample variance
    spreads less than a normal's), and the smallest and largest draws, which n i.i.d. draws of
    U(a, b) bring within t of each end except with probability (1 - t / (b - a))^n.
    """
    alpha, out, cases = tol["min_pvalue"], [], [(tuple(shape), rng) for shape, rng in tol["uniform_cases"]]
    s1, s2, what = derive_seed(seed, 100), derive_seed(seed, 101), "random_uniform"
    calls = [(cases[0][0], s1), (cases[0][0], s1), (cases[0][0], s2)] + [
        (shape, derive_seed(seed, 200 + i), {} if rng is None else {"minval": rng[0], "maxval": rng[1]})
        for i, (shape, rng) in enumerate(cases)]
    first, again, other, *kernels = draws(fn, what, calls, tol)
    out += seeding_findings(what, first, again, other, s1, s2)
    for (shape, rng), w in zip(cases, kernels):
        (a, b), w, n = (0.0, 1.0) if rng is None else rng, w.ravel(), w.size
        call = f"{what}({shape})" if rng is None else f"{what}({shape}, minval={a:g}, maxval={b:g})"
        mean, var, width = (a + b) / 2, (b - a) ** 2 / 12, b - a
        lo, hi, slack = float(w.min()), float(w.max()), tol["uniform_limit_rtol"] * max(abs(a), abs(b))
        hint = (" With the defaults the range must be [0, 1): the lab's RandomUniform(0, 1)." if rng is None else
                f" Scale by the width maxval - minval = {width:g}, then shift by minval.")
        out.append((float(a - slack <= lo and hi <= b + slack),
                    f"{call}: draws between {lo:.4g} and {hi:.4g}, outside [{a:g}, {b:g}].{hint}"))
        out.append((float(2 * stats.norm.sf(abs(w.mean() - mean) / math.sqrt(var / n))),
                    f"{call}: mean {w.mean():.4g}, expected {mean:g} = (minval + maxval) / 2 ({n} draws, "
                    f"confidence 1 - {alpha:g}).{hint}"))
        s2_ = float(w.var(ddof=1))
        chi = (n - 1) * s2_ / var
        vlo, vhi = variance_interval(n, var, 1 - alpha)
        out.append((float(2 * min(stats.chi2.cdf(chi, n - 1), stats.chi2.sf(chi, n - 1))),
                    f"{call}: sample variance {s2_:.4g}, expected {var:.4g} = (maxval - minval)^2 / 12 (interval "
                    f"[{vlo:.4g}, {vhi:.4g}] for {n} draws, confidence 1 - {alpha:g}).{hint}"))
        for end, gap in (("largest", b - hi), ("smallest", lo - a)):
            out.append((float(min(1.0, max(0.0, 1 - gap / width)) ** n),
                        f"{call}: the {end} of {n} draws is {gap:.3g} from the end of [{a:g}, {b:g}); "
                        f"{n} uniform draws come within {width * (1 - alpha ** (1 / n)):.3g} except with "
                        f"probability {alpha:g}.{hint}"))
    return out


def uniform_pvalue(components: Mapping, tol: Mapping, seed: int) -> float:
    """Smallest p-value of :func:`uniform_findings` for ``components["random_uniform"]``."""
    return min(p for p, _ in uniform_findings(components["random_uniform"], tol, seed))


def uniform_failure(fn: Any, tol: Mapping, seed: int) -> str:
    """The message of the check of :func:`uniform_findings` with the smallest p-value; "" when none fails."""
    p, _, message = min((p, i, m) for i, (p, m) in enumerate(uniform_findings(fn, tol, seed)))
    return message if p < tol["min_pvalue"] else ""
