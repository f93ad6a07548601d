"""Statistics of the stochastic hidden tests of assignment a3_dying_relu (q4, the study).

Both q4 hidden tests run the student's ``run_study`` (seed 002's dying-ReLU study after Lu et
al. 2019) on ``study_members`` networks for ``study_epochs`` epochs with the per-submission seed
and score a collapse rate by band (:mod:`gradkit_grader.bands`):

* :func:`relu_rate`: the ReLU collapse rate; larger is right. Exact side condition: every
  network that is *born dead* under that seed (output exactly 0 on the grid at initialisation;
  no gradient can ever reach its hidden layers) has an exactly constant output in the result,
  which holds when ``seed`` is forwarded to ``collapse_rate``.
* :func:`leaky_rate`: the collapse rate with the student's ``leaky_relu``; smaller is right.
  Diverged networks (non-finite output or loss) count as failures too.

Both check the plumbing first (members, epochs and confidence forwarded, flags that agree with
the outputs wherever the answer is unambiguous); a failure there fails every band case with the
message. The rates themselves are computed from the study's outputs with the definition
(:func:`.reference.constant_members`, tolerances.yml ``rtol``), so a detector that errs only near
the threshold (Q2's business, graded there) does not move them. The members of one study are
i.i.d. (each has its own data, initial weights and batch order, :mod:`gradkit.ensemble`), so a
correct submission's count is Binomial(``study_members``, p); NOTES.md states p, measured on
the reference components below, and the bounds.

Calibration runs each check's statistic seed by seed (:func:`each_seed`, the checks' ``batched``)
inside :func:`gradkit.ensemble.reuse_models`, so the studies of one chunk of seeds train on one traced
model instead of tracing a new one per study: the same graph from the same initial state, the same
values bit for bit (tests/test_batched_a3.py), 1.25-1.6x faster per run (NOTES.md, Calibration).
"""
from __future__ import annotations

import math
import threading
from functools import partial
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from keras import ops

from gradkit.activations import ACTIVATIONS
from gradkit.ensemble import INTERVAL, build_ensemble_mlp, reseed_ensemble, reuse_models
from gradkit.guard import student_call
from gradkit.stats import wilson_interval
from gradkit_grader.course.a3_dying_relu import reference as reference_answers
from gradkit_grader.globalseed import set_global_seed
from gradkit_grader.seeding import seed_in_failures
from gradkit_grader.statistic import Check

__all__ = ["study_result", "born_dead", "relu_rate", "leaky_rate", "each_seed", "reference", "CHECKS"]


def study_result(components: Mapping[str, Any], tol: Mapping[str, Any], seed: int, activation: Any,
                 what: str, *, pass_confidence: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the student's ``run_study(activation, n, epochs=, seed=, confidence=, progress=False)``.

    Parameters
    ----------
    components : mapping
        ``"run_study"``: the student's function.
    tol : mapping
        The values of tolerances.yml (``study_members``, ``study_epochs``,
        ``study_confidence``, ``study_timeout_s``, ``grid_points``, ``rtol``,
        ``live_range_fraction``).
    seed : int
        The study's seed (forwarded to ``run_study``; also Keras' global seed).
    activation : str or callable
        What ``run_study`` receives as its activation.
    what : str
        How messages name this call.
    pass_confidence : bool
        Pass ``confidence=study_confidence``; otherwise leave it out, so the interval must be at the
        signature's default, ``default_confidence``.

    Returns
    -------
    collapsed, flat, diverged : np.ndarray of bool, shape ``(study_members,)``
        Collapsed by the definition (range of the returned outputs <= ``rtol`` x the target's),
        exactly constant output, diverged (as the result reports it).

    Raises
    ------
    AssertionError
        When the call fails or times out, the result shows that ``members``, ``epochs`` or
        ``confidence`` were not forwarded, or its flags contradict its own outputs (an exactly
        constant network not collapsed, or one varying by ``live_range_fraction`` of the target's
        range collapsed).
    """
    n, epochs = tol["study_members"], tol["study_epochs"]
    conf = tol["study_confidence"] if pass_confidence else tol["default_confidence"]
    set_global_seed(seed)
    extra = {"confidence": conf} if pass_confidence else {}
    res = student_call(components["run_study"], activation, n, epochs=epochs, seed=seed, progress=False, what=what,
                       timeout_s=tol["study_timeout_s"], **extra)
    missing = [a for a in ("rate", "ci", "n", "collapsed", "diverged", "losses") if not hasattr(res, a)]
    assert not missing, (f"{what} must return the CollapseResult of gradkit.ensemble.collapse_rate; "
                         f"got {type(res).__name__} without .{', .'.join(missing)}")
    collapsed = np.asarray(res.collapsed, dtype=bool)
    diverged = np.asarray(res.diverged, dtype=bool)
    assert collapsed.shape == diverged.shape == (n,), (
        f"{what} with members={n} gave {collapsed.shape} collapse flags instead of ({n},): forward `members`")
    losses = np.shape(res.losses) if res.losses is not None else None
    assert losses == (epochs, n), (
        f"{what} with epochs={epochs}: the loss history has shape {losses}, expected ({epochs}, {n}) "
        "(one row per epoch): forward `epochs` to collapse_rate")
    k = int(collapsed.sum())
    assert int(res.n) >= 1 and np.allclose(res.ci, wilson_interval(k, int(res.n), conf)), (
        f"{what}: res.ci = {tuple(np.round(res.ci, 4))} is not the {conf:.2%} Wilson interval of "
        f"{k}/{res.n}: " + ("forward `confidence` to collapse_rate" if pass_confidence else
                            f"called without `confidence`, run_study must use its default, {conf}"))
    outputs = np.asarray(res.outputs, dtype=np.float64)
    assert outputs.shape == (tol["grid_points"], n), (
        f"{what}: outputs of shape {outputs.shape}, expected ({tol['grid_points']}, {n})")
    scale = reference_answers.target_range("abs", tol["grid_points"])
    spread = np.ptp(outputs, axis=0) / scale
    flat = ~diverged & (spread == 0.0)
    live = ~diverged & (spread >= tol["live_range_fraction"])
    assert collapsed[flat].all() and not collapsed[live].any(), (
        f"{what}: of the networks whose output is exactly constant on the grid, {int(np.sum(~collapsed[flat]))} "
        f"are not flagged collapsed, and of those whose output range is >= {tol['live_range_fraction']:g} x the "
        f"target's, {int(np.sum(collapsed[live]))} are flagged collapsed. Use your is_collapsed with "
        "TARGET_RANGE as the detector (collapsed = range <= rtol * target range).")
    return reference_answers.constant_members(outputs, rtol=tol["rtol"], scale=scale) & ~diverged, flat, diverged


def born_dead(tol: Mapping[str, Any], seed: int) -> np.ndarray:
    """Which of the ``study_members`` ReLU networks of ``collapse_rate(..., seed=seed)`` are born dead.

    Rebuilds the study's ensemble (``build_ensemble_mlp`` with ``study_depth``, ``study_width``
    and the same seed: the same initial weights) and evaluates it on the study's grid. Output
    exactly 0 everywhere means the last hidden layer outputs 0 for every input (biases are 0, so
    the layers are positively homogeneous and the grid's two signs cover the interval): no
    gradient reaches a hidden weight, only the output bias trains, and the trained network is
    exactly constant. Returns a bool array ``(study_members,)``. The ensemble of the previous call
    is kept and redrawn for ``seed`` (:func:`gradkit.ensemble.reseed_ensemble`: the weights a new
    one draws) when its layout is this one's.
    """
    n = tol["study_members"]
    layout = (n, tol["study_depth"], tol["study_width"])
    grid = np.linspace(*INTERVAL, tol["grid_points"], dtype=np.float32)
    xg = np.broadcast_to(grid[:, None, None], (grid.size, 1, n))
    with _INITIAL_LOCK:
        if _INITIAL[0] == layout:
            model = _INITIAL[1]
            reseed_ensemble(model, seed)
        else:
            model = build_ensemble_mlp(*layout, activation="relu", seed=seed)
            _INITIAL[:] = [layout, model]
        out = ops.convert_to_numpy(model(xg, training=False))[:, 0, :]
    return np.all(out == 0.0, axis=0)


_INITIAL: list = [None, None]  # born_dead's ensemble: [(members, depth, width), model]
_INITIAL_LOCK = threading.Lock()


def relu_rate(components: Mapping[str, Any], tol: Mapping[str, Any], seed: int) -> float:
    """The ReLU collapse rate of the student's study (collapsed / ``study_members``).

    ``components``: ``"run_study"``. Fails (AssertionError) on broken plumbing, or when a
    network born dead under ``seed`` has a non-constant output in the result (``seed`` not
    forwarded: the study trained other networks).
    """
    def compute():
        collapsed, flat, _ = study_result(components, tol, seed, "relu", "run_study('relu', ...)")
        dead = born_dead(tol, seed)
        missed = int(np.sum(dead & ~flat))
        assert missed == 0, (
            f"{missed} of the {int(dead.sum())} ReLU networks that are born dead with seed {seed} (output "
            "exactly 0 everywhere at initialisation, so they can never train) have a non-constant output in "
            "your result: your study did not train these ReLU networks. Forward `seed` (and the activation) "
            "to collapse_rate.")
        return float(collapsed.sum()) / tol["study_members"]
    with seed_in_failures(seed):
        return compute()


def leaky_rate(components: Mapping[str, Any], tol: Mapping[str, Any], seed: int) -> float:
    """The failure rate of the study with the student's ``leaky_relu``: (collapsed + diverged) / n.

    ``components``: ``"run_study"`` and ``"leaky_relu"`` (passed as the activation).
    """
    def compute():
        assert callable(components.get("leaky_relu")), "leaky_relu (Q1) is not defined"
        collapsed, _, diverged = study_result(components, tol, seed, components["leaky_relu"],  # default confidence
                                              "run_study with your leaky_relu", pass_confidence=False)
        return float(np.sum(collapsed | diverged)) / tol["study_members"]
    with seed_in_failures(seed):
        return compute()


def each_seed(statistic: Callable[[Mapping[str, Any], Mapping[str, Any], int], float]):
    """The ``batched`` of a study check: ``statistic`` seed by seed inside
    :func:`gradkit.ensemble.reuse_models` (one traced model per study layout and activation).

    Returns ``batched(components, tol, seeds) -> list of float``; a seed whose statistic raises gives
    NaN, as :func:`gradkit_tools.calibrate.run_check` scores a failing run, so one failing seed does not
    send the whole chunk back to the path without reuse.
    """
    def batched(components: Mapping[str, Any], tol: Mapping[str, Any], seeds: Sequence[int]) -> list[float]:
        values = []
        with reuse_models():
            for seed in seeds:
                try:
                    values.append(float(statistic(components, tol, int(seed))))
                except Exception:  # noqa: BLE001 - a failing run is data (NaN), as in run_check
                    values.append(math.nan)
        return values
    batched.__name__ = batched.__qualname__ = f"{statistic.__name__}_each_seed"
    return batched


def reference(tol: Mapping[str, Any]) -> dict[str, Any]:
    """gradkit's own correct components: run_study, leaky_relu (slope ``default_slope``), is_collapsed."""
    slope = tol["default_slope"]
    leaky = ACTIVATIONS["leaky_relu"] if slope == 0.01 else partial(ops.leaky_relu, negative_slope=slope)
    return {"run_study": reference_answers.run_study, "leaky_relu": leaky,
            "is_collapsed": reference_answers.is_collapsed}


CHECKS = (
    Check(name="q4 ReLU collapse rate", test="test_run_study_relu", statistic=relu_rate,
          full="relu_rate_full", zero="relu_rate_zero", reference=reference, batched=each_seed(relu_rate)),
    Check(name="q4 leaky ReLU collapse rate", test="test_run_study_leaky", statistic=leaky_rate,
          full="leaky_rate_full", zero="leaky_rate_zero", reference=reference, batched=each_seed(leaky_rate)),
)
