"""Statistics of the hidden tests of a1_clipping that train (exploding gradients, clipping).

Two hidden tests of a1_clipping train Keras models with the student's code, on inputs drawn
from the per-submission seed (:func:`gradkit_grader.seeding.submission_seed`):

* ``test_training_loop_matches_keras`` (q1, pass/fail): a custom SGD loop that clips with the
  student's ``clip_by_global_norm`` must take the same steps as Keras'
  ``SGD(global_clipnorm=c)``; statistic :func:`loop_max_weight_diff`.
* ``test_optimizer_converges_band_1..4`` (q2, 4 bands): seed 004's exploding regression
  trained with the student's ``make_clipped_optimizer()``; statistic :func:`converge_log10_mse`.

Each statistic has the signature ``statistic(components, tol, seed) -> float``; ``components``
maps the student's names to objects, ``tol`` is the values of tolerances.yml.
:func:`reference` gives gradkit's own correct components, for seed sweeps and calibration.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import keras
import numpy as np
from keras import ops

from gradkit import diagnostics
from gradkit.data import linear_explode
from gradkit.guard import student_call, time_limit
from gradkit_grader.statistic import Check

__all__ = ["CHECKS", "clip_by_global_norm", "converge_band_text", "converge_log10_mse", "fit_line",
           "loop_max_weight_diff", "reference"]


def clip_by_global_norm(grads: list, max_norm: float) -> list:
    """gradkit's reference: scale every tensor of ``grads`` by ``max_norm / max(N, max_norm)``.

    Parameters
    ----------
    grads : list of tensors
        Gradients of any shapes.
    max_norm : float
        Threshold ``c > 0`` on the global norm ``N`` (L2 norm of all entries together).

    Returns
    -------
    list of tensors
        Same shapes; unchanged when ``N <= c`` (also for ``N = 0``), global norm ``c`` otherwise.
    """
    tensors = [ops.convert_to_tensor(g) for g in grads]
    total = ops.sqrt(ops.sum(ops.stack([ops.sum(ops.square(t)) for t in tensors])))
    scale = max_norm / ops.maximum(total, max_norm)
    return [t * ops.cast(scale, t.dtype) for t in tensors]


def reference(tol: Mapping[str, Any]) -> dict[str, Callable]:
    """gradkit's own correct components: the clip above and an ``SGD(clipnorm=1)`` factory.

    ``clipnorm=1`` is the measured centre of the working thresholds (NOTES.md, q2); on the
    line model (one number per variable) it takes the same steps as ``clipvalue=1``.
    """
    return {"clip_by_global_norm": clip_by_global_norm,
            "make_clipped_optimizer": lambda: keras.optimizers.SGD(learning_rate=tol["learning_rate"],
                                                                   clipnorm=1.0)}


# --------------------------------------------------------------------------- q2: convergence

def fit_line(optimizer: Any, epochs: int, batch_size: int, seed: int) -> tuple[float, float, float]:
    """Train seed 004's ``Dense(1)`` on ``y = 5 + 10 x`` (x = 0..99) as the notebook's ``train_line``.

    Parameters
    ----------
    optimizer : keras.optimizers.Optimizer
        A fresh optimizer (it is bound to the new model).
    epochs, batch_size : int
        ``epochs`` reshufflings of the 100 points, fed as one stream of batches.
    seed : int
        Keras seed, Glorot seed of the kernel and NumPy seed of the batch order.

    Returns
    -------
    (mse, w, b) : tuple of float
        Final MSE on all 100 points (float64; NaN/inf when training exploded), slope and intercept.
    """
    x, y = linear_explode()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(x)) for _ in range(epochs)])
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(
        1, kernel_initializer=keras.initializers.GlorotUniform(seed))])
    model.compile(optimizer=optimizer, loss="mse", steps_per_execution=len(x) // batch_size)
    model.fit(x[order], y[order], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    w = float(ops.convert_to_numpy(model.layers[-1].kernel)[0, 0])
    b = float(ops.convert_to_numpy(model.layers[-1].bias)[0])
    with np.errstate(over="ignore", invalid="ignore"):
        mse = float(np.mean((w * x.astype(np.float64) + b - y.astype(np.float64)) ** 2))
    return mse, w, b


def converge_log10_mse(components: Mapping[str, Any], tol: Mapping[str, Any], seed: int) -> float:
    """log10 of the worst final MSE of ``tol["fit_runs"]`` trainings with the student's optimizer.

    Run ``k`` (0-based) calls ``make_clipped_optimizer()`` afresh and trains a copy of what it
    returns (rebuilt from its configuration) with :func:`fit_line` and seed ``seed + k`` for
    ``tol["fit_epochs"]`` epochs. Prints one line per
    run (MSE, w, b), so a student sees where the line ended.

    Raises
    ------
    AssertionError
        The function is missing, raises, runs past ``tol["call_timeout_s"]`` (all runs:
        ``tol["fit_timeout_s"]``), returns no Keras optimizer, Keras cannot train with it, or the
        loss becomes NaN/inf (the message says "NaN").
    """
    make = components.get("make_clipped_optimizer")
    worst = 0.0
    with time_limit(tol["fit_timeout_s"], what="training with make_clipped_optimizer()"):
        for k in range(tol["fit_runs"]):
            opt = student_call(make, timeout_s=tol["call_timeout_s"], what="make_clipped_optimizer")
            if not isinstance(opt, keras.optimizers.Optimizer):
                raise AssertionError(f"make_clipped_optimizer() must return a Keras optimizer, "
                                     f"got {type(opt).__name__}")
            # a copy from the configuration, as the harness gets it from the student's kernel: in process
            # and in grading alike, training does not depend on whether the same object came back twice
            # (test_optimizer_configuration checks that)
            opt = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
            try:
                mse, w, b = fit_line(opt, tol["fit_epochs"], tol["fit_batch_size"], seed + k)
            except Exception as exc:  # noqa: BLE001 - the student's optimizer broke Keras' fit
                raise AssertionError(f"training with your optimizer failed: {type(exc).__name__}: {exc}") from None
            print(f"run {k + 1} (seed {seed + k}): final MSE {mse:.4g}, w = {w:.4g}, b = {b:.4g} "
                  f"(target w = 10, b = 5)")
            if not math.isfinite(mse):
                raise AssertionError(f"run {k + 1}: the loss became NaN/inf (w={w:.3g}, b={b:.3g}): the "
                                     f"optimizer still explodes; set a clipping argument")
            worst = max(worst, mse)
    return math.log10(max(worst, np.finfo(np.float64).tiny))


def converge_band_text(value: float, tol: Mapping[str, Any]) -> tuple[str, str]:
    """``(what, hint)`` for :func:`gradkit_grader.bands.assert_band_step` on a :func:`converge_log10_mse` value:
    the statistic named with its MSE, and the band in MSE units with what to change."""
    full, zero = 10.0 ** tol["fit_log10_mse_full"], 10.0 ** tol["fit_log10_mse_zero"]
    what = (f"log10 of the worst final MSE of your optimizer over {tol['fit_runs']} runs of "
            f"{tol['fit_epochs']} epochs (MSE {10.0 ** value:.4g})")
    hint = (f"In MSE: full credit at <= {full:.4g}, none at >= {zero:.4g} (predicting the mean of y), one "
            f"part more per factor {(zero / full) ** 0.25:.3g} in between. Each step moves a weight by at "
            f"most lr * threshold: if w ended far from 10 the threshold is too small to get there in time; "
            f"if w is close to 10 but the MSE is large, it is too large and the steps overshoot.")
    return what, hint


# --------------------------------------------------------------------------- q1: training loop

def _loop_model(tol: Mapping[str, Any], seed: int) -> keras.Model:
    """The loop test's tanh MLP; layer ``k``'s Glorot seed is ``seed + k``."""
    inputs = keras.Input((tol["loop_features"],))
    h = inputs
    for k, width in enumerate(tol["loop_widths"]):
        h = keras.layers.Dense(width, activation="tanh",
                               kernel_initializer=keras.initializers.GlorotUniform(seed + k))(h)
    out = keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(seed + len(tol["loop_widths"])))(h)
    return keras.Model(inputs, out)


def loop_max_weight_diff(components: Mapping[str, Any], tol: Mapping[str, Any], seed: int) -> float:
    """Largest ``|w_student - w_keras|`` after a clipped SGD loop with the student's clip.

    For run ``r`` in ``range(tol["loop_runs"])`` (seed ``s = seed + r * tol["loop_seed_stride"]``):
    data ``x ~ N(0, 1)`` of shape ``(loop_n, loop_features)``, ``y = loop_target_scale * sum(x)
    + loop_target_offset``; two copies of :func:`_loop_model` take ``tol["loop_steps"]`` full-batch
    SGD steps (``loop_lr``), one with Keras' ``global_clipnorm=loop_max_norm``, one with plain SGD
    on ``clip_by_global_norm(grads, loop_max_norm)``. Returns the maximum over runs and variables.

    Raises
    ------
    AssertionError
        The clip is missing, raises, times out, returns something an optimizer cannot apply, or
        the student's weights become NaN/inf.
    """
    clip = components.get("clip_by_global_norm")
    lr, c = tol["loop_lr"], tol["loop_max_norm"]
    worst = 0.0
    with time_limit(tol["loop_timeout_s"], what="the training-loop test"):
        for r in range(tol["loop_runs"]):
            s = seed + r * tol["loop_seed_stride"]
            keras.utils.set_random_seed(s)
            x = np.random.default_rng(s).normal(size=(tol["loop_n"], tol["loop_features"])).astype(np.float32)
            y = (tol["loop_target_scale"] * x.sum(axis=1, keepdims=True) + tol["loop_target_offset"]).astype(np.float32)
            ref, stu = _loop_model(tol, s), _loop_model(tol, s)
            opt_ref = keras.optimizers.SGD(learning_rate=lr, global_clipnorm=c)
            opt_stu = keras.optimizers.SGD(learning_rate=lr)
            for step in range(tol["loop_steps"]):
                g_ref = diagnostics.gradients(ref, x, y, "mse", include_bias=True).values()
                opt_ref.apply_gradients(zip([ops.convert_to_tensor(g) for g in g_ref], ref.trainable_variables))
                g_stu = list(diagnostics.gradients(stu, x, y, "mse", include_bias=True).values())
                clipped = student_call(clip, [ops.convert_to_tensor(g) for g in g_stu], c,
                                       timeout_s=tol["call_timeout_s"], what="clip_by_global_norm")
                if not isinstance(clipped, (list, tuple)) or len(clipped) != len(g_stu):
                    raise AssertionError(f"clip_by_global_norm must return a list with one tensor per "
                                         f"trainable variable ({len(g_stu)}), got {type(clipped).__name__}")
                variables = stu.trainable_variables
                try:
                    clipped = [ops.cast(ops.convert_to_tensor(t), v.dtype) for t, v in zip(clipped, variables)]
                    opt_stu.apply_gradients(zip(clipped, variables))
                except Exception as exc:  # noqa: BLE001 - reported as the student's mistake
                    raise AssertionError(f"the output of clip_by_global_norm could not be applied by an "
                                         f"optimizer (step {step}): {type(exc).__name__}: {exc}") from None
            for v_ref, v_stu in zip(ref.trainable_variables, stu.trainable_variables):
                a = np.asarray(ops.convert_to_numpy(v_ref), dtype=np.float64)
                b = np.asarray(ops.convert_to_numpy(v_stu), dtype=np.float64)
                if not np.all(np.isfinite(b)):
                    raise AssertionError(f"run {r + 1}: {v_stu.path} became NaN/inf in the training loop "
                                         f"with your clip_by_global_norm")
                worst = max(worst, float(np.max(np.abs(a - b))))
    return worst


CHECKS = (
    Check(name="q1 custom clipped SGD loop = Keras global_clipnorm", test="test_training_loop_matches_keras",
          statistic=loop_max_weight_diff, full="loop_max_weight_diff", zero=None, reference=reference),
    Check(name="q2 log10 worst final MSE of the clipped optimizer", test="test_optimizer_converges",
          statistic=converge_log10_mse, full="fit_log10_mse_full", zero="fit_log10_mse_zero",
          reference=reference),
)
