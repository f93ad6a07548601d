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
member's gradient is its own). Every net of one seed sees that seed's data in that seed's batch order;
only the kernels differ. The runs of several seeds (a calibration, :func:`depth_gaps`,
:func:`deep_accuracies`) train in the same model as further members, each with its own seed's data and
batch order: a seed's nets compute what they compute alone (bit for bit, measured against seed-by-seed runs
with 16 and 8 nets per seed; with 4 the test-set probabilities differed in the last bits, where a seed's nets
sit in the lanes of vectorised arithmetic, presumably), and one seed is the case a hidden test runs.
Shapes: kernels ``(in, out, seeds * members)``, inputs ``(n, 2, seeds)`` (repeated ``members`` times
inside the model, member ``i * members + j`` being net ``j`` of seed ``i``).
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import keras
import numpy as np
from keras import ops

from gradkit._ensemble_layers import EnsembleDense, derive_seed
from gradkit.data import circles
from gradkit.guard import time_limit
from gradkit_grader.globalseed import set_global_seed

__all__ = ["Draw", "train_nets", "deep_accuracy", "deep_accuracies", "depth_gap", "depth_gaps"]

#: ``draw(shapes_and_seeds) -> kernels``: the initialiser under test, called once per seed for all kernels
#: of that seed's nets (one guarded call); returns float arrays of the asked shapes
Draw = Callable[[list[tuple[tuple[int, int], int]]], list[np.ndarray]]


def _summed_bce(y_true, y_pred):  # sum over members of each member's mean loss: members train independently
    y_true = ops.repeat(y_true, ops.shape(y_pred)[-1] // ops.shape(y_true)[-1], axis=2)  # (b, 1, seeds) -> members
    return ops.sum(ops.binary_crossentropy(ops.cast(y_true, y_pred.dtype), y_pred), axis=(1, 2))


def train_nets(draw: Draw, depth: int, *, epochs: int, tol: Mapping, seeds: Sequence[int],
               stream: tuple[int, ...]) -> np.ndarray:
    """Test accuracy of the ``circles_members`` nets with ``depth`` tanh layers of each seed of ``seeds``.

    For each seed: kernel ``j`` of layer ``l`` is drawn with seed ``derive_seed(seed, *stream, l, j)`` in
    one call of ``draw``, made right after Keras' global seed is set to ``derive_seed(seed, 3)``; the data
    (``derive_seed(seed, 0)``) and the batch order (``default_rng([seed, 2])``, one permutation per
    epoch) depend on ``seed`` only. Biases start at zero and nothing else is drawn, so a seed's nets train
    as they would alone (the training time limit ``train_timeout_s`` is per seed).

    Returns
    -------
    np.ndarray, shape ``(len(seeds), circles_members)``
        Row ``i``: the test accuracies of seed ``seeds[i]``'s nets, each ``k / (circles_samples - n_train)``.
    """
    seeds = [int(s) for s in seeds]
    m, width, n_train = tol["circles_members"], tol["circles_width"], tol["circles_n_train"]
    runs = len(seeds)
    data = [circles(tol["circles_samples"], tol["circles_noise"], rng=derive_seed(seed, 0)) for seed in seeds]
    h = inputs = keras.Input((2, runs))
    h = ops.repeat(h, m, axis=2)  # (b, 2, seeds) -> (b, 2, seeds * members): each seed's data to its nets
    for layer in range(depth + 1):
        h = EnsembleDense(1 if layer == depth else width, runs * m, activation="sigmoid" if layer == depth else "tanh",
                          kernel_initializer="zeros", name=f"layer_{layer + 1}")(h)
    model = keras.Model(inputs, h)
    denses = [layer for layer in model.layers if isinstance(layer, EnsembleDense)]
    shapes = [tuple(int(s) for s in dense.kernel.shape[:2]) for dense in denses]
    kernels = [[] for _ in denses]
    for seed in seeds:
        set_global_seed(derive_seed(seed, 3))  # what a draw ignoring its seed would use
        draws = draw([(shape, derive_seed(seed, *stream, layer, j))
                      for layer, shape in enumerate(shapes) for j in range(m)])
        for layer in range(len(denses)):
            kernels[layer] += draws[layer * m:(layer + 1) * m]
    for dense, ks in zip(denses, kernels):
        dense.kernel.assign(np.stack(ks, axis=-1).astype("float32"))
    model.compile(optimizer=keras.optimizers.SGD(tol["circles_lr"], momentum=tol["circles_momentum"]),
                  loss=_summed_bce, steps_per_execution=tol["circles_steps_per_execution"])
    xs = np.empty((n_train * epochs, 2, runs), dtype=np.float32)
    ys = np.empty((n_train * epochs, 1, runs), dtype=np.float32)
    for i, (seed, (x, y)) in enumerate(zip(seeds, data)):
        rng = np.random.default_rng([seed, 2])
        order = np.concatenate([rng.permutation(n_train) for _ in range(epochs)])  # a shuffle per epoch
        xs[:, :, i], ys[:, 0, i] = x[:n_train][order], y[:n_train][order]
    with time_limit(tol["train_timeout_s"] * runs, what=f"training the {depth}-layer circles nets"):
        model.fit(xs, ys, batch_size=tol["circles_batch"], epochs=1, shuffle=False, verbose=0)
    x_te = np.stack([x[n_train:] for x, _ in data], axis=-1)  # (n_test, 2, seeds)
    y_te = np.stack([y[n_train:] for _, y in data], axis=-1)  # (n_test, seeds)
    p = model.predict(x_te, batch_size=len(x_te), verbose=0)[:, 0, :]
    right = (p > 0.5) == (np.repeat(y_te, m, axis=1) > 0.5)  # (n_test, seeds * members)
    return np.mean(right, axis=0).reshape(runs, m)


def _means(acc: np.ndarray) -> list[float]:
    """Each row's mean, row by row: the float64 sum of one seed's accuracies in the order it has alone."""
    return [float(np.mean(row)) for row in acc]


def deep_accuracies(draw: Draw, tol: Mapping, seeds: Sequence[int]) -> list[float]:
    """:func:`deep_accuracy` of each seed of ``seeds``, trained together."""
    return _means(train_nets(draw, tol["circles_depth"], epochs=tol["circles_epochs"], tol=tol, seeds=seeds,
                             stream=(1,)))


def deep_accuracy(draw: Draw, tol: Mapping, seed: int) -> float:
    """Mean test accuracy of ``circles_members`` nets with ``circles_depth`` layers after ``circles_epochs``."""
    return deep_accuracies(draw, tol, [seed])[0]


def depth_gaps(draw: Draw, tol: Mapping, seeds: Sequence[int]) -> list[float]:
    """:func:`depth_gap` of each seed of ``seeds``, trained together (one model per depth)."""
    shallow, deep = (_means(train_nets(draw, d, epochs=tol["gap_epochs"], tol=tol, seeds=seeds, stream=(4, d)))
                     for d in tol["gap_depths"])
    return [s - d for s, d in zip(shallow, deep)]


def depth_gap(draw: Draw, tol: Mapping, seed: int) -> float:
    """Mean test accuracy of the shallow nets minus that of the deep ones, both ``gap_epochs`` epochs.

    Depths ``gap_depths`` (shallow, deep); the two sets of nets share data and batch order (a paired
    comparison), their kernels come from the streams ``(4, depth)``.
    """
    return depth_gaps(draw, tol, [seed])[0]
