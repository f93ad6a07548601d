"""Training of :mod:`gradkit.ensemble`'s member-axis models: :func:`fit_ensemble` (compile, then ONE ``fit``
call over all epochs) and :func:`reuse_models`, inside which :func:`gradkit.ensemble.collapse_rate` trains
the studies of one layout on one compiled, already traced model (:func:`fit_reused`).

Shapes as in :mod:`gradkit.ensemble`: inputs ``(n, input_dim, M)``, targets ``(n, output_dim, M)``, loss
history ``(epochs, M)``, the member axis last. Member m's shuffle order comes from
``np.random.default_rng([seed, 2, m])`` (:func:`gradkit._epochs.epoch_data`).
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable

import keras
import numpy as np
from keras import ops
from tqdm.auto import tqdm

from ._ensemble_layers import (
    EnsembleMSE,
    MemberMSE,
    check_optimizer,
    ensemble_layers,
    int_seed,
    member_arrays,
    resolve_jit,
)
from ._epochs import epoch_data, fit_inputs

__all__ = ["fit_ensemble", "reuse_models", "reuse_key", "fit_reused"]

_STREAM_SHUFFLE = 2  #: the shuffle orders' stream (gradkit.ensemble's data and weights use 1 and 3)


def fit_ensemble(model: keras.Model, x, y, *, epochs: int, batch_size: int,
                 learning_rate: float = 1e-3, optimizer: Any = "adam",
                 seed: int | np.random.Generator = 0, progress: bool = True,
                 jit_compile: bool | str = "auto") -> np.ndarray:
    """Train every member on its own data with its own shuffle order.

    Parameters
    ----------
    model : keras.Model
        From :func:`gradkit.ensemble.build_ensemble_mlp` (compiled here, with XLA).
    x, y : array-like, ``(n, input_dim, M)`` and ``(n, output_dim, M)``
        Member m trains on ``x[..., m], y[..., m]``; a 2-D array is shared by all members.
    epochs, batch_size : int
        Each epoch, member m visits its n points in the order
        ``np.random.default_rng([seed, 2, m]).permutation(n)`` (one draw per epoch),
        in batches of ``batch_size`` (the last one smaller), like ``Model.fit``.
    learning_rate : float
        Used when ``optimizer`` is a name; an optimizer instance keeps its own.
    optimizer : str or keras.optimizers.Optimizer
        Must act elementwise: ``clipnorm``/``global_clipnorm`` raise ``ValueError``.
    jit_compile : bool or "auto"
        XLA-compile the train step. "auto": always on JAX, never on torch; on
        TensorFlow only for runs of at least ``_XLA_MIN_WORK`` member-steps, where
        the faster steps repay XLA's compile time.

    Returns
    -------
    np.ndarray, ``(epochs, M)``
        Each member's training MSE averaged over the epoch (as Keras' ``loss`` log).
    """
    if isinstance(optimizer, str):
        optimizer = keras.optimizers.get({"class_name": optimizer,
                                          "config": {"learning_rate": learning_rate}})
    check_optimizer(optimizer)
    rows = _epoch_rows(model, x, y, epochs, batch_size, seed)
    if rows is None:
        return np.empty((0, ensemble_layers(model)[0].members))
    _compile(model, optimizer, rows[-1], resolve_jit(jit_compile, rows[-1] * ensemble_layers(model)[0].members
                                                      * epochs))
    return _fit(model, rows, epochs, batch_size, progress)


def _epoch_rows(model: keras.Model, x, y, epochs: int, batch_size: int, seed) -> tuple | None:
    """:func:`gradkit._epochs.epoch_data` of the checked arrays (None for 0 epochs)."""
    layers = ensemble_layers(model)
    members, in_dim = layers[0].members, int(layers[0].kernel.shape[0])
    x = member_arrays(x, "x", members, in_dim)
    y = member_arrays(y, "y", members, layers[-1].units)
    if len(x) != len(y):
        raise ValueError(f"x and y have different lengths {len(x)} and {len(y)}")
    seed = int_seed(seed)
    # ONE fit() call for all epochs, each epoch padded to whole batches (see epoch_data)
    return epoch_data(x, y, epochs, batch_size, seed, _STREAM_SHUFFLE) if epochs else None


def _compile(model: keras.Model, optimizer, steps: int, jit: bool) -> None:
    model.compile(optimizer=optimizer, loss=EnsembleMSE(), weighted_metrics=[MemberMSE(ensemble_layers(model)[0]
                                                                                       .members)],
                  jit_compile=jit, steps_per_execution=steps)
    if not optimizer.built:  # its slots created inside fit's first trace make TF trace the step twice
        optimizer.build(model.trainable_variables)


def _fit(model: keras.Model, rows: tuple, epochs: int, batch_size: int, progress: bool) -> np.ndarray:
    """Train the compiled ``model`` on :func:`_epoch_rows`' ``rows``; the loss history ``(epochs, M)``."""
    xa, ya, sw, steps = rows
    members = ensemble_layers(model)[0].members
    history = np.full((epochs, members), np.nan)
    with tqdm(total=epochs, desc=f"{members} members", unit="epoch", disable=not progress) as bar:
        def on_epoch_end(epoch, logs):
            history[epoch] = np.asarray(logs["member_loss"], dtype=np.float64)
            bar.update(1)
            finite = history[epoch][np.isfinite(history[epoch])]
            bar.set_postfix(median_loss=f"{np.median(finite):.4g}" if finite.size else "nan")

        model.fit(**fit_inputs(xa, ya, sw, batch_size), epochs=epochs, steps_per_epoch=steps, verbose=0,
                  callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)])
    return history


#: what :func:`fit_reused` keeps inside :func:`reuse_models` (None outside; per thread and context):
#: ``({key: (model, its optimizer's initial variable values)}, limit)``
_REUSE: contextvars.ContextVar[tuple[dict, int] | None] = contextvars.ContextVar("gradkit_reuse", default=None)


@contextlib.contextmanager
def reuse_models(limit: int = 4):
    """Inside the block, :func:`gradkit.ensemble.collapse_rate` trains studies of one layout on one model.

    A study whose members, depth, width, activation (the same name or the same object), initializer
    name, learning rate, batch size, batches per epoch and XLA setting are those of a study run
    earlier in the block takes that study's compiled model, redraws its weights for its own seed
    (:func:`gradkit.ensemble.reseed_ensemble`) and resets its optimizer, instead of building, compiling
    and tracing a new one. The same training graph then runs from the same initial state on the same
    batches: the result is the one a new model gives, bit for bit, without the trace (about as long as
    the training itself for seed 002's study). The graph holds what the activation did when first
    traced, so an activation whose behaviour changes between studies must not be reused (a new
    function object is a new key). Keeps the ``limit`` most recently used models. The block holds
    for the thread (and context) that entered it; a nested block shares the outer one's models.
    """
    var = _REUSE  # this module's variable even if a guard reloads the module inside the block
    token = var.set(var.get() or ({}, max(1, int(limit))))
    try:
        yield
    finally:
        var.reset(token)


def reuse_key(members: int, depth: int, width: int, activation: Any, initializer: Any, learning_rate: float,
              batch_size: int, steps: int, jit: bool) -> tuple | None:
    """The layout key of :func:`reuse_models` (the arguments as a tuple), or None when there is nothing to
    reuse (outside the block, an initializer other than a name, an activation that is not hashable)."""
    key = (members, depth, width, activation, initializer, learning_rate, batch_size, steps, jit)
    if _REUSE.get() is None or not isinstance(initializer, str):
        return None
    try:
        hash(key)
    except TypeError:
        return None
    return key


def fit_reused(key: tuple, build: Callable[[], keras.Model], reseed: Callable[[keras.Model], None], x, y, *,
               epochs: int, seed: int, progress: bool) -> tuple[keras.Model, np.ndarray]:
    """Train on the kept compiled model of ``key`` (from :func:`reuse_key`, not None): ``(model, losses)``.

    A kept model is redrawn by ``reseed(model)`` and its optimizer's variables are reset to their initial
    values; without one, ``build()`` makes the model (its initial weights those ``reseed`` draws) and an
    Adam at ``key``'s learning rate compiles it. ``x, y, epochs, seed, progress`` as in
    :func:`fit_ensemble` (``epochs`` >= 1); ``losses`` ``(epochs, M)``. The model leaves the cache while it
    trains: one that raises is not kept.
    """
    *_, learning_rate, batch_size, steps, jit = key
    kept = _REUSE.get()[0]
    if key in kept:
        model, initial = kept.pop(key)
        reseed(model)
        for var, value in zip(model.optimizer.variables, initial):
            var.assign(value)
    else:
        model = build()
        optimizer = keras.optimizers.get({"class_name": "adam", "config": {"learning_rate": learning_rate}})
        _compile(model, optimizer, steps, jit)
        initial = [ops.convert_to_numpy(v) for v in optimizer.variables]
    losses = _fit(model, _epoch_rows(model, x, y, epochs, batch_size, seed), epochs, batch_size, progress)
    _keep_model(key, model, initial)
    return model, losses


def _keep_model(key: tuple, model: keras.Model, initial: list) -> None:
    if _REUSE.get() is None:  # the block ended inside the study
        return
    kept, limit = _REUSE.get()
    kept[key] = (model, initial)  # most recently used last
    while len(kept) > limit:
        kept.pop(next(iter(kept)))
