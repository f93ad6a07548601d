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
Each is the one-seed case of its batched form (:func:`converge_log10_mses`, :func:`loop_max_weight_diffs`,
the checks' ``batched``), which trains the runs of many seeds side by side
(:mod:`gradkit_grader.course.a1_clipping.runs`) and gives the same floats.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import keras
import numpy as np
from keras import ops

from gradkit.data import linear_explode
from gradkit.guard import StudentTimeout, student_call, time_limit
from gradkit_grader.course.a1_clipping.runs import Loops, fit_lines, group_key
from gradkit_grader.globalseed import set_global_seed
from gradkit_grader.statistic import Check

__all__ = ["CHECKS", "clip_by_global_norm", "converge_band_text", "converge_log10_mse", "converge_log10_mses",
           "loop_max_weight_diff", "loop_max_weight_diffs", "reference"]


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

def converge_log10_mses(components: Mapping[str, Any], tol: Mapping[str, Any], seeds: Sequence[int]) -> list[float]:
    """:func:`converge_log10_mse` of each seed of ``seeds`` (NaN where it raises), their runs trained together
    (:func:`gradkit_grader.course.a1_clipping.runs.fit_lines`)."""
    return [math.nan if isinstance(v, AssertionError) else v for v in _converge(components, tol, seeds)]


def converge_log10_mse(components: Mapping[str, Any], tol: Mapping[str, Any], seed: int) -> float:
    """log10 of the worst final MSE of ``tol["fit_runs"]`` trainings with the student's optimizer.

    Run ``k`` (0-based) calls ``make_clipped_optimizer()`` afresh (Keras' global seeds set to ``seed + k``
    first) and trains a copy of what it returns (rebuilt from its configuration) on seed 004's line with
    seed ``seed + k`` for ``tol["fit_epochs"]`` epochs in batches of ``tol["fit_batch_size"]``
    (:func:`gradkit_grader.course.a1_clipping.runs.fit_lines`); the runs whose copies may share a model
    (:func:`~gradkit_grader.course.a1_clipping.runs.per_variable`) train in one, the same floats as alone.
    Prints one line per run (MSE, w, b), so a student sees where the line ended. The one-seed case of
    :func:`converge_log10_mses`.

    Raises
    ------
    AssertionError
        The function is missing, raises, runs past ``tol["call_timeout_s"]`` (all runs:
        ``tol["fit_timeout_s"]``), returns no Keras optimizer, Keras cannot train with it, or the
        loss becomes NaN/inf (the message says "NaN").
    """
    (value,) = _converge(components, tol, [seed])
    if isinstance(value, AssertionError):
        raise value
    return value


def _make_optimizer(make: Any, tol: Mapping[str, Any]) -> Any:
    opt = student_call(make, timeout_s=tol["call_timeout_s"], what="make_clipped_optimizer")
    if not isinstance(opt, keras.optimizers.Optimizer):
        raise AssertionError(f"make_clipped_optimizer() must return a Keras optimizer, got {type(opt).__name__}")
    # a copy from the configuration, as the harness gets it from the student's kernel: in process and in
    # grading alike, training does not depend on whether the same object came back twice
    # (test_optimizer_configuration checks that)
    return keras.optimizers.deserialize(keras.optimizers.serialize(opt))


def _train_groups(opts: Mapping[tuple, Any], tol: Mapping[str, Any], seeds: Sequence[int]) -> dict:
    """``{(i, k): (w, b) or AssertionError}``: run ``k`` of seed ``seeds[i]`` trained with ``opts[i, k]``; runs
    whose optimizers have one :func:`group_key` in one model, a model that fails retried run by run."""
    groups: dict[str, list] = {}
    for ik, opt in opts.items():
        groups.setdefault(group_key(opt), []).append(ik)
    out = {}
    for members in groups.values():
        parts = [members]
        while parts:
            part = parts.pop()
            try:
                lines = fit_lines(opts[part[0]], tol["fit_epochs"], tol["fit_batch_size"],
                                  [seeds[i] + k for i, k in part])
            except StudentTimeout as exc:  # the time limit of all runs: nothing else is trained
                raise AssertionError(f"training with your optimizer failed: {type(exc).__name__}: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - the student's optimizer broke Keras' fit
                if len(part) > 1:
                    parts += [[ik] for ik in part]
                    continue
                lines = [AssertionError(f"training with your optimizer failed: {type(exc).__name__}: {exc}")]
            out.update(zip(part, lines))
    return out


def _converge(components: Mapping[str, Any], tol: Mapping[str, Any], seeds: Sequence[int]) -> list:
    """Per seed: :func:`converge_log10_mse`'s value, or the AssertionError it raises."""
    make, runs = components.get("make_clipped_optimizer"), tol["fit_runs"]
    opts, failed = {}, {}
    with time_limit(tol["fit_timeout_s"] * len(seeds), what="training with make_clipped_optimizer()"):
        for i, seed in enumerate(seeds):
            for k in range(runs):
                set_global_seed(seed + k)
                try:
                    opts[i, k] = _make_optimizer(make, tol)
                except StudentTimeout:
                    raise
                except AssertionError as exc:
                    failed[i, k] = exc
        trained = _train_groups(opts, tol, seeds)
    x, y = (a.astype(np.float64) for a in linear_explode())
    values = []
    for i, seed in enumerate(seeds):
        worst, value = 0.0, None
        for k in range(runs):
            line = failed.get((i, k)) or trained[i, k]
            if isinstance(line, AssertionError):
                value = line
                break
            w, b = line
            with np.errstate(over="ignore", invalid="ignore"):
                mse = float(np.mean((w * x + b - y) ** 2))
            print(f"run {k + 1} (seed {seed + k}): final MSE {mse:.4g}, w = {w:.4g}, b = {b:.4g} "
                  f"(target w = 10, b = 5)")
            if not math.isfinite(mse):
                value = AssertionError(f"run {k + 1}: the loss became NaN/inf (w={w:.3g}, b={b:.3g}): the "
                                       f"optimizer still explodes; set a clipping argument")
                break
            worst = max(worst, mse)
        values.append(value if value is not None else math.log10(max(worst, np.finfo(np.float64).tiny)))
    return values


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


def _loop_inits(tol: Mapping[str, Any], seed: int) -> list[np.ndarray]:
    """The starting weights of :func:`_loop_model` with ``seed`` (``trainable_variables`` order), drawn as
    its layers draw them."""
    sizes = [tol["loop_features"], *tol["loop_widths"], 1]
    out = []
    for k, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        kernel = keras.initializers.GlorotUniform(seed + k)((fan_in, fan_out), "float32")
        out += [np.asarray(ops.convert_to_numpy(kernel)), np.zeros(fan_out, np.float32)]
    return out


def loop_max_weight_diffs(components: Mapping[str, Any], tol: Mapping[str, Any], seeds: Sequence[int]) -> list[float]:
    """:func:`loop_max_weight_diff` of each seed of ``seeds`` (NaN where it raises), their runs' steps taken
    together (:class:`gradkit_grader.course.a1_clipping.runs.Loops`)."""
    return [math.nan if isinstance(v, AssertionError) else v for v in _loops(components, tol, seeds)]


def loop_max_weight_diff(components: Mapping[str, Any], tol: Mapping[str, Any], seed: int) -> float:
    """Largest ``|w_student - w_keras|`` after a clipped SGD loop with the student's clip.

    For run ``r`` in ``range(tol["loop_runs"])`` (seed ``s = seed + r * tol["loop_seed_stride"]``):
    data ``x ~ N(0, 1)`` of shape ``(loop_n, loop_features)``, ``y = loop_target_scale * sum(x)
    + loop_target_offset``; two copies of :func:`_loop_model` take ``tol["loop_steps"]`` full-batch
    SGD steps (``loop_lr``) on the gradient of the mean MSE (:func:`gradkit.diagnostics.gradients`),
    one with Keras' ``global_clipnorm=loop_max_norm``, one with plain SGD on
    ``clip_by_global_norm(grads, loop_max_norm)``. Returns the maximum over runs and variables. The
    one-seed case of :func:`loop_max_weight_diffs`: the steps of the runs are traced functions run as
    eager runs them (:func:`gradkit_grader.course.a1_clipping.runs.plain_graphs`), the clip called run by
    run with each step's gradients.

    Raises
    ------
    AssertionError
        The clip is missing, raises, times out, returns something an optimizer cannot apply, or
        the student's weights become NaN/inf.
    """
    (value,) = _loops(components, tol, [seed])
    if isinstance(value, AssertionError):
        raise value
    return value


def _clipped(clip: Any, grads: list, variables: list, c: float, step: int, tol: Mapping[str, Any]) -> list:
    """The student's clip of one run's gradients, as tensors of its variables' dtypes."""
    clipped = student_call(clip, grads, c, timeout_s=tol["call_timeout_s"], what="clip_by_global_norm")
    if not isinstance(clipped, (list, tuple)) or len(clipped) != len(grads):
        raise AssertionError(f"clip_by_global_norm must return a list with one tensor per "
                             f"trainable variable ({len(grads)}), got {type(clipped).__name__}")
    try:
        return [ops.cast(ops.convert_to_tensor(t), v.dtype) for t, v in zip(clipped, variables)]
    except Exception as exc:  # noqa: BLE001 - reported as the student's mistake
        raise AssertionError(f"the output of clip_by_global_norm could not be applied by an "
                             f"optimizer (step {step}): {type(exc).__name__}: {exc}") from None


def _loops(components: Mapping[str, Any], tol: Mapping[str, Any], seeds: Sequence[int]) -> list:
    """Per seed: :func:`loop_max_weight_diff`'s value, or the AssertionError it raises (a failing clip
    call raises for all seeds)."""
    clip = components.get("clip_by_global_norm")
    lr, c, per_seed = tol["loop_lr"], tol["loop_max_norm"], tol["loop_runs"]
    run_seeds = [seed + r * tol["loop_seed_stride"] for seed in seeds for r in range(per_seed)]
    with time_limit(tol["loop_timeout_s"] * len(seeds), what="the training-loop test"):
        xs = [np.random.default_rng(s).normal(size=(tol["loop_n"], tol["loop_features"])).astype(np.float32)
              for s in run_seeds]
        ys = [(tol["loop_target_scale"] * x.sum(axis=1, keepdims=True) + tol["loop_target_offset"]).astype(np.float32)
              for x in xs]
        loops = Loops.get(len(run_seeds), lambda s: _loop_model(tol, s),
                          (tol["loop_features"], tuple(tol["loop_widths"])), lr, c)
        loops.reset([_loop_inits(tol, s) for s in run_seeds])
        xs, ys = ops.convert_to_tensor(np.stack(xs)), ops.convert_to_tensor(np.stack(ys))
        for step in range(tol["loop_steps"]):
            grads = loops.ref_step(xs, ys)
            clipped = [_clipped(clip, g, loops.weights(r)[1], c, step, tol) for r, g in enumerate(grads)]
            if all(tuple(t.shape) == tuple(v.shape) for r, run in enumerate(clipped)
                   for t, v in zip(run, loops.weights(r)[1])):
                loops.stu_step(clipped)
                continue
            for r, run in enumerate(clipped):  # shapes Keras may broadcast or reject: eagerly, run by run
                try:
                    loops.opt_stu.apply_gradients(zip(run, loops.weights(r)[1]))
                except Exception as exc:  # noqa: BLE001 - reported as the student's mistake
                    raise AssertionError(f"the output of clip_by_global_norm could not be applied by an "
                                         f"optimizer (step {step}): {type(exc).__name__}: {exc}") from None
    values = []
    for i in range(len(seeds)):
        worst = 0.0
        for r in range(per_seed):
            ref, stu = loops.weights(i * per_seed + r)
            bad = next((v.path for v in stu if not np.all(np.isfinite(ops.convert_to_numpy(v)))), None)
            if bad is not None:
                worst = AssertionError(f"run {r + 1}: {bad} became NaN/inf in the training loop "
                                       f"with your clip_by_global_norm")
                break
            for v_ref, v_stu in zip(ref, stu):
                a = np.asarray(ops.convert_to_numpy(v_ref), dtype=np.float64)
                b = np.asarray(ops.convert_to_numpy(v_stu), dtype=np.float64)
                worst = max(worst, float(np.max(np.abs(a - b))))
        values.append(worst)
    return values


CHECKS = (
    Check(name="q1 custom clipped SGD loop = Keras global_clipnorm", test="test_training_loop_matches_keras",
          statistic=loop_max_weight_diff, full="loop_max_weight_diff", zero=None, reference=reference,
          batched=loop_max_weight_diffs),
    Check(name="q2 log10 worst final MSE of the clipped optimizer", test="test_optimizer_converges",
          statistic=converge_log10_mse, full="fit_log10_mse_full", zero="fit_log10_mse_zero",
          reference=reference, batched=converge_log10_mses),
)
