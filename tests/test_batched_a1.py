"""a1_clipping's batched statistics (course/a1_clipping/runs.py): many runs trained side by side give the
values the per-seed path gave, bit for bit.

The per-seed path is kept here as it was before the batched one (``_old_converge``, ``_old_loop``: one
``Sequential`` Dense(1) and ``fit`` per run; the eager loop of two models per run), and the stored
calibration (course/a1_clipping/calibration.json, computed by that path) is the other witness.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from gradkit import diagnostics
from gradkit.data import linear_explode
from gradkit_grader.course.a1_clipping import runs
from gradkit_grader.course.a1_clipping import statistics as stats
from gradkit_tools.calibrate import run_checks, spread_seeds, wrong_answers
from gradkit_tools.course import tolerances

ROOT = Path(__file__).resolve().parents[1]
STORED = json.loads((ROOT / "course/a1_clipping/calibration.json").read_text())
TOL = dict(tolerances("a1_clipping"))


def _stored(test: str) -> tuple[list[int], list[float]]:
    """The stored calibration's seeds and values of hidden test ``test``."""
    (entry,) = [v for k, v in STORED["checks"].items() if k.split(":")[0] == test]
    return spread_seeds(STORED["runs"], STORED["first_seed"]), entry["values"]


def _check(test: str):
    return next(c for c in stats.CHECKS if c.test == test)


# ------------------------------------------------------------------ the per-seed path, as it was

def _old_fit_line(optimizer, epochs: int, batch_size: int, seed: int) -> tuple[float, float]:
    x, y = linear_explode()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(x)) for _ in range(epochs)])
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(
        1, kernel_initializer=keras.initializers.GlorotUniform(seed))])
    model.compile(optimizer=optimizer, loss="mse", steps_per_execution=len(x) // batch_size)
    model.fit(x[order], y[order], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    dense = model.layers[-1]
    return float(ops.convert_to_numpy(dense.kernel)[0, 0]), float(ops.convert_to_numpy(dense.bias)[0])


def _old_converge(make, tol, seed: int) -> float:
    x, y = (a.astype(np.float64) for a in linear_explode())
    worst = 0.0
    for k in range(tol["fit_runs"]):
        opt = keras.optimizers.deserialize(keras.optimizers.serialize(make()))
        w, b = _old_fit_line(opt, tol["fit_epochs"], tol["fit_batch_size"], seed + k)
        with np.errstate(over="ignore", invalid="ignore"):
            mse = float(np.mean((w * x + b - y) ** 2))
        if not math.isfinite(mse):
            return math.nan
        worst = max(worst, mse)
    return math.log10(max(worst, np.finfo(np.float64).tiny))


def _old_loop(clip, tol, seed: int) -> float:
    lr, c = tol["loop_lr"], tol["loop_max_norm"]
    worst = 0.0
    for r in range(tol["loop_runs"]):
        s = seed + r * tol["loop_seed_stride"]
        x = np.random.default_rng(s).normal(size=(tol["loop_n"], tol["loop_features"])).astype(np.float32)
        y = (tol["loop_target_scale"] * x.sum(axis=1, keepdims=True) + tol["loop_target_offset"]).astype(np.float32)
        ref, stu = stats._loop_model(tol, s), stats._loop_model(tol, s)
        opt_ref, opt_stu = keras.optimizers.SGD(lr, global_clipnorm=c), keras.optimizers.SGD(lr)
        for _ in range(tol["loop_steps"]):
            g = diagnostics.gradients(ref, x, y, "mse", include_bias=True).values()
            opt_ref.apply_gradients(zip([ops.convert_to_tensor(a) for a in g], ref.trainable_variables))
            g = diagnostics.gradients(stu, x, y, "mse", include_bias=True).values()
            clipped = clip([ops.convert_to_tensor(a) for a in g], c)
            opt_stu.apply_gradients(zip([ops.cast(t, v.dtype) for t, v in zip(clipped, stu.trainable_variables)],
                                        stu.trainable_variables))
        for a, b in zip(ref.trainable_variables, stu.trainable_variables):
            a, b = (np.asarray(ops.convert_to_numpy(v), dtype=np.float64) for v in (a, b))
            if not np.all(np.isfinite(b)):
                return math.nan
            worst = max(worst, float(np.max(np.abs(a - b))))
    return worst


def _short(**changes) -> dict:
    return {**TOL, **changes}


# ------------------------------------------------------------------ fast

def test_checks_are_batched():
    assert _check("test_optimizer_converges").batched is stats.converge_log10_mses
    assert _check("test_training_loop_matches_keras").batched is stats.loop_max_weight_diffs


@pytest.mark.parametrize("test", ["test_optimizer_converges", "test_training_loop_matches_keras"])
def test_stored_values_two_seeds(test, capsys):
    """Two stored seeds in one call, and the first alone (the graded statistic): the stored floats."""
    seeds, values = _stored(test)
    check = _check(test)
    comps = check.reference(TOL)
    assert check.batched(comps, TOL, seeds[:2]) == values[:2]
    assert check.statistic(comps, TOL, seeds[0]) == values[0]


@pytest.mark.parametrize("name", runs._PER_VARIABLE)
def test_per_variable_optimizers_train_runs_as_alone(name):
    """Each optimizer that may share a model: 3 runs together (a clipnorm) = each run in its own model."""
    make = lambda: getattr(keras.optimizers, name)(clipnorm=0.5)  # noqa: E731
    assert runs.per_variable(make())
    seeds = [11, 12, 13]
    together = runs.fit_lines(make(), 3, 25, seeds)
    assert together == [_old_fit_line(make(), 3, 25, s) for s in seeds]


def test_global_clipnorm_trains_alone():
    """Global-norm clipping couples a model's variables: no shared model, its own group per run, and the
    statistic of such an optimizer (a correct answer of answers.yml) is still the per-seed one."""
    make = lambda: keras.optimizers.SGD(learning_rate=0.01, global_clipnorm=1.0)  # noqa: E731
    a, b = make(), make()
    assert not runs.per_variable(a) and runs.group_key(a) != runs.group_key(b)
    with pytest.raises(ValueError, match="couples"):
        runs.fit_lines(a, 2, 25, [1, 2])
    tol = _short(fit_epochs=40)
    comps = {"make_clipped_optimizer": make}
    assert stats.converge_log10_mses(comps, tol, [5, 9]) == [_old_converge(make, tol, 5), _old_converge(make, tol, 9)]


def test_exploding_optimizer_fails_alone_and_is_nan_batched(capsys):
    """Plain SGD explodes: the statistic raises its "NaN" message; batched, each seed's value is NaN (what a
    calibration records for a run that raises)."""
    comps = {"make_clipped_optimizer": lambda: keras.optimizers.SGD(learning_rate=0.01)}
    tol = _short(fit_epochs=20)
    with pytest.raises(AssertionError, match="NaN"):
        stats.converge_log10_mse(comps, tol, 3)
    assert all(math.isnan(v) for v in stats.converge_log10_mses(comps, tol, [3, 4]))


def test_broken_optimizer_message():
    comps = {"make_clipped_optimizer": lambda: "SGD"}
    with pytest.raises(AssertionError, match="must return a Keras optimizer"):
        stats.converge_log10_mse(comps, TOL, 3)


def test_wrong_clip_loop_equals_the_eager_loop():
    """A wrong clip (each tensor by its own norm): two seeds batched = the old eager loop, seed by seed."""
    def per_tensor(grads, max_norm):
        return [t * (max_norm / ops.maximum(ops.sqrt(ops.sum(ops.square(t))), max_norm)) for t in grads]

    tol = _short(loop_steps=8)
    seeds = [101, 202]
    got = stats.loop_max_weight_diffs({"clip_by_global_norm": per_tensor}, tol, seeds)
    assert got == [_old_loop(per_tensor, tol, s) for s in seeds]
    assert min(got) > tol["loop_max_weight_diff"]  # it is wrong, and the values show it


def test_malformed_clip_fails_alone():
    comps = {"clip_by_global_norm": lambda grads, c: grads[:-1]}
    with pytest.raises(AssertionError, match="one tensor per"):
        stats.loop_max_weight_diff(comps, _short(loop_steps=2), 7)


def test_plain_graphs_restores_grappler():
    import tensorflow as tf

    before = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
    with runs.plain_graphs():
        assert tf.config.optimizer.get_experimental_options()["disable_meta_optimizer"] is True
    assert tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False) == before


# ------------------------------------------------------------------ slow: the proofs of record

@pytest.mark.slow
@pytest.mark.parametrize("test", ["test_optimizer_converges", "test_training_loop_matches_keras"])
def test_stored_values_bit_equal(test, capsys):
    """24 stored seeds in chunks of 12 through calibration's own loop (run_checks): the stored floats."""
    seeds, values = _stored(test)
    check = _check(test)
    (got,), _ = run_checks([(check, check.reference(TOL))], TOL, seeds[:24], batch_runs=12)
    assert got.tolist() == values[:24]


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["wrong_q2_threshold_too_large", "wrong_q2_adam", "wrong_global_per_tensor_norm",
                                   "wrong_global_squared_norm"])
def test_wrong_answer_bit_equal(entry, capsys):
    """A power-study wrong answer of answers.yml, 4 seeds batched = the old per-seed path."""
    (check, _, comps), = [w for w in wrong_answers("a1_clipping") if w[1] == entry]
    seeds = spread_seeds(4, 31)
    (got,), _ = run_checks([(check, comps)], TOL, seeds, batch_runs=4)
    if check.test == "test_optimizer_converges":
        old = [_old_converge(comps["make_clipped_optimizer"], TOL, s) for s in seeds]
    else:
        old = [_old_loop(comps["clip_by_global_norm"], TOL, s) for s in seeds]
    assert np.array_equal(got, np.asarray(old), equal_nan=True)
