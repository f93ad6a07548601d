"""Looking inside a network on a fixed batch ``(x, y)``: per-kernel gradients
(:func:`gradients`, :func:`gradient_norms`), per-layer outputs
(:func:`layer_outputs`, :func:`activation_stats`),
and gradient histograms in TensorBoard (:class:`GradientHistogramCallback`).

All of it runs on the TensorFlow and JAX backends of Keras 3 (both tested);
:mod:`gradkit._autodiff` also has a PyTorch path, not exercised by the tests.
The callback needs TensorFlow installed, for its event-file writer.
"""
from __future__ import annotations

import math
import os
from typing import Any

import keras
import numpy as np
from keras import ops

from gradkit._autodiff import LossSpec, kernel_variables, loss_and_grads, mean_loss, variable_keys
from gradkit.activations import activation_name

__all__ = [
    "gradients",
    "gradient_norms",
    "layer_outputs",
    "activation_stats",
    "GradientHistogramCallback",
]

#: Activations with a bounded range, for ``saturation_fraction``: name -> (low, high).
_BOUNDED = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "hard_sigmoid": (0.0, 1.0),
            "softsign": (-1.0, 1.0), "hard_tanh": (-1.0, 1.0)}
#: Activation layers that carry no ``activation`` attribute.
_LAYER_ACTIVATIONS = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu", "Softmax": "softmax"}


def gradients(model: keras.Model, x, y, loss: LossSpec = "mse", *,
              include_bias: bool = False, training: bool = False) -> dict[str, np.ndarray]:
    """Gradient of the mean loss on ``(x, y)`` w.r.t. every kernel.

    Parameters
    ----------
    model : keras.Model
        A built model; it is not modified.
    x : array-like, shape ``(n, *input_shape)``
        The batch (or a list of arrays for a multi-input model).
    y : array-like, shape ``(n, *target_shape)``
        Targets: ``(n, k)`` floats for ``"mse"``, ``(n, 1)`` in {0, 1} for
        ``"binary_crossentropy"``, ``(n,)`` integers for
        ``"sparse_categorical_crossentropy"``.
    loss : str, callable or None
        A Keras loss name, a ``keras.losses.Loss`` instance, a callable
        ``f(y_true, y_pred)`` returning per-sample or reduced losses, or
        ``None`` for the model's compiled loss. The result is averaged over
        the batch; regularisation losses are not added.
    include_bias : bool
        Also return the gradients w.r.t. the biases.
    training : bool
        Forwarded to the model call (dropout, batch-norm).

    Returns
    -------
    dict of str -> numpy.ndarray
        Variable path (``"sequential/dense/kernel"``; ``"dense/kernel"`` in a
        functional model) -> gradient of the variable's shape, e.g.
        ``(fan_in, units)`` for a Dense kernel. Order
        is ``model.trainable_variables`` order: input side first for
        Sequential and functional models.
    """
    variables = kernel_variables(model, include_bias)
    _, grads = loss_and_grads(model, x, y, mean_loss(loss, model), variables, training=training)
    return dict(zip(variable_keys(variables), grads))


def gradient_norms(model: keras.Model, x, y, loss: LossSpec = "mse", *,
                   include_bias: bool = False, training: bool = False) -> dict[str, float]:
    """L2 (Frobenius) norm of each kernel's gradient; see :func:`gradients`.

    Returns
    -------
    dict of str -> float
        Variable path -> ``||dL/dW||_2``, input side first. A plain deep
        sigmoid MLP shows norms shrinking towards the input (vanishing
        gradients); a residual network keeps them of one order of magnitude.
    """
    return _norms(gradients(model, x, y, loss, include_bias=include_bias, training=training))


def _norms(grads: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: float(np.linalg.norm(g.astype(np.float64).ravel())) for k, g in grads.items()}


def _resolve_layers(model: keras.Model, layers) -> list:
    default = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if layers is None:
        return default
    out = []
    for spec in layers:
        if isinstance(spec, str):
            out.append(model.get_layer(spec))
        elif isinstance(spec, (int, np.integer)):
            out.append(default[int(spec)])
        elif isinstance(spec, keras.layers.Layer):
            out.append(spec)
        else:
            raise TypeError(f"a layer is given by name, index or object, not {type(spec).__name__}")
    return out


def layer_outputs(model: keras.Model, x, layers=None, *,
                  batch_size: int | None = None) -> dict[str, np.ndarray]:
    """What each layer emits on ``x`` (inference mode).

    Parameters
    ----------
    model : keras.Model
        A Sequential or functional model with symbolic inputs (built from
        ``keras.Input``).
    x : array-like, shape ``(n, *input_shape)``
    layers : sequence of str, int or Layer, optional
        Which layers (names, indices into the non-input layers, or layer
        objects). Default: every layer except input layers, in model order.
    batch_size : int, optional
        Run the forward pass in chunks of this many rows (memory); default is
        one pass.

    Returns
    -------
    dict of str -> numpy.ndarray
        Layer name -> output of shape ``(n, *layer_output_shape)``.
    """
    chosen = _resolve_layers(model, layers)
    try:
        inputs = model.inputs
        inputs = inputs[0] if len(inputs) == 1 else inputs
        probe = keras.Model(inputs=inputs, outputs=[layer.output for layer in chosen])
    except (AttributeError, ValueError, TypeError) as exc:
        raise ValueError(
            "layer_outputs needs a Sequential or functional model built on keras.Input "
            f"(symbolic inputs and layer outputs): {exc}"
        ) from exc

    def run(chunk):
        out = probe(chunk, training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        return [np.asarray(ops.convert_to_numpy(o)) for o in out]

    if batch_size is None:
        parts = run(x)
    else:
        arr = np.asarray(x)
        chunks = [run(arr[i:i + batch_size]) for i in range(0, len(arr), batch_size)]
        parts = [np.concatenate(cols, axis=0) for cols in zip(*chunks)]
    return {layer.name: out for layer, out in zip(chosen, parts)}


def _activation_of(layer) -> str | None:
    fn = getattr(layer, "activation", None)
    if fn is not None:
        name = activation_name(fn)
        return getattr(getattr(fn, "func", None), "__name__", name) if name == "partial" else name
    return _LAYER_ACTIVATIONS.get(type(layer).__name__)


def activation_stats(model: keras.Model, x, layers=None, *, dead_tol: float = 0.0,
                     saturation: float = 0.99) -> list[dict[str, Any]]:
    """Per-layer summary of the outputs on ``x``.

    Parameters
    ----------
    model, x, layers
        As in :func:`layer_outputs`.
    dead_tol : float
        A unit is *dead* when its output is ``<= dead_tol`` for every input
        in ``x`` (and, for convolutions, at every position). Meaningful for
        ReLU outputs: a dead ReLU unit passes no gradient.
    saturation : float
        For bounded activations (tanh, sigmoid, softsign, hard sigmoid), a
        value is *saturated* when it lies within ``(1 - saturation) *
        max(|low|, |high|)`` of a bound: by default ``|a| > 0.99`` for tanh,
        ``a > 0.99`` or ``a < 0.01`` for sigmoid.

    Returns
    -------
    list of dict
        One dict per layer, in order, with keys ``name``, ``activation``
        (name or ``None``), ``mean``, ``std``, ``mean_square`` (over all
        entries), ``dead_fraction`` (over units = last axis) and
        ``saturation_fraction`` (over all entries; ``nan`` for an unbounded
        or unknown activation). ``pandas.DataFrame(result)`` makes a table.
    """
    if not 0.0 < saturation < 1.0:
        raise ValueError(f"saturation must be in (0, 1), got {saturation}")
    chosen = _resolve_layers(model, layers)
    outputs = layer_outputs(model, x, chosen)
    rows = []
    for layer in chosen:
        a = outputs[layer.name].astype(np.float64)
        units = a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a.reshape(-1, 1)
        act = _activation_of(layer)
        if act in _BOUNDED:
            lo, hi = _BOUNDED[act]
            margin = (1.0 - saturation) * max(abs(lo), abs(hi))
            sat = float(np.mean((a >= hi - margin) | (a <= lo + margin)))
        else:
            sat = math.nan
        rows.append({"name": layer.name, "activation": act, "mean": float(a.mean()),
                     "std": float(a.std()), "mean_square": float(np.mean(a * a)),
                     "dead_fraction": float(np.mean(np.all(units <= dead_tol, axis=0))),
                     "saturation_fraction": sat})
    return rows


def _require_tensorflow():
    try:
        import tensorflow as tf

        tf.summary.create_file_writer, tf.summary.write  # noqa: B018 - fail now, not mid-fit
    except (ImportError, AttributeError) as exc:
        raise ImportError(
            "GradientHistogramCallback writes TensorBoard event files with TensorFlow's "
            "tf.summary API, which is not available. Install tensorflow (tensorflow-cpu "
            "on Linux x86-64); it is needed even when Keras runs on JAX or PyTorch."
        ) from exc
    return tf


class GradientHistogramCallback(keras.callbacks.Callback):
    """Log each kernel's gradient (and weights) to TensorBoard during ``fit``.

    Every ``freq`` epochs (epochs 0, freq, 2 freq, ... as in
    ``keras.callbacks.TensorBoard(histogram_freq=...)``) the gradient of the
    mean loss on the fixed batch ``(x, y)`` is computed with
    :func:`gradients` and written under ``<log_dir>/<run>`` as

    * histogram ``gradients/<variable path>`` (one per kernel),
    * histogram ``weights/<variable path>`` (when ``log_weights``),
    * scalar ``gradient_norm/<variable path>`` and ``gradient_norm/global``,

    with step = epoch. ``norms`` keeps ``{epoch: {path: norm}}`` for plotting
    without TensorBoard. Works on every Keras backend; TensorFlow must be
    installed for the event writer (``ImportError`` otherwise).

    Parameters
    ----------
    log_dir : str or os.PathLike
    x, y : array-like
        A fixed batch, as in :func:`gradients`.
    loss : str, callable or None
        As in :func:`gradients`; ``None`` (default) uses the compiled loss.
    freq : int
        Log every ``freq`` epochs, ``freq >= 1``.
    include_bias, log_weights : bool
    run : str
        Sub-directory of ``log_dir``; the default ``"train"`` puts the
        histograms next to those of ``keras.callbacks.TensorBoard``.
    buckets : int
        Histogram bucket count.
    """

    def __init__(self, log_dir, x, y, loss: LossSpec = None, freq: int = 1, *,
                 include_bias: bool = False, log_weights: bool = True,
                 run: str = "train", buckets: int = 30):
        super().__init__()
        self._tf = _require_tensorflow()
        if int(freq) != freq or freq < 1:
            raise ValueError(f"freq must be a positive integer, got {freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.x, self.y, self.loss, self.freq = x, y, loss, int(freq)
        self.include_bias, self.log_weights = include_bias, log_weights
        self.run, self.buckets = run, buckets
        self.norms: dict[int, dict[str, float]] = {}
        self._writer = None

    def on_train_begin(self, logs=None):
        if self._writer is None:
            self._writer = self._tf.summary.create_file_writer(os.path.join(self.log_dir, self.run))

    def on_epoch_end(self, epoch, logs=None):
        if epoch % self.freq:
            return
        if self._writer is None:
            self.on_train_begin()
        grads = gradients(self.model, self.x, self.y, self.loss, include_bias=self.include_bias)
        variables = kernel_variables(self.model, self.include_bias)  # same order as grads
        norms = _norms(grads)
        with self._writer.as_default():
            for (path, g), v in zip(grads.items(), variables):
                self._histogram(f"gradients/{path}", g, epoch)
                if self.log_weights:
                    self._histogram(f"weights/{path}", ops.convert_to_numpy(v.value), epoch)
                self._scalar(f"gradient_norm/{path}", norms[path], epoch)
            total = math.sqrt(sum(n * n for n in norms.values()))
            self._scalar("gradient_norm/global", total, epoch)
        self._writer.flush()
        self.norms[epoch] = norms

    # tf.summary.histogram/scalar live in the tensorboard package, which
    # tensorflow 2.21 does not depend on; tf.summary.write is TensorFlow's
    # own. These write the same records (TensorBoard's histogram format: a
    # (buckets, 3) float64 tensor of [left edge, right edge, count]).
    def _metadata(self, plugin: str):
        md = self._tf.compat.v1.SummaryMetadata()
        md.plugin_data.plugin_name = plugin
        return md

    def _histogram(self, tag: str, values, step: int) -> None:
        values = np.asarray(values, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        counts, edges = np.histogram(values, bins=self.buckets)
        table = np.stack([edges[:-1], edges[1:], counts.astype(np.float64)], axis=1)
        self._tf.summary.write(tag, table, step=step, metadata=self._metadata("histograms"))

    def _scalar(self, tag: str, value: float, step: int) -> None:
        self._tf.summary.write(tag, np.float32(value), step=step,
                               metadata=self._metadata("scalars"))

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
