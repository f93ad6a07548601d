"""Confidence intervals against independent references (statsmodels-free)."""
import numpy as np
import pytest
from scipy import stats

from gradkit.stats import variance_interval, wilson_interval


@pytest.mark.parametrize("k, n, conf", [(81, 263, 0.95), (926, 1000, 0.95), (3, 50, 0.9999)])
def test_wilson_bounds_solve_the_score_equation(k, n, conf):
    """Independent characterisation: the bounds are the roots p of
    (k/n - p)^2 = z^2 p (1 - p) / n (Wilson 1927)."""
    z = stats.norm.ppf(0.5 + conf / 2)
    for p in wilson_interval(k, n, conf):
        assert (k / n - p) ** 2 == pytest.approx(z * z * p * (1 - p) / n, rel=1e-9, abs=1e-15)


def test_wilson_edges_and_errors():
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    for args in [(1, 0), (11, 10), (-1, 10)]:
        with pytest.raises(ValueError):
            wilson_interval(*args)
    with pytest.raises(ValueError):
        wilson_interval(1, 10, confidence=1.0)


def test_wilson_coverage_by_simulation():
    """Empirical coverage over 4000 binomial draws is within 3 SE of the nominal 95%."""
    rng = np.random.default_rng(0)
    n, p, reps = 200, 0.9, 4000
    k = rng.binomial(n, p, size=reps)
    cover = np.mean([lo <= p <= hi for lo, hi in (wilson_interval(int(x), n) for x in k)])
    se = np.sqrt(0.95 * 0.05 / reps)
    assert abs(cover - 0.95) < 3 * se + 0.01  # Wilson's coverage oscillates ~1% around nominal


def test_variance_interval_is_chi_square():
    lo, hi = variance_interval(1001, 2.0, 0.99)
    assert lo == pytest.approx(2.0 * stats.chi2.ppf(0.005, 1000) / 1000)
    assert hi == pytest.approx(2.0 * stats.chi2.ppf(0.995, 1000) / 1000)
    rng = np.random.default_rng(1)
    inside = [lo <= rng.normal(0, np.sqrt(2.0), 1001).var(ddof=1) <= hi for _ in range(2000)]
    assert np.mean(inside) > 0.98  # nominal 0.99, 3 SE = 0.0067
