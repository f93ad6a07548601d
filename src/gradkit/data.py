"""Data sets of the course, all generated or loaded offline and seeded by argument.

=====================  ==============================================  ============
function               what                                            seed
=====================  ==============================================  ============
``two_spirals``        two interleaved 2-D spirals, scaled to [-1, 1]  000
``circles``/``moons``  sklearn toy problems, scaled to [-1, 1]         003 / 000
``lu_target``          Lu et al.'s 1-D targets on [-sqrt 7, sqrt 7]    002
``lu_dataset``         x ~ U[-sqrt 7, sqrt 7] and a Lu target           002
``linear_explode``     y = 5 + 10 x on x = 0..99 (SGD diverges)        004
``iris``               sklearn's iris (petal features by default)      003
``digits``             sklearn's 8x8 digits, offline stand-in for MNIST 001/002
=====================  ==============================================  ============

MNIST and Fashion-MNIST (seeds 001-003), with the digits as their offline substitute, are
loaded by :func:`gradkit.imagedata.load_images`.

Every random function takes ``rng``: an ``int`` seed or a
``numpy.random.Generator``; nothing touches NumPy's global state.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = [
    "LU_INTERVAL", "LU_TARGETS", "as_rng", "two_spirals", "circles", "moons",
    "lu_target", "lu_dataset", "linear_explode", "iris", "digits",
    "train_test_split",
]

#: Input interval of Lu et al.'s experiments, [-sqrt 7, sqrt 7].
LU_INTERVAL: tuple[float, float] = (-math.sqrt(7.0), math.sqrt(7.0))

#: Lu et al. (2019), p. 13: the three 1-D targets.
LU_TARGETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "abs": lambda x: np.abs(x),
    "xsin5x": lambda x: x * np.sin(5.0 * x),
    "step_sin": lambda x: (x > 0).astype(np.float64) + 0.2 * np.sin(5.0 * x),
}


def as_rng(rng: int | np.random.Generator | None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a seed or a generator.

    ``None`` is refused: gradkit never draws from an unseeded source.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        raise ValueError("pass rng= (an int seed or a numpy Generator); gradkit never draws unseeded")
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be an int or numpy.random.Generator, got {type(rng).__name__}")


def _scale(X: np.ndarray) -> np.ndarray:
    """Min-max scale each column to [-1, 1] (sklearn's MinMaxScaler((-1, 1)))."""
    lo, hi = X.min(axis=0), X.max(axis=0)
    return 2.0 * (X - lo) / np.where(hi > lo, hi - lo, 1.0) - 1.0


def two_spirals(n_points: int = 500, noise: float = 1.5, *, rng, scale: bool = True):
    """Two interleaved spirals of ``n_points`` each (seed 000's ``twospirals``).

    Returns
    -------
    X : ndarray of shape (2 * n_points, 2), float32
    y : ndarray of shape (2 * n_points,), float32 in {0, 1}
    """
    if n_points < 1:
        raise ValueError(f"n_points must be >= 1, got {n_points}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    g = as_rng(rng)
    n = np.sqrt(g.random((n_points, 1))) * 600 * (2 * np.pi) / 360
    d1x = -np.cos(n) * n + g.random((n_points, 1)) * noise
    d1y = np.sin(n) * n + g.random((n_points, 1)) * noise
    X = np.vstack((np.hstack((d1x, d1y)), np.hstack((-d1x, -d1y))))
    y = np.hstack((np.zeros(n_points), np.ones(n_points)))
    if scale:
        X = _scale(X)
    return X.astype(np.float32), y.astype(np.float32)


def _sk_seed(rng) -> int:
    return int(as_rng(rng).integers(2**31 - 1))


def circles(n_samples: int = 1000, noise: float = 0.1, *, rng, factor: float = 0.8, scale: bool = True):
    """sklearn's ``make_circles`` (seed 003/004 use noise 0.1), scaled to [-1, 1].

    Returns ``X`` (n_samples, 2) float32 and ``y`` (n_samples,) float32.
    """
    from sklearn.datasets import make_circles

    X, y = make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=_sk_seed(rng))
    X = _scale(X) if scale else X
    return X.astype(np.float32), y.astype(np.float32)


def moons(n_samples: int = 1000, noise: float = 0.1, *, rng, scale: bool = True):
    """sklearn's ``make_moons``, scaled to [-1, 1]; ``X`` (n, 2), ``y`` (n,)."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n_samples, noise=noise, random_state=_sk_seed(rng))
    X = _scale(X) if scale else X
    return X.astype(np.float32), y.astype(np.float32)


def lu_target(name: str, x: np.ndarray) -> np.ndarray:
    """Evaluate Lu et al.'s target ``name`` ("abs", "xsin5x", "step_sin") at ``x``."""
    try:
        f = LU_TARGETS[name]
    except KeyError:
        raise KeyError(f"unknown Lu target {name!r}; known: {', '.join(LU_TARGETS)}") from None
    return f(np.asarray(x, dtype=np.float64))


def lu_dataset(n: int = 3000, target: str = "abs", *, rng, members: int | None = None):
    """Training points ``x ~ U[-sqrt 7, sqrt 7]`` and ``y = target(x)``.

    Returns float32 arrays of shape (n, 1), or (n, 1, members) with an
    independent draw per member when ``members`` is given (the layout of
    :mod:`gradkit.ensemble`).
    """
    g = as_rng(rng)
    shape = (n, 1) if members is None else (n, 1, members)
    x = g.uniform(*LU_INTERVAL, size=shape)
    return x.astype(np.float32), lu_target(target, x).astype(np.float32)


def linear_explode(n: int = 100):
    """Seed 004's exploding regression: ``x = 0..n-1``, ``y = 5 + 10 x``.

    Plain SGD (lr 0.01) on MSE diverges: the loss's curvature along the
    weight is ``2 * mean(x**2)`` ~ 6.6e3 for n = 100, so any step above
    ~3e-4 overshoots. Returns float32 arrays of shape (n, 1).
    """
    x = np.arange(n, dtype=np.float32).reshape(-1, 1)
    return x, (5.0 + 10.0 * x).astype(np.float32)


def iris(features: slice | list[int] | None = slice(2, 4)):
    """sklearn's iris; seed 003 keeps the petal features ``[:, 2:]``.

    Returns ``X`` (150, k) float32 and integer labels ``y`` (150,).
    """
    from sklearn.datasets import load_iris

    d = load_iris()
    X = d.data if features is None else d.data[:, features]
    return X.astype(np.float32), d.target.astype(np.int64)


def digits():
    """sklearn's 8x8 handwritten digits (1797 images, shipped with sklearn,
    no network): the offline stand-in for MNIST.

    Returns ``X`` (1797, 64) float32 in [0, 1] and integer labels ``y`` (1797,).
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def train_test_split(X: np.ndarray, y: np.ndarray, test_fraction: float = 0.5, *, rng):
    """Shuffle and split (seed 000 uses half and half). Returns Xtr, Xte, ytr, yte."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    idx = as_rng(rng).permutation(len(X))
    n_test = int(round(len(X) * test_fraction))
    te, tr = idx[:n_test], idx[n_test:]
    return X[tr], X[te], y[tr], y[te]
