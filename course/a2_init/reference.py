"""gradkit's own answers to assignment a2_init's stubs that its hidden tests compare with.

Reference answers live with the assignment (shipped only inside its autograder zip as
``gradkit_grader.course.a2_init.reference``), never in the student package :mod:`gradkit`.
"""
from __future__ import annotations

import keras
import numpy as np

from gradkit.diagnostics import layer_outputs

__all__ = ["compute_fans", "activation_std"]


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a kernel, Keras convention.

    A Dense kernel ``(in, out)`` has fans ``(in, out)``; a convolution kernel
    ``(*spatial, in, out)`` multiplies both by the receptive field size
    ``prod(spatial)``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = 1
    for s in shape[:-2]:
        receptive *= s
    return shape[-2] * receptive, shape[-1] * receptive


def activation_std(model: keras.Model, x, layers=None) -> np.ndarray:
    """Standard deviation of each layer's output over all entries.

    Returns
    -------
    numpy.ndarray, shape ``(n_layers,)``
        In the order of :func:`gradkit.diagnostics.layer_outputs`.
    """
    outputs = layer_outputs(model, x, layers)
    return np.array([float(np.std(a.astype(np.float64))) for a in outputs.values()])
