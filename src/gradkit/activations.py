"""Name-keyed registry of the activations the course compares.

Every entry is a function of one tensor written with ``keras.ops`` so that it
runs on the TensorFlow, JAX and PyTorch backends. A user-supplied callable
(e.g. a student's ``leaky_relu``) is accepted anywhere a name is.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

from keras import ops

__all__ = ["ACTIVATIONS", "get_activation", "activation_name"]

Activation = Callable[..., object]


def _linear(x):
    return x


#: name -> activation function. ``leaky_relu`` uses slope 0.01 (seed 002, Lu et al.).
ACTIVATIONS: dict[str, Activation] = {
    "relu": ops.relu,
    "leaky_relu": partial(ops.leaky_relu, negative_slope=0.01),
    "tanh": ops.tanh,
    "sigmoid": ops.sigmoid,
    "elu": ops.elu,
    "selu": ops.selu,
    "linear": _linear,
    "softmax": ops.softmax,  # output layers only
}


def get_activation(spec: str | Activation) -> Activation:
    """Resolve ``spec`` (a registry name or a callable) to a callable.

    Raises
    ------
    KeyError
        For an unknown name; the message lists the known ones.
    TypeError
        When ``spec`` is neither a string nor callable.
    """
    if isinstance(spec, str):
        try:
            return ACTIVATIONS[spec]
        except KeyError:
            raise KeyError(
                f"unknown activation {spec!r}; known: {', '.join(sorted(ACTIVATIONS))}"
            ) from None
    if callable(spec):
        return spec
    raise TypeError(f"activation must be a name or a callable, got {type(spec).__name__}")


def activation_name(spec: str | Activation) -> str:
    """A short label for plots and tables."""
    if isinstance(spec, str):
        return spec
    for name, fn in ACTIVATIONS.items():
        if fn is spec:
            return name
    return getattr(spec, "__name__", type(spec).__name__)
