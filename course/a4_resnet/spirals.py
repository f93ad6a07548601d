"""Seed 000's headline finding as a4_resnet's hidden test grades it: the student's deep ``tanh`` ResNet
learns the two spirals (test accuracy well above chance) where seed 000's plain 31-layer ``tanh`` net
does not (0.49-0.70 in the notebook's part 4).

:func:`spirals_accuracy` builds ``spirals_members`` ResNets with the student's
``build_resnet(spirals_blocks, spirals_width, 2, 1, activation="tanh", initializer="glorot_uniform",
seed=s)`` (each call guarded, :func:`gradkit_grader.course.a4_resnet.nets.student_model`),
stacks them into ONE member-axis model (:func:`gradkit.stacking.stack_models`: traced once, every
member's gradient its own under the summed loss), trains it with full-batch Adam on the training half
of the spirals drawn from the submission's seed, sets every batch-normalisation layer's moving
statistics to the exact statistics of the training set (the notebook's ``RecalibrateBN``, "precise
BN") and returns the mean test accuracy of the members.

:func:`spirals_accuracies` is the same for many seeds in one model (member ``i * M + j`` = net ``j``
of seed ``i``, each seed's nets fed that seed's data); :func:`spirals_accuracy` is its one-seed case.
``spirals_members`` is a multiple of 8, so a seed's nets fill whole lanes of the vectorised float32
arithmetic (the caveat of :mod:`gradkit_grader.course.a2_init.circles`: with 4 nets per seed the
probabilities of a seed moved in the last bits when other seeds trained beside it).

The hidden test calls :func:`require_skips` first (a net without an ``Add``
layer is not a ResNet and fails with that reason), then :func:`spirals_accuracy`. Calibration runs the
accuracy alone.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import keras
import numpy as np

from gradkit._ensemble_layers import derive_seed
from gradkit.data import train_test_split, two_spirals
from gradkit.guard import time_limit
from gradkit.stacking import EnsembleBatchNorm, NotStackable, stack_models, summed_bce
from gradkit_grader.course.a4_resnet.nets import model_seed, resnet
from gradkit_grader.course.a4_resnet.structure import ordered_layers
from gradkit_grader.globalseed import set_global_seed
from gradkit_grader.seeding import seed_in_failures

__all__ = ["spirals_split", "spirals_accuracy", "spirals_accuracies", "require_skips"]


def spirals_split(tol: Mapping[str, Any], seed: int) -> tuple[np.ndarray, ...]:
    """Seed 000's spirals (``spiral_points`` per arm, noise ``spiral_noise``) drawn with
    ``derive_seed(seed, 0)``, split by ``derive_seed(seed, 1)``: ``X_tr (n_tr, 2), X_te, y_tr (n_tr,), y_te``."""
    X, y = two_spirals(tol["spiral_points"], tol["spiral_noise"], rng=derive_seed(seed, 0))
    return train_test_split(X, y, test_fraction=tol["spirals_test_fraction"], rng=derive_seed(seed, 1))


def _nets(components: Mapping[str, Any], tol: Mapping[str, Any], seed: int, *,
          redraw: bool = False) -> list[tuple[keras.Model, tuple[list, list] | None]]:
    """The student's ``spirals_members`` ResNets of ``seed``: net ``k`` seeded ``seed + k * seed_stride``
    (Keras' global seed set to it first, as the other q2 tests), each ``(net, None)``; with ``redraw``, where the
    builder allows it, ``(net of seed 0, the weights of its seed)`` (:func:`.nets.resnet`: the same floats)."""
    nets = []
    for k in range(tol["spirals_members"]):
        s = model_seed(seed, k, tol)
        set_global_seed(s)
        nets.append(resnet(components, tol, _args(tol), s, redraw=redraw, activation="tanh",
                           initializer="glorot_uniform"))
    return nets


def _args(tol: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """The positional arguments of the student's ``build_resnet`` call."""
    return tol["spirals_blocks"], tol["spirals_width"], 2, 1


def _adds(model: keras.Model) -> int:
    """The ``keras.layers.Add`` layers of ``model``, nested models included."""
    return sum(isinstance(layer, keras.layers.Add) for layer in ordered_layers(model))


def require_skips(components: Mapping[str, Any], tol: Mapping[str, Any], seed: int) -> None:
    """Fail (AssertionError) unless the student's first net of :func:`spirals_accuracy` has an ``Add`` layer.

    The test grades ResNets: a stack of layers without skips is seed 000's plain net, and a shallower
    one (a 15-layer tanh MLP) reaches the band by accuracy alone. Calibration runs the statistic without
    this check, so its power is that of the accuracy (NOTES.md).
    """
    with seed_in_failures(seed):
        net = _nets(components, {**tol, "spirals_members": 1}, seed)[0][0]
        if not _adds(net):
            raise AssertionError(
                f"your build_resnet{_args(tol)} has no Add layer: this test trains ResNets, whose blocks add their "
                "input back (the skip connection); a stack of layers without skips is seed 000's plain net")


def _stack(nets: list[tuple[keras.Model, tuple[list, list] | None]]) -> keras.Model:
    """The ``(net, weights)`` of :func:`_nets` as one member-axis model; a net it cannot take fails the test with
    what to change."""
    try:
        return stack_models([net for net, _ in nets], name="spirals_stack", weights=[w for _, w in nets])
    except Exception as exc:  # NotStackable, or an error of the student's layers met while rebuilding them
        what = str(exc) if isinstance(exc, NotStackable) else f"{type(exc).__name__}: {exc}"
        raise AssertionError(
            f"this test trains several of your ResNets side by side and cannot do so with yours: {what}. "
            "Build the network from keras.layers Dense, BatchNormalization, Activation and Add only (as the "
            "docstrings of residual_block and build_resnet say), with no other layer types") from None


def _members(arrays: Sequence[np.ndarray], m: int) -> np.ndarray:
    """Per-seed arrays ``(n, d)`` -> ``(n, d, seeds * m)``, each seed's array repeated for its ``m`` nets."""
    return np.concatenate([np.repeat(np.asarray(a, dtype="float32")[:, :, None], m, axis=2) for a in arrays],
                          axis=2)


def spirals_accuracies(components: Mapping[str, Any], tol: Mapping[str, Any], seeds: Sequence[int], *,
                       redraw: bool = True) -> list[float]:
    """:func:`spirals_accuracy` of each seed of ``seeds``, all nets trained as members of one model.

    ``redraw`` (calibration's form): the nets redrawn from one built net where the builder allows it
    (:func:`_nets`), the same floats; :func:`spirals_accuracy`, graded, builds each net.

    Returns
    -------
    list of float, one per seed
        The mean over the seed's ``spirals_members`` nets of the test accuracy (``k / n_test``), the
        float64 mean of the seed's accuracies in member order (as alone).
    """
    seeds = [int(s) for s in seeds]
    m, runs = tol["spirals_members"], len(seeds)
    with seed_in_failures(seeds[0]):
        splits = [spirals_split(tol, seed) for seed in seeds]
        nets = [net for seed in seeds for net in _nets(components, tol, seed, redraw=redraw)]
        model = _stack(nets)
        spe = tol["spirals_steps_per_execution"]
        x_tr = _members([s[0] for s in splits], m)
        y_tr = _members([s[2][:, None] for s in splits], m)
        model.compile(optimizer=keras.optimizers.Adam(tol["spirals_lr"]), loss=summed_bce,
                      steps_per_execution=spe, jit_compile=False)  # XLA: slower here (NOTES.md)
        with time_limit(tol["spirals_timeout_s"] * runs, what="training your ResNets on the spirals"):
            model.fit(np.tile(x_tr, (spe, 1, 1)), np.tile(y_tr, (spe, 1, 1)), batch_size=len(x_tr),
                      epochs=tol["spirals_steps"] // spe, shuffle=False, verbose=0)
            bns = [la for la in ordered_layers(model) if isinstance(la, EnsembleBatchNorm)]
            for bn in bns:  # one training-mode pass with momentum 0: moving statistics = the training set's
                bn.momentum = 0.0
            if bns:
                model(x_tr, training=True)
            p = keras.ops.convert_to_numpy(model.predict(_members([s[1] for s in splits], m),
                                                         batch_size=len(splits[0][1]), verbose=0))[:, 0, :]
    y_te = _members([s[3][:, None] for s in splits], m)[:, 0, :]
    right = (p > 0.5) == (y_te > 0.5)  # (n_test, seeds * members); NaN outputs count as wrong or class 0
    acc = np.mean(right, axis=0).reshape(runs, m)
    return [float(np.mean(row)) for row in acc]


def spirals_accuracy(components: Mapping[str, Any], tol: Mapping[str, Any], seed: int) -> float:
    """Mean test accuracy, in [0, 1], of ``spirals_members`` deep tanh ResNets of the student's trained
    ``spirals_steps`` full-batch Adam steps on seed 000's spirals (module docstring): the one-seed case of
    :func:`spirals_accuracies`."""
    return spirals_accuracies(components, tol, [seed], redraw=False)[0]
