"""a4_resnet's spirals test (``gradkit_grader.course.a4_resnet.spirals``): seed 000's finding graded by test accuracy.

* The stacked training is the training of each net alone: the student's nets, stacked into one member-axis
  model, end with the test-set probabilities each net gets when Keras trains it on its own (full-batch Adam,
  then its batch-normalisation statistics set to the training set's, as the notebook's ``RecalibrateBN``).
* ``spirals_accuracies`` (many seeds side by side, the nets redrawn from one built net: what calibration runs)
  gives, bit for bit, the values and the test-set probabilities of ``spirals_accuracy`` seed by seed (each net
  built: what a hidden test grades).
* A wrong answer loses points (the plain stack of the catalogue), and a network the stacking cannot take
  fails with an AssertionError that says what to change, not with a crash.

Small sizes (2 blocks, few steps, 8 nets per seed) keep this file fast; the real sizes are in tolerances.yml.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from gradkit_grader.bands import band_credit
from gradkit_grader.course.a4_resnet import spirals
from gradkit_grader.course.a4_resnet.reference import build_resnet
from gradkit_grader.course.a4_resnet.statistics import CHECKS, reference
from gradkit_tools.calibrate import run_check
from gradkit_tools.course import tolerances

CHECK = next(c for c in CHECKS if c.test == "test_resnet_learns_spirals")


def _small(**kw) -> dict:
    """The tolerances with the runs shrunk: 2 blocks, 50 steps, 100 points per arm (8 nets per seed, as graded)."""
    return {**tolerances("a4_resnet"), "spirals_blocks": 2, "spirals_steps": 50, "spiral_points": 100, **kw}


def test_the_check_is_batched_and_banded():
    tol = tolerances("a4_resnet")
    assert CHECK.statistic is spirals.spirals_accuracy and CHECK.batched is spirals.spirals_accuracies
    assert CHECK.larger_is_better(tol) and tol["spirals_acc_zero"] < tol["spirals_acc_full"] < 1
    assert tol["spirals_members"] % 8 == 0  # a seed's nets fill whole vector lanes (module docstring)
    assert tol["spirals_steps"] % tol["spirals_steps_per_execution"] == 0


def test_stacked_nets_train_as_each_net_alone(predictions):
    """One seed's nets trained stacked against the same nets (same seeds) trained one by one with Keras' own
    layers (the first two: each trace costs ~15 s): the test-set probabilities agree to 1e-3 (BN's statistics
    are summed in another order than Keras' layer's, tests/test_stacking.py; 20 steps keep the chaotic training
    from amplifying that)."""
    tol = _small(spirals_steps=20, spirals_steps_per_execution=10)
    value = spirals.spirals_accuracy(reference(tol), tol, 5)
    (stacked,) = predictions
    x_tr, x_te, y_tr, y_te = spirals.spirals_split(tol, 5)
    assert stacked.shape == (len(x_te), tol["spirals_members"])
    right = (stacked > 0.5) == (y_te[:, None] > 0.5)
    assert value == float(np.mean(np.mean(right, axis=0)))  # the statistic is the mean of these nets' accuracies
    for k, (net, _) in enumerate(spirals._nets(reference(tol), tol, 5)[:2]):
        net.compile(optimizer=keras.optimizers.Adam(tol["spirals_lr"]), loss="binary_crossentropy")
        net.fit(x_tr, y_tr[:, None], batch_size=len(x_tr), epochs=tol["spirals_steps"], shuffle=False, verbose=0)
        bns = [la for la in net._flatten_layers(include_self=False) if isinstance(la, layers.BatchNormalization)]
        probe = keras.Model(net.inputs, [bn.input for bn in bns])  # the notebook's recalibrate_batch_norm
        for bn, a in zip(bns, probe(x_tr, training=True)):
            a = keras.ops.convert_to_numpy(a)
            bn.moving_mean.assign(a.mean(axis=0))
            bn.moving_variance.assign(a.var(axis=0))
        p = keras.ops.convert_to_numpy(net(x_te, training=False))[:, 0]
        np.testing.assert_allclose(stacked[:, k], p, rtol=0, atol=1e-3)


def test_batched_values_equal_the_per_seed_statistic(predictions):
    """3 seeds in chunks of 2 and 1, against the statistic seed by seed: the same floats, and every net's
    test-set probabilities bit for bit (the accuracies alone would hide a last-bit difference)."""
    tol, seeds = _small(), [11, 2024, 77]
    alone = [CHECK.statistic(reference(tol), tol, s) for s in seeds]
    p_alone = np.concatenate(predictions, axis=1)
    predictions.clear()
    together = run_check(CHECK, tol, seeds, batch_runs=2)
    assert len(predictions) == 2  # two chunks, each one stacked model
    assert together.tolist() == alone
    assert np.array_equal(np.concatenate(predictions, axis=1), p_alone)
    from gradkit_grader.course.a4_resnet import grid

    assert any(key[:3] == ("build_resnet", build_resnet, spirals._args(tol)) and inits is not None  # redrawn
               for key, (_, inits) in grid._TEMPLATES.items())


def _plain_stack(depth, width, input_dim, output_dim, *, activation="relu", initializer="he_normal",
                 output_activation="sigmoid", seed=0, name="resnet"):
    """The catalogue's wrong_resnet_plain_stack: 2 x depth plain Dense layers, no skips, no BN."""
    from gradkit.initializers import get_initializer

    x = inp = keras.Input((input_dim,))
    for i in range(2 * depth):
        x = layers.Dense(width, activation=activation, kernel_initializer=get_initializer(initializer, seed + i))(x)
    out = layers.Dense(output_dim, activation=output_activation,
                       kernel_initializer=get_initializer(initializer, seed + 2 * depth))(x)
    return keras.Model(inp, out, name=name)


def test_a_plain_stack_loses_the_points():
    """At the graded sizes, seed 0: the plain stack of 30 tanh layers earns no credit; the solution full."""
    tol = tolerances("a4_resnet")
    wrong = spirals.spirals_accuracy({"build_resnet": _plain_stack}, tol, 0)
    assert band_credit(wrong, zero=tol["spirals_acc_zero"], full=tol["spirals_acc_full"]) < 1 / 4, wrong  # 0 of 4


def test_a_net_without_skips_fails_before_training():
    """The hidden test first requires an Add layer (``require_skips``): the plain stack and a plain 15-layer tanh
    MLP (gradkit's build_mlp given as build_resnet, which reaches the band by accuracy) fail with the reason
    and the seed; the solution passes the check."""
    from gradkit.models import build_mlp

    def mlp(depth, width, input_dim, output_dim, **kw):
        return build_mlp(depth, width, input_dim=input_dim, output_dim=output_dim, **kw)

    tol = _small()
    spirals.require_skips({"build_resnet": build_resnet}, tol, 3)  # no error
    for build in (_plain_stack, mlp):
        with pytest.raises(AssertionError, match=r"has no Add layer: this test trains ResNets[\s\S]*hidden-test seed"):
            spirals.require_skips({"build_resnet": build}, tol, 3)


def test_a_network_that_cannot_be_stacked_fails_with_a_message():
    """A Dropout layer (no member-axis version) or a raw tensor op: an AssertionError naming the layer and
    saying what to use, before any training."""
    def with_dropout(depth, width, input_dim, output_dim, **kw):
        model = build_resnet(depth, width, input_dim, output_dim, **kw)
        return keras.Sequential([model, layers.Dropout(0.1)])

    def times_two(depth, width, input_dim, output_dim, **kw):
        model = build_resnet(depth, width, input_dim, output_dim, **kw)
        return keras.Model(model.inputs, model.outputs[0] * 2.0)

    tol = _small()
    for build in (with_dropout, times_two):
        with pytest.raises(AssertionError, match=r"cannot do so with yours: .*keras\.layers Dense, "
                                                 r"BatchNormalization, Activation and Add[\s\S]*hidden-test seed"):
            spirals.spirals_accuracy({"build_resnet": build}, tol, 3)
