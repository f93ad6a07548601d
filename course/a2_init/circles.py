"""Seed 004's circles experiment as a2_init's hidden tests run it: tanh nets trained side by side.

The vanishing-gradients lab of seed 004 trains a tanh MLP with 5 units per hidden layer and a sigmoid
output on two noisy concentric circles (1000 points, the first 500 train, the other 500 test) with
binary cross-entropy and SGD (learning rate 0.01, momentum 0.9, batches of 32). Its findings, each a
hidden test of a2_init:

* with ``RandomUniform(0, 1)`` kernels, the net with ONE hidden layer learns (slowly) and the net with
  FIVE stays at chance (:func:`depth_gap`, the student's ``random_uniform`` drawing the kernels);
* Glorot's kernels make the five-layer net learn (:func:`deep_accuracy`, the student's ``glorot_uniform``).

``members`` nets of one depth train as ONE Keras model with a member axis
(:class:`gradkit.ensemble.EnsembleDense`; the loss is the sum of the members' own mean losses, so each
member's gradient is its own). Every net of a statistic sees the same data in the same batch order; only
the kernels differ. Shapes: kernels ``(in, out, members)``, inputs ``(n, 2, members)``.
"""
from __future__ import annotations

from typing import Callable, Mapping

import keras
import numpy as np
from keras import ops

from gradkit._ensemble_layers import EnsembleDense, derive_seed
from gradkit.data import circles
from gradkit.guard import time_limit

__all__ = ["Draw", "train_nets", "deep_accuracy", "depth_gap"]

#: ``draw(shapes_and_seeds) -> kernels``: the initialiser under test, called once for all kernels of a
#: statistic (one guarded call); returns float arrays of the asked shapes
Draw = Callable[[list[tuple[tuple[int, int], int]]], list[np.ndarray]]


def _summed_bce(y_true, y_pred):  # sum over members of each member's mean loss: members train independently
    return ops.sum(ops.binary_crossentropy(ops.cast(y_true, y_pred.dtype), y_pred), axis=(1, 2))


def train_nets(draw: Draw, depth: int, *, epochs: int, tol: Mapping, seed: int, stream: tuple[int, ...]) -> np.ndarray:
    """Test accuracy of each of ``circles_members`` nets with ``depth`` tanh layers, shape ``(members,)``.

    Kernel ``j`` of layer ``l`` is drawn with seed ``derive_seed(seed, *stream, l, j)``; the data
    (``derive_seed(seed, 0)``) and the batch order (``default_rng([seed, 2])``, one permutation per
    epoch) depend on ``seed`` only; Keras' global seed is set to ``derive_seed(seed, 3)`` before the model
    is built (biases start at zero, so nothing else is drawn).
    """
    m, width, n_train = tol["circles_members"], tol["circles_width"], tol["circles_n_train"]
    keras.utils.set_random_seed(derive_seed(seed, 3))
    x, y = circles(tol["circles_samples"], tol["circles_noise"], rng=derive_seed(seed, 0))
    x_tr, y_tr, x_te, y_te = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    h = inputs = keras.Input((2, m))
    for layer in range(depth + 1):
        h = EnsembleDense(1 if layer == depth else width, m, activation="sigmoid" if layer == depth else "tanh",
                          kernel_initializer="zeros", name=f"layer_{layer + 1}")(h)
    model = keras.Model(inputs, h)
    denses = model.layers[1:]
    shapes = [tuple(int(s) for s in dense.kernel.shape[:2]) for dense in denses]
    draws = draw([(shape, derive_seed(seed, *stream, layer, j))
                  for layer, shape in enumerate(shapes) for j in range(m)])
    for layer, dense in enumerate(denses):
        dense.kernel.assign(np.stack(draws[layer * m:(layer + 1) * m], axis=-1).astype("float32"))
    model.compile(optimizer=keras.optimizers.SGD(tol["circles_lr"], momentum=tol["circles_momentum"]),
                  loss=_summed_bce, steps_per_execution=tol["circles_steps_per_execution"])
    rng = np.random.default_rng([seed, 2])
    order = np.concatenate([rng.permutation(n_train) for _ in range(epochs)])  # a shuffle per epoch
    xs = np.repeat(x_tr[order][:, :, None], m, axis=2)
    ys = np.repeat(y_tr[order][:, None, None], m, axis=2)
    with time_limit(tol["train_timeout_s"], what=f"training the {depth}-layer circles nets"):
        model.fit(xs, ys, batch_size=tol["circles_batch"], epochs=1, shuffle=False, verbose=0)
    p = model.predict(np.repeat(x_te[:, :, None], m, axis=2), batch_size=len(x_te), verbose=0)[:, 0, :]
    return np.mean((p > 0.5) == (y_te[:, None] > 0.5), axis=0)


def deep_accuracy(draw: Draw, tol: Mapping, seed: int) -> float:
    """Mean test accuracy of ``circles_members`` nets with ``circles_depth`` layers after ``circles_epochs``."""
    return float(np.mean(train_nets(draw, tol["circles_depth"], epochs=tol["circles_epochs"], tol=tol, seed=seed,
                                     stream=(1,))))


def depth_gap(draw: Draw, tol: Mapping, seed: int) -> float:
    """Mean test accuracy of the shallow nets minus that of the deep ones, both ``gap_epochs`` epochs.

    Depths ``gap_depths`` (shallow, deep); the two sets of nets share data and batch order (a paired
    comparison), their kernels come from the streams ``(4, depth)``.
    """
    shallow, deep = (float(np.mean(train_nets(draw, d, epochs=tol["gap_epochs"], tol=tol, seed=seed, stream=(4, d))))
                     for d in tol["gap_depths"])
    return shallow - deep
