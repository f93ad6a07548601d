"""gradkit's own answers to assignment a4_resnet's stubs, ``residual_block`` and ``build_resnet``.

Reference answers live with the assignment (shipped only inside its autograder zip as
``gradkit_grader.course.a4_resnet.reference``), never in the student package :mod:`gradkit`. The
hidden tests' statistics were calibrated with them (:mod:`.statistics`). The student package's
generic :func:`gradkit.models.build_resnet` (the seeds' nets, which the notebook trains; it seeds
block ``b`` of a stem-less net at ``seed + 2b``) is forbidden inside the two stubs (tolerances.yml
``forbidden``); the stub's docstring asks for ``seed + 3b``, which these answers follow.
"""
from __future__ import annotations

from typing import Any

import keras
from keras import layers

from gradkit.activations import get_activation
from gradkit.initializers import get_initializer

__all__ = ["residual_block", "build_resnet"]


def residual_block(x, units: int, *, activation: Any = "relu", initializer: Any = "he_normal",
                   seed: int | None = None, name: str = "block"):
    """The assignment's post-activation residual block.

    ``act(BN(Dense(act(BN(Dense(x))))) + skip(x))`` with ``skip(x) = x`` when ``x`` has ``units``
    features, else ``Dense(units, use_bias=False)(x)``; Dense layer ``i`` is seeded ``seed + i``.
    """
    act = get_activation(activation)

    def dense(i: int, suffix: str, **kw):
        init = get_initializer(initializer, None if seed is None else seed + i)
        return layers.Dense(units, kernel_initializer=init, name=f"{name}_{suffix}", **kw)

    h = dense(0, "dense1")(x)
    h = layers.BatchNormalization(name=f"{name}_bn1")(h)
    h = layers.Activation(act, name=f"{name}_act1")(h)
    h = dense(1, "dense2")(h)
    h = layers.BatchNormalization(name=f"{name}_bn2")(h)
    skip = x if x.shape[-1] == units else dense(2, "proj", use_bias=False)(x)
    h = layers.Add(name=f"{name}_add")([h, skip])
    return layers.Activation(act, name=f"{name}_out")(h)


def build_resnet(depth: int, width: int, input_dim: int, output_dim: int, *, activation: Any = "relu",
                 initializer: Any = "he_normal", output_activation: Any = "sigmoid", seed: int | None = 0,
                 name: str = "resnet", block: Any = None) -> keras.Model:
    """The assignment's ResNet: ``Input(input_dim)``, ``depth`` of :func:`residual_block` (block ``b`` named
    ``block_{b + 1}`` and seeded ``seed + 3b``), then ``Dense(output_dim, output_activation)`` seeded
    ``seed + 3 * depth``; no stem or head layer (the stub's docstring, clause by clause).

    ``block`` (default :func:`residual_block`) builds each block: a hidden test passes the student's
    ``residual_block`` to check ``build_resnet``'s own wiring apart from the block's."""
    block = residual_block if block is None else block
    def offset(i: int) -> int | None:
        return None if seed is None else seed + i

    inputs = keras.Input((input_dim,), name="input")
    x = inputs
    for b in range(depth):
        x = block(x, width, activation=activation, initializer=initializer, seed=offset(3 * b),
                           name=f"block_{b + 1}")
    out_act = None if output_activation is None else get_activation(output_activation)
    outputs = layers.Dense(output_dim, activation=out_act, name="output",
                           kernel_initializer=get_initializer(initializer, offset(3 * depth)))(x)
    return keras.Model(inputs, outputs, name=name)
