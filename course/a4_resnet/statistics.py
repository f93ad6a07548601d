"""Statistics of assignment a4_resnet's stochastic hidden tests (question 2, ``build_resnet``; question 3's
grid statement: :mod:`gradkit_grader.course.a4_resnet.grid`).

Three hidden tests of q2 grade a number that depends on random initial weights and data, by band
(:mod:`gradkit_grader.bands`):

* :func:`gradient_statistic` -- at initialisation, how much larger the gradient at the first
  layer of the student's deep ``tanh`` ResNet is than that of seed 000's plain 31-layer ``tanh``
  net: the mean over ``grad_seeds`` model pairs of ``log10(|g_resnet| / |g_plain|)``;
* :func:`training_statistic` -- the mean final training loss (binary cross-entropy) of
  ``train_seeds`` small ReLU ResNets of the student's after ``train_steps`` full-batch Adam steps
  on the spirals; chance level is ln 2;
* :func:`gradkit_grader.course.a4_resnet.spirals.spirals_accuracy` -- seed 000's finding: the mean test
  accuracy on the spirals of ``spirals_members`` deep ``tanh`` ResNets of the student's, trained side by side.

Both take the student's components, the values of tolerances.yml and the submission's
seed (:func:`gradkit_grader.seeding.submission_seed`); every input they draw (the spirals, the models'
seeds) comes from that seed. :func:`reference` returns gradkit's own correct components, with
which the bounds of tolerances.yml were calibrated over many seeds.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import keras
import numpy as np

from gradkit.data import two_spirals
from gradkit.guard import assert_finite, student_call
from gradkit_grader.course.a4_resnet import grid, training
from gradkit_grader.course.a4_resnet.nets import model_seed, resnet
from gradkit_grader.course.a4_resnet.reference import build_resnet, residual_block
from gradkit_grader.course.a4_resnet.spirals import spirals_accuracies, spirals_accuracy
from gradkit_grader.globalseed import set_global_seed
from gradkit_grader.seeding import seed_in_failures
from gradkit_grader.statistic import Check

__all__ = ["reference", "first_layer_gradient",
           "gradient_statistic", "gradient_statistics", "training_statistic", "training_statistics", "CHECKS"]


# --------------------------------------------------------------------------- reference components

def reference(tol: Mapping[str, Any]) -> dict[str, Any]:  # noqa: ARG001 - same components for every section
    """gradkit's own correct components (:mod:`.reference`), keyed like the student's names."""
    return {"residual_block": residual_block, "build_resnet": build_resnet}


# --------------------------------------------------------------------------- helpers

def _spirals(tol: Mapping[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = two_spirals(tol["spiral_points"], tol["spiral_noise"], rng=seed)
    return X, y.reshape(-1, 1).astype("float32")


def _mean_over_models(tol: Mapping[str, Any], seed: int, count: str, one) -> float:
    """Mean of ``one(X, Y, s)`` over models ``k < tol[count]``, model seed ``s`` = :func:`.nets.model_seed`.

    ``X, Y`` are the spirals drawn with ``seed``; Keras' global seed is set to ``s`` before each
    model, and any AssertionError carries the submission seed's note.
    """
    X, Y = _spirals(tol, seed)
    values = []
    with seed_in_failures(seed):
        for k in range(tol[count]):
            s = model_seed(seed, k, tol)
            set_global_seed(s)
            values.append(one(X, Y, s))
    return float(np.mean(values))


def first_layer_gradient(model: keras.Model, X: np.ndarray, Y: np.ndarray,
                         weights: tuple[list, list] | None = None) -> float:
    """Norm of the loss gradient (BCE, BN in training mode) w.r.t. the kernels reading the input
    (:func:`gradkit.diagnostics.gradient_norms`, bit for bit: :func:`.grid.kernel_gradient_norms`; ``weights``:
    in place of the model's own, :func:`.grid.seeded_net`'s).

    Those are the kernels of the Dense layers applied to ``model.inputs[0]`` (a ResNet's first
    block: its first Dense and its projection); the first kernel when none is found.
    """
    norms = grid.kernel_gradient_norms(model, X, Y, "binary_crossentropy", weights)
    if not norms:
        raise AssertionError(f"{model.name} has no trainable kernel")
    assert_finite(list(norms.values()), f"the gradient norms of {model.name}")
    inp = model.inputs[0]
    first = [op.kernel.path for op in model.operations if isinstance(op, keras.layers.Dense)
             and any(t is inp for node in op._inbound_nodes for t in node.input_tensors)]
    first = [p for p in first if p in norms] or [next(iter(norms))]
    return math.sqrt(sum(norms[p] ** 2 for p in first))


# --------------------------------------------------------------------------- statistics

def gradient_statistic(components: Mapping[str, Any], tol: Mapping[str, Any], seed: int) -> float:
    """Mean over ``grad_seeds`` model pairs of ``log10(|g_resnet| / |g_plain|)`` at the first layer.

    Pair ``k`` (model seed ``seed + k * seed_stride``): the student's
    ``build_resnet(grad_blocks, grad_width, 2, 1)`` with ``grad_activation`` /
    ``grad_initializer``, and gradkit's plain ``build_mlp(plain_depth, grad_width)`` with the same
    activation and initializer; both get the gradient of the BCE on the spirals drawn with ``seed``
    (:func:`first_layer_gradient`).

    Returns
    -------
    float
        The mean log10 ratio; larger is better (a ResNet's gradient reaches the input).
    """
    return _gradient_ratio(components, tol, seed, redraw=False)


def _gradient_ratio(components: Mapping[str, Any], tol: Mapping[str, Any], seed: int, *, redraw: bool) -> float:
    """:func:`gradient_statistic`; with ``redraw``, the ResNets redrawn, not built, where that gives the same floats
    (:func:`.nets.resnet`)."""
    def log10_ratio(X, Y, s: int) -> float:
        res, drawn = resnet(components, tol, (tol["grad_blocks"], tol["grad_width"], 2, 1), s, redraw=redraw,
                             activation=tol["grad_activation"], initializer=tol["grad_initializer"])
        g_res = first_layer_gradient(res, X, Y, drawn)
        if not g_res > 0:
            raise AssertionError("the gradient at the first layer of your ResNet is exactly zero: no "
                                 "gradient reaches the input (is the skip connection there?)")
        plain, weights = grid.seeded_net("build_mlp", s, depth=tol["plain_depth"], width=tol["grad_width"],
                                         activation=tol["grad_activation"], initializer=tol["grad_initializer"],
                                         input_dim=2, output_dim=1)
        g_plain = max(first_layer_gradient(plain, X, Y, weights), 1e-30)
        return math.log10(g_res) - math.log10(g_plain)

    return _mean_over_models(tol, seed, "grad_seeds", log10_ratio)


def _final_loss(components: Mapping[str, Any], tol: Mapping[str, Any], X, Y, s: int, *, traced: bool = False) -> float:
    """The final training loss of the student's small ReLU ResNet of model seed ``s`` (:func:`training_statistic`);
    with ``traced``, its losses come from :func:`.training.traced_losses` where it has a trace, the net redrawn
    where it can be (:func:`.nets.resnet`; the same floats)."""
    args, kw = (tol["train_blocks"], tol["train_width"], 2, 1), dict(activation="relu", initializer="he_normal")
    model, drawn = resnet(components, tol, args, s, redraw=traced, **kw)
    losses = training.traced_losses(model, X, Y, tol, drawn) if traced else None
    if losses is None:
        if drawn is not None:  # a template: the eager fit trains the net itself, built as it is graded
            set_global_seed(s)
            model = resnet(components, tol, args, s, **kw)[0]
        model.compile(optimizer=training.optimizer(tol), loss="binary_crossentropy", run_eagerly=True)
        hist = student_call(model.fit, X, Y, batch_size=len(X), epochs=tol["train_steps"], shuffle=False,
                            verbose=0, what="training your ResNet", timeout_s=tol["timeout_s"])
        losses = hist.history["loss"]
    if not all(math.isfinite(v) for v in losses):
        raise AssertionError(f"model seed {s}: the training loss became NaN/inf: {losses}")
    return losses[-1]


def training_statistic(components: Mapping[str, Any], tol: Mapping[str, Any], seed: int) -> float:
    """Mean final training loss of ``train_seeds`` small ReLU ResNets of the student's.

    Model ``k`` (seed ``seed + k * seed_stride``): ``build_resnet(train_blocks, train_width, 2, 1)``
    with ReLU and He normal, compiled with ``Adam(train_lr)`` and binary cross-entropy, trained by
    ``fit`` for ``train_steps`` full-batch steps (no shuffling, eager) on the spirals drawn with
    ``seed``. Its final loss is the loss of the last step.

    Returns
    -------
    float
        The mean final loss; smaller is better (chance level: ln 2).
    """
    return _mean_over_models(tol, seed, "train_seeds", lambda X, Y, s: _final_loss(components, tol, X, Y, s))


def gradient_statistics(components: Mapping[str, Any], tol: Mapping[str, Any], seeds) -> list[float]:
    """:func:`gradient_statistic` of each seed of ``seeds``, the same floats, the ResNets redrawn where they can be
    (:func:`.nets.resnet`): what calibration runs."""
    return [_gradient_ratio(components, tol, int(seed), redraw=True) for seed in seeds]


def training_statistics(components: Mapping[str, Any], tol: Mapping[str, Any], seeds) -> list[float]:
    """:func:`training_statistic` of each seed of ``seeds``, the same floats, each architecture's training traced
    once (:mod:`.training`): what calibration runs."""
    return [_mean_over_models(tol, int(seed), "train_seeds",
                              lambda X, Y, s: _final_loss(components, tol, X, Y, s, traced=True)) for seed in seeds]


CHECKS = (
    Check(name="q2 first-layer gradient, ResNet vs plain (mean log10 ratio)", test="test_resnet_gradient",
          statistic=gradient_statistic, full="grad_log10_ratio_full", zero="grad_log10_ratio_zero",
          reference=reference, batched=gradient_statistics),
    Check(name="q2 mean final training loss of small ReLU ResNets", test="test_resnet_trains",
          statistic=training_statistic, full="train_loss_full", zero="train_loss_zero", reference=reference,
          batched=training_statistics),
    Check(name="q3 seed 001's grid: margin of the two names (log10)", test="test_grid_statement",
          statistic=grid.grid_margin, full="grid_log10_margin_min", zero=None, reference=grid.reference),
    Check(name="q2 seed 000's spirals: mean test accuracy of deep tanh ResNets", test="test_resnet_learns_spirals",
          statistic=spirals_accuracy, full="spirals_acc_full", zero="spirals_acc_zero", reference=reference,
          batched=spirals_accuracies),
)
