"""M Keras models of one architecture as ONE model with a member axis, to train them side by side.

:func:`stack_models` takes models built by the same code with different seeds (a student's
``build_resnet(..., seed=s)`` for several ``s``, say) and returns a functional model whose every tensor
carries the member axis last, as in :mod:`gradkit.ensemble`: inputs ``(batch, features, M)``, outputs
``(batch, units, M)``. Each layer becomes its member-axis version with the M models' weights stacked:
``Dense`` -> :class:`gradkit._ensemble_layers.EnsembleDense`, ``BatchNormalization`` ->
:class:`EnsembleBatchNorm` (statistics per feature AND member), weightless element-wise layers
(``Activation``, ``ReLU``, ``LeakyReLU``, ``ELU``) and ``Add`` apply as they are; nested
``Sequential``/functional sub-models are stacked the same way. Anything else raises
:class:`NotStackable`, naming the layer.

Trained with a loss summed over members (:func:`summed_bce`), member m's gradients are exactly those
of model m trained alone on the same batches: one compiled graph trains M nets for little more than
the price of one (the graph's size, hence its tracing time, does not grow with M).
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import ops

from ._ensemble_layers import EnsembleDense

__all__ = ["NotStackable", "EnsembleBatchNorm", "stack_models", "member_inputs", "summed_bce", "unstack"]

_ELEMENTWISE = (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU)


class NotStackable(ValueError):
    """The models cannot be stacked: a layer without a member-axis version, or models that differ."""


class EnsembleBatchNorm(keras.layers.Layer):
    """Batch normalisation of M members: ``(batch, features, M)``, statistics over the batch axis.

    Per feature and member, as ``keras.layers.BatchNormalization(axis=-1)`` of each member alone:
    training mode normalises with the batch's mean and (biased) variance and updates the moving
    statistics with ``momentum``; inference mode uses the moving ones. ``gamma``/``beta`` and the
    moving statistics have shape ``(features, M)``.
    """

    def __init__(self, members: int, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.members, self.momentum, self.epsilon = int(members), float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)

    def build(self, input_shape):
        shape = (input_shape[-2], self.members)
        self.gamma = self.add_weight(name="gamma", shape=shape, initializer="ones", trainable=self.scale)
        self.beta = self.add_weight(name="beta", shape=shape, initializer="zeros", trainable=self.center)
        self.moving_mean = self.add_weight(name="moving_mean", shape=shape, initializer="zeros", trainable=False)
        self.moving_variance = self.add_weight(name="moving_variance", shape=shape, initializer="ones",
                                               trainable=False)

    def call(self, x, training=None):
        if training:
            mean, var = ops.mean(x, axis=0), ops.var(x, axis=0)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + ops.cast(mean, self.moving_mean.dtype) * (1 - m))
            self.moving_variance.assign(self.moving_variance * m + ops.cast(var, self.moving_variance.dtype) * (1 - m))
        else:
            mean, var = self.moving_mean, self.moving_variance
        y = (x - mean) * ops.rsqrt(var + self.epsilon)
        return y * self.gamma + self.beta

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "members": self.members, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale}


def _stack(arrays: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([np.asarray(a) for a in arrays], axis=-1)


def _values(variables: list, values: list) -> list:
    """Member k's value of ``variables[k]``: ``values[k][id(variable)]`` where given, else the variable's own."""
    return [ops.convert_to_numpy(mine.get(id(v), v)) for v, mine in zip(variables, values)]


def _dense(group: list, members: int, values: list):
    first = group[0]
    layer = EnsembleDense(first.units, members, activation=first.activation, use_bias=first.use_bias,
                          kernel_initializer="zeros", name=f"{first.name}_x{members}")
    def call(x, **kw):
        y = layer(x)
        layer.kernel.assign(_stack(_values([d.kernel for d in group], values)))
        if first.use_bias:
            layer.bias.assign(_stack(_values([d.bias for d in group], values)))
        return y
    return call


def _batch_norm(group: list, members: int, values: list):
    first = group[0]
    if first.axis not in (-1, 1) or getattr(first, "renorm", False):
        raise NotStackable(f"BatchNormalization layer {first.name!r} normalises axis {first.axis}; only the "
                           "feature axis of a Dense network can be stacked")
    layer = EnsembleBatchNorm(members, first.momentum, first.epsilon, first.center, first.scale,
                              name=f"{first.name}_x{members}")
    def call(x, training=None, **kw):
        y = layer(x, training=training)
        for mine, theirs in (("gamma", "gamma"), ("beta", "beta"), ("moving_mean", "moving_mean"),
                             ("moving_variance", "moving_variance")):
            variables = [getattr(b, theirs, None) for b in group]
            if variables[0] is not None:
                getattr(layer, mine).assign(_stack(_values(variables, values)))
        return y
    return call


def _stacked_op(group: list, members: int, values: list):
    """The member-axis version of the M corresponding operations ``group`` (one per model); ``values``: per member,
    ``id(variable) -> value`` in place of the variable's own."""
    first = group[0]
    kinds = {type(op) for op in group}
    if len(kinds) != 1:
        raise NotStackable(f"the models differ at {first.name!r}: {', '.join(sorted(k.__name__ for k in kinds))}")
    if isinstance(first, keras.Model):
        sub = _stack_models(group, f"{first.name}_x{members}", values)
        return lambda *args, **kw: sub(*args, **{k: v for k, v in kw.items() if k == "training"})
    if isinstance(first, keras.layers.Dense):
        return _dense(group, members, values)
    if isinstance(first, keras.layers.BatchNormalization):
        return _batch_norm(group, members, values)
    if isinstance(first, keras.layers.Add):
        return lambda xs, **kw: ops.sum(ops.stack(xs, axis=0), axis=0)
    if isinstance(first, _ELEMENTWISE):
        if getattr(getattr(first, "activation", None), "__name__", "") in ("softmax", "log_softmax"):
            raise NotStackable(f"layer {first.name!r} applies softmax, which would mix the member axis")
        return lambda x, **kw: first(x)
    raise NotStackable(f"layer {first.name!r} ({type(first).__name__}) has no member-axis version: stackable "
                       "are Dense, BatchNormalization, Activation/ReLU/LeakyReLU/ELU, Add and sub-models of them")


def stack_models(models: Sequence[keras.Model], *, name: str = "stacked",
                 weights: Sequence[tuple[list, list] | None] | None = None) -> keras.Model:
    """One functional model computing ``models[m]`` on member ``m``, with their current weights.

    Parameters
    ----------
    models : sequence of M keras.Model
        Functional or Sequential models of one architecture (same layers in the same order), each
        with one input of shape ``(batch, d)`` made of the layers listed in the module docstring. The same
        model may come several times (with ``weights``: one net redrawn per seed).
    name : str
        The stacked model's name.
    weights : sequence of M ``(trainable values, non-trainable values)`` or None, optional
        Model m's weights in place of its own, in the order of its ``trainable_variables`` and
        ``non_trainable_variables`` (as ``stateless_call`` takes them); None (or a None entry): its own.

    Returns
    -------
    keras.Model
        Input ``(batch, d, M)``, output ``(batch, units, M)``; ``stacked(member_inputs(x, M))[..., m]``
        equals ``models[m](x)`` up to float rounding.

    Raises
    ------
    NotStackable
        Naming the first layer that has no member-axis version, or where the models differ.
    """
    models = list(models)
    if not models:
        raise NotStackable("no models to stack")
    weights = [None] * len(models) if weights is None else list(weights)
    if len(weights) != len(models):
        raise ValueError(f"weights has {len(weights)} entries for {len(models)} models")
    for k, (mod, w) in enumerate(zip(models, weights)):
        if w is not None and (len(w[0]), len(w[1])) != (len(mod.trainable_variables), len(mod.non_trainable_variables)):
            raise ValueError(f"weights[{k}] has {len(w[0])} trainable and {len(w[1])} non-trainable values; model "
                             f"{mod.name} has {len(mod.trainable_variables)} and {len(mod.non_trainable_variables)}")
    values = [{} if w is None else {id(v): x for v, x in zip(mod.trainable_variables + mod.non_trainable_variables,
                                                             [*w[0], *w[1]])}
              for mod, w in zip(models, weights)]
    return _stack_models(models, name, values)


def _stack_models(models: list, name: str, values: list) -> keras.Model:
    """:func:`stack_models` with each member's weights resolved to ``id(variable) -> value`` (``values``)."""
    m = len(models)
    if isinstance(models[0], keras.Sequential):
        d = models[0].inputs[0].shape[-1]
        inputs = keras.Input((d, m))
        x = inputs
        for group in zip(*(mod.layers for mod in models)):
            x = _stacked_op(list(group), m, values)(x)
        return keras.Model(inputs, x, name=name)
    ops_of = [list(mod.operations) for mod in models]
    if len({len(o) for o in ops_of}) != 1 or any(len(mod.inputs) != 1 or len(mod.outputs) != 1 for mod in models):
        raise NotStackable("the models differ in their number of layers, inputs or outputs")
    where = {id(op): i for i, op in enumerate(ops_of[0])}
    inputs = keras.Input((models[0].inputs[0].shape[-1], m))
    made: dict[int, object] = {}

    def stacked(op):
        i = where[id(op)]
        if i not in made:
            made[i] = _stacked_op([o[i] for o in ops_of], m, values)
        return made[i]

    outputs = models[0]._run_through_graph([inputs], operation_fn=stacked)  # Keras 3's graph walk
    return keras.Model(inputs, outputs, name=name)


def member_inputs(x: np.ndarray, members: int) -> np.ndarray:
    """``x`` of shape ``(batch, d)`` repeated for every member: ``(batch, d, members)``, float32."""
    return np.repeat(np.asarray(x, dtype="float32")[:, :, None], members, axis=2)


def summed_bce(y_true, y_pred):
    """Binary cross-entropy summed over members of each member's mean: ``y_pred`` ``(batch, 1, M)``."""
    return ops.sum(ops.binary_crossentropy(ops.cast(y_true, y_pred.dtype), y_pred), axis=(1, 2))


def unstack(y: np.ndarray) -> list[np.ndarray]:
    """Member outputs of a stacked model's output ``(batch, units, M)``: M arrays ``(batch, units)``."""
    y = ops.convert_to_numpy(y)
    return [y[..., k] for k in range(y.shape[-1])]
