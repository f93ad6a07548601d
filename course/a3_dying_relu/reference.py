"""gradkit's own answers to assignment a3_dying_relu's stubs: the collapse detector and the study.

Reference answers live with the assignment (shipped only inside its autograder zip as
``gradkit_grader.course.a3_dying_relu.reference``), never in the student package :mod:`gradkit`,
whose :func:`gradkit.ensemble.collapse_rate` takes the detector from its caller.
"""
from __future__ import annotations

import numpy as np

from gradkit.data import lu_target
from gradkit.ensemble import DEFAULT_GRID_POINTS, DEFAULT_RTOL, INTERVAL, collapse_rate

__all__ = ["constant_members", "target_range", "detector", "is_collapsed", "run_study"]


def constant_members(outputs, *, rtol: float = DEFAULT_RTOL, scale=1.0) -> np.ndarray:
    """Which members compute a constant function (Lu et al. 2019, Def. 1).

    Parameters
    ----------
    outputs : array, ``(grid, M)`` or ``(grid, output_dim, M)``
        Each member's output on an evaluation grid over the input interval.
    rtol : float
        Collapsed iff ``max - min`` over the grid ``<= rtol * scale`` (for every output feature).
    scale : float or array broadcastable to ``(M,)``
        The target's ``max - min`` on the grid; 1.0 makes ``rtol`` absolute.

    Returns
    -------
    np.ndarray of bool, ``(M,)``. Members with a non-finite output are False.
    """
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 2:
        out = out[:, None, :]
    if out.ndim != 3:
        raise ValueError(f"outputs must be (grid, M) or (grid, output_dim, M), got {out.shape}")
    spread = out.max(axis=0) - out.min(axis=0)  # (output_dim, M); NaN stays NaN
    with np.errstate(invalid="ignore"):
        return np.all(spread <= rtol * np.asarray(scale, dtype=np.float64), axis=0)


def target_range(target: str = "abs", grid_points: int = DEFAULT_GRID_POINTS) -> float:
    """max - min of the study's target (a :data:`gradkit.ensemble.TARGETS` name) on its float32 grid
    ``linspace(*INTERVAL, grid_points)``, as the study evaluates it."""
    grid = np.linspace(*INTERVAL, grid_points, dtype=np.float32).astype(np.float64)
    return float(np.ptp(lu_target(target, grid)))


def detector(target: str = "abs", grid_points: int = DEFAULT_GRID_POINTS, rtol: float = DEFAULT_RTOL):
    """The definition as a :func:`gradkit.ensemble.collapse_rate` detector for ``target``."""
    scale = target_range(target, grid_points)
    return lambda outputs: constant_members(outputs, rtol=rtol, scale=scale)


def is_collapsed(model_outputs, target_range, rtol=DEFAULT_RTOL):
    """The stub's answer: bool ``(members,)`` from outputs ``(grid_points, members)``."""
    return constant_members(model_outputs, rtol=rtol, scale=target_range)


def run_study(activation, members=1000, *, epochs=10, seed=0, confidence=0.95, progress=True):
    """The stub's answer: seed 002's study (target |x|) with the definition as the detector."""
    return collapse_rate(activation, members=members, epochs=epochs, seed=seed, target="abs", confidence=confidence,
                         detector=detector("abs"), progress=progress)
