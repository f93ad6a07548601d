"""gradkit's own answers to assignment a4_resnet's stubs, ``residual_block`` and ``build_resnet``.

Reference answers live with the assignment (shipped only inside its autograder zip as
``gradkit_grader.course.a4_resnet.reference``), never in the student package :mod:`gradkit`. The
hidden tests' statistics were calibrated with them (:mod:`.statistics`). The student package's
generic :func:`gradkit.models.build_resnet` (the seeds' nets, which the notebook trains) is
forbidden inside the two stubs (tolerances.yml ``forbidden``).
"""
from __future__ import annotations

from typing import Any

import keras
from keras import layers

from gradkit.activations import get_activation
from gradkit.initializers import get_initializer
from gradkit.models import build_resnet as _library_resnet

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
                 name: str = "resnet") -> keras.Model:
    """The assignment's ResNet: ``depth`` of :func:`residual_block`, then ``Dense(output_dim,
    output_activation)`` (:func:`gradkit.models.build_resnet` without stem and head layers)."""
    return _library_resnet(depth, width, block=residual_block, activation=activation, initializer=initializer,
                           input_dim=input_dim, output_dim=output_dim, output_activation=output_activation,
                           stem_layers=0, head_layers=0, seed=seed, name=name)
