"""Seed 001's grid as a4_resnet's question 3 grades it: which network's gradient vanishes, whose explodes.

Seed 001 compares the gradients of a 25-layer, 128-unit ReLU network with and without batch
normalisation and with and without skips (the lab's block, whose skip jumps over one layer); part 5 of
the notebook builds the four networks on the digits and prints, at initialisation, each one's first
kernel's gradient norm and the spread of its kernels' norms (largest / smallest). The student names two
of them (keys of the notebook's ``digit_nets``); the hidden test rebuilds the grid at ``grid_seeds`` seeds
derived from the submission's and checks both names against their averages (one grid separates BN only
from skips + BN by about 4 standard deviations, three by about 7).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from gradkit import data, diagnostics, models
from gradkit._ensemble_layers import derive_seed

__all__ = ["NETS", "grid_norms", "grid_summary", "grid_margin", "reference"]

#: the notebook's names (keys of its ``digit_nets``) of seed 001's four networks
NETS = ("plain", "BN only", "skips only", "skips + BN (the lab's)")


@lru_cache(maxsize=8)
def _norms(seed: int, depth: int, width: int, batch: int, test_fraction: float) -> tuple[tuple[float, ...], ...]:
    X, y = data.digits()
    X_train, _, y_train, _ = data.train_test_split(X, y, test_fraction=test_fraction, rng=seed)
    kw = dict(activation="relu", initializer="glorot_uniform", input_dim=X.shape[1], output_dim=10,
              output_activation="softmax", seed=seed)
    blocks = depth // 2
    nets = (models.build_mlp(depth, width, **kw),
            models.build_mlp(depth, width, batch_norm=True, **kw),
            models.build_resnet(blocks, width, block="dense_relu", stem_layers=1, head_layers=0, **kw),
            models.build_resnet(blocks, width, block="dense_bn_relu", stem_layers=1, stem_batch_norm=True,
                                head_layers=0, **kw))
    return tuple(tuple(diagnostics.gradient_norms(m, X_train[:batch], y_train[:batch],
                                                  "sparse_categorical_crossentropy", training=True).values())
                 for m in nets)


def grid_norms(tol: Mapping[str, Any], seed: int) -> dict[str, np.ndarray]:
    """``{name: per-kernel gradient norms, input side first}`` of the four nets of :data:`NETS` at
    initialisation (training-mode batch normalisation), data split and weights seeded ``seed``; memoized."""
    rows = _norms(int(seed), tol["grid_depth"], tol["grid_width"], tol["grid_batch"], tol["grid_test_fraction"])
    return {name: np.asarray(row) for name, row in zip(NETS, rows)}


def grid_summary(tol: Mapping[str, Any], seed: int) -> dict[str, tuple[float, float]]:
    """``{name: (log10 first-kernel norm, log10 spread)}`` averaged over ``grid_seeds`` grids, grid ``k``
    seeded ``derive_seed(seed, k)`` (well apart: a net seeded s uses s + i for its layer i)."""
    grids = [grid_norms(tol, derive_seed(seed, k)) for k in range(tol["grid_seeds"])]
    return {name: (float(np.mean([math.log10(g[name][0]) for g in grids])),
                   float(np.mean([math.log10(g[name].max() / g[name].min()) for g in grids])))
            for name in NETS}


def grid_margin(components: Mapping[str, Any], tol: Mapping[str, Any], seed: int) -> float:
    """How clearly the grids at ``seed`` support the two names of ``components``, in log10 units.

    ``components["vanishing_net"]`` must be the net whose first kernel's gradient norm is the smallest,
    ``components["exploding_net"]`` the one whose spread (largest / smallest kernel norm) is the largest,
    both as averages of log10 over the ``grid_seeds`` grids of :func:`grid_summary`. Returns the smaller of
    the two gaps to the nearest other net: positive when both names are right, negative when one is wrong,
    -inf for a name that is not one of :data:`NETS`.
    """
    summary = grid_summary(tol, seed)
    vanishing, exploding = components["vanishing_net"], components["exploding_net"]
    if vanishing not in summary or exploding not in summary:
        return -math.inf
    return min(min(summary[k][0] - summary[vanishing][0] for k in NETS if k != vanishing),
               min(summary[exploding][1] - summary[k][1] for k in NETS if k != exploding))


def reference(tol: Mapping[str, Any]) -> dict[str, Any]:  # noqa: ARG001 - the same for every section
    """The names the grid supports (seed 001's finding, and this course's measurements at seeds 0-2)."""
    return {"vanishing_net": "plain", "exploding_net": "BN only"}
