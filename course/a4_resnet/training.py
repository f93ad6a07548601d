"""The short training of a4_resnet's ``test_resnet_trains``, fast for many nets of one architecture.

:func:`gradkit_grader.course.a4_resnet.statistics.training_statistic` trains each net with
``fit(..., run_eagerly=True)``: full-batch Adam, ``train_steps`` steps, one epoch each. Graded, that is
the cheapest way (about 1.4 s per net; a trace of the fit costs more than the ten steps it runs). Calibration
trains 300 seeds' nets of one architecture (the reference ``build_resnet``); :func:`traced_losses` traces
the whole training once per architecture (:func:`gradkit_grader.course.a4_resnet.grid._architecture`), as a
function of a net's weights, and runs it with Grappler off (:func:`.grid._as_eager`): the per-epoch
losses of the eager ``fit`` bit for bit, in about 0.07 s per net (tests/test_batched_a4.py).

The traced steps are those of Keras' TensorFlow trainer and ``keras.optimizers.Adam`` (Keras 3.15, the version
gradkit pins): the training-mode call (``stateless_call``), the compiled loss, its gradient, then for each
variable ``m += (g - m)(1 - beta_1)``, ``v += (g**2 - v)(1 - beta_2)``,
``w -= m * alpha / (sqrt(v) + epsilon)`` with ``alpha = lr sqrt(1 - beta_2**t) / (1 - beta_1**t)``; an
epoch's loss is the loss tracker's mean over the batch, ``(loss * n) / n``.
"""
from __future__ import annotations

import weakref
from typing import Any, Mapping

import keras
import numpy as np

from gradkit_grader.course.a4_resnet import grid

__all__ = ["optimizer", "traced_losses"]

#: architecture key -> traced training of the first net of that architecture; the oldest goes beyond 4
_TRACED: dict[tuple, Any] = {}
#: net -> :func:`_plain` of it, for a template fed again and again (:func:`.grid.redrawn`)
_PLAIN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def optimizer(tol: Mapping[str, Any]) -> keras.optimizers.Adam:
    """The optimizer ``training_statistic`` compiles each net with."""
    return keras.optimizers.Adam(tol["train_lr"])


def _plain(model: keras.Model) -> bool:
    """Whether the traced steps are the whole of ``fit``'s for ``model``: float32 weights, and no layer with a
    regularizer (its penalty would be read from the template's weights) or a constraint (applied after each step)."""
    if model not in _PLAIN:
        _PLAIN[model] = _unregularised(model)
    return _PLAIN[model]


def _unregularised(model: keras.Model) -> bool:
    """:func:`_plain`, computed."""
    return all(str(w.dtype) == "float32" for w in model.weights) and not any(
        value is not None for layer in model.layers for key, value in layer.get_config().items()
        if key.endswith(("_regularizer", "_constraint")))


def _traced(key: tuple, template: keras.Model, tol: Mapping[str, Any]):
    """``f(trainable values, non-trainable values, x, y) -> per-step losses`` for nets of ``template``'s
    architecture, ``tol["train_steps"]`` steps unrolled."""
    import tensorflow as tf

    if key not in _TRACED:
        opt = optimizer(tol)
        template.compile(optimizer=opt, loss="binary_crossentropy")
        b1, b2, eps, steps = opt.beta_1, opt.beta_2, opt.epsilon, tol["train_steps"]

        @tf.function(jit_compile=False)
        def train(trainable, non_trainable, x, y):
            trainable, non_trainable = list(trainable), list(non_trainable)
            m = [tf.zeros_like(w) for w in trainable]
            v = [tf.zeros_like(w) for w in trainable]
            lr = tf.cast(opt.learning_rate, "float32")
            n = tf.cast(tf.shape(x)[0], "float32")
            losses = []
            for k in range(steps):
                with tf.GradientTape() as tape:
                    tape.watch(trainable)
                    y_pred, non_trainable = template.stateless_call(trainable, non_trainable, x, training=True)
                    loss = template.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
                losses.append(tf.math.divide_no_nan(loss * n, n))
                grads = tape.gradient(loss, trainable)
                t = tf.cast(tf.constant(k, "int64") + 1, "float32")
                alpha = lr * tf.sqrt(1 - tf.pow(tf.cast(b2, "float32"), t)) / (1 - tf.pow(tf.cast(b1, "float32"), t))
                for i, g in enumerate(grads):
                    m[i] = m[i] + (g - m[i]) * (1 - b1)
                    v[i] = v[i] + (tf.square(g) - v[i]) * (1 - b2)
                    trainable[i] = trainable[i] - (m[i] * alpha) / (tf.sqrt(v[i]) + eps)
            return tf.stack(losses)

        grid._remember(_TRACED, key, train, 4)
    return _TRACED[key]


def traced_losses(model: keras.Model, x: np.ndarray, y: np.ndarray, tol: Mapping[str, Any],
                  weights: tuple[list, list] | None = None) -> list[float] | None:
    """The per-epoch losses of ``training_statistic``'s eager fit of ``model`` (its weights are not modified; the
    first net of an architecture is compiled and kept as its trace's template), or None where
    there is no trace to vouch for them (another backend; a net :func:`.grid._architecture` has no key for; a
    regularizer, a constraint or weights other than float32).

    Parameters
    ----------
    model : keras.Model
        A built net ``(None, 2) -> (None, 1)``.
    x : numpy.ndarray, shape ``(n, 2)``, float32
    y : numpy.ndarray, shape ``(n, 1)``, float32
    tol : mapping
        a4_resnet's tolerances (``train_lr``, ``train_steps``).
    weights : (trainable values, non-trainable values), optional
        The initial weights in place of ``model``'s own (:func:`.grid.redrawn`'s).

    Returns
    -------
    list of float, ``train_steps`` long, or None
    """
    key = grid._architecture(model) if keras.backend.backend() == "tensorflow" and _plain(model) else None
    if key is None:
        return None
    out = grid._run_traced(_traced((key, tol["train_lr"], tol["train_steps"]), model, tol), model, weights, x, y)
    return [float(v) for v in np.asarray(out)]
