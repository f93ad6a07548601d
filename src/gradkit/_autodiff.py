"""Mechanics behind :func:`gradkit.diagnostics.gradients`: which variables,
which loss, and the backend dispatch of "gradient of a scalar loss".

Private to :mod:`gradkit.diagnostics`. Each backend has its own autodiff
entry point, and Keras 3 exposes none that works on all of them:

* TensorFlow: ``tf.GradientTape`` around an eager forward pass;
* JAX: ``jax.grad`` of a pure function built from ``model.stateless_call``;
* PyTorch: ``torch.autograd.grad`` on the parameters behind the variables.

All three return NumPy arrays in the order of ``variables``.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import keras
import numpy as np
from keras import ops

__all__ = ["LossSpec", "mean_loss", "kernel_variables", "variable_keys", "loss_and_grads"]

#: A Keras loss name, a ``keras.losses.Loss``, ``f(y_true, y_pred)``, or None.
LossSpec = str | Callable[..., Any] | None
#: ``f(y_true, y_pred) -> scalar tensor``: the already-reduced loss.
ScalarLoss = Callable[[Any, Any], Any]


def mean_loss(loss: LossSpec, model: keras.Model) -> ScalarLoss:
    """``(y_true, y_pred) -> batch-mean loss`` from a name, a callable, or
    (``loss=None``) the model's compiled loss. Float targets are cast to the
    prediction's dtype; integer labels are left alone."""
    if loss is None:
        loss = getattr(model, "loss", None)
        if loss is None:
            raise ValueError("loss=None needs a model compiled with a loss; pass loss= explicitly")
    fn = keras.losses.get(loss) if isinstance(loss, str) else loss
    if not callable(fn):
        raise TypeError(f"loss must be a name or a callable, got {type(loss).__name__}")

    def reduced(y_true, y_pred):
        dtype = getattr(y_true, "dtype", None)
        dtype = dtype if dtype is not None else np.asarray(y_true).dtype
        if "float" in keras.backend.standardize_dtype(dtype):
            y_true = ops.cast(y_true, y_pred.dtype)
        return ops.mean(fn(y_true, y_pred))

    return reduced


def kernel_variables(model: keras.Model, include_bias: bool = False) -> list:
    """Trainable kernels (Dense, Conv, ...: names ending in ``kernel``) and
    optionally biases, in ``model.trainable_variables`` order."""
    chosen = [v for v in model.trainable_variables
              if v.name.endswith("kernel") or (include_bias and v.name == "bias")]
    if not chosen:
        raise ValueError(f"model {model.name!r} has no trainable kernels")
    return chosen


def variable_keys(variables: Sequence) -> list[str]:
    """``v.path`` of each variable, made unique with a ``#k`` suffix."""
    keys, seen = [], {}
    for v in variables:
        seen[v.path] = seen.get(v.path, 0) + 1
        keys.append(v.path if seen[v.path] == 1 else f"{v.path}#{seen[v.path]}")
    return keys


def _tensorflow(model, x, y, loss_fn: ScalarLoss, variables, training):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        y_pred = model(x, training=training)
        loss = loss_fn(y, y_pred)
    grads = tape.gradient(loss, list(variables))
    return loss, grads


def _jax(model, x, y, loss_fn: ScalarLoss, variables, training):
    import jax

    trainable = list(model.trainable_variables)
    position = {id(v): i for i, v in enumerate(trainable)}
    missing = [v.path for v in variables if id(v) not in position]
    if missing:
        raise ValueError(f"gradients only w.r.t. trainable variables; not trainable: {missing}")
    wanted = [position[id(v)] for v in variables]
    trainable_values = [v.value for v in trainable]
    non_trainable_values = [v.value for v in model.non_trainable_variables]

    def scalar_loss(values):
        y_pred, _ = model.stateless_call(values, non_trainable_values, x, training=training)
        return loss_fn(y, y_pred)

    loss, grads = jax.value_and_grad(scalar_loss)(trainable_values)
    return loss, [grads[i] for i in wanted]


def _torch(model, x, y, loss_fn: ScalarLoss, variables, training):
    import torch

    with torch.enable_grad():
        y_pred = model(x, training=training)
        loss = loss_fn(y, y_pred)
        grads = torch.autograd.grad(loss, [v.value for v in variables], allow_unused=True)
    grads = [
        torch.zeros_like(v.value) if g is None else g for v, g in zip(variables, grads)
    ]
    return loss.detach(), [g.detach() for g in grads]


_DISPATCH = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}


def loss_and_grads(
    model: keras.Model,
    x,
    y,
    loss_fn: ScalarLoss,
    variables: Sequence[keras.Variable],
    *,
    training: bool = False,
) -> tuple[float, list[np.ndarray]]:
    """Scalar ``loss_fn(y, model(x))`` and its gradient w.r.t. ``variables``.

    Parameters
    ----------
    model : keras.Model
        A built model; its variables are read, never changed (batch-norm
        statistics that a ``training=True`` pass moves are put back).
    x, y : array-like
        Inputs ``(n, ...)`` and targets, passed as given to the model and to
        ``loss_fn`` (Keras casts float inputs to the layers' dtype).
    loss_fn : callable
        ``(y_true, y_pred) -> scalar tensor`` written with ``keras.ops``.
    variables : sequence of keras.Variable
        Trainable variables of ``model``.
    training : bool
        Forwarded to the model call (dropout, batch-norm statistics).

    Returns
    -------
    loss : float
    grads : list of numpy.ndarray
        ``grads[i].shape == variables[i].shape``.
    """
    backend = keras.backend.backend()
    try:
        impl = _DISPATCH[backend]
    except KeyError:
        raise NotImplementedError(
            f"gradients are implemented for the backends {sorted(_DISPATCH)}, not {backend!r}"
        ) from None
    # training=True updates batch-norm statistics in place on TF and torch: undo it.
    saved = [(v, np.array(ops.convert_to_numpy(v.value)))
             for v in (model.non_trainable_variables if training else ())]
    try:
        loss, grads = impl(model, x, y, loss_fn, list(variables), training)
    finally:
        for v, value in saved:
            v.assign(value)
    out = []
    for v, g in zip(variables, grads):
        if g is None:  # variable not on the path from x to the loss
            out.append(np.zeros(tuple(v.shape), dtype=np.dtype(v.dtype)))
        else:
            out.append(np.asarray(ops.convert_to_numpy(g)))
    return float(ops.convert_to_numpy(loss)), out

