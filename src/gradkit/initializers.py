"""Name-keyed registry of weight initializers, and fan computation.

Each registry entry is a factory ``f(seed=None) -> keras.initializers.Initializer``
so that every use can be seeded explicitly (Keras 3 initializers with an int
seed return the same values on every call; one without a seed draws from a
hidden global generator, which gradkit never relies on).
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import keras

__all__ = ["INITIALIZERS", "get_initializer", "reseeded"]

#: name -> factory(seed) of a Keras initializer.
INITIALIZERS: dict[str, Callable[..., keras.initializers.Initializer]] = {
    "glorot_uniform": keras.initializers.GlorotUniform,
    "glorot_normal": keras.initializers.GlorotNormal,
    "he_uniform": keras.initializers.HeUniform,
    "he_normal": keras.initializers.HeNormal,
    "lecun_normal": keras.initializers.LecunNormal,
    "lecun_uniform": keras.initializers.LecunUniform,
    "random_normal": keras.initializers.RandomNormal,  # N(0, 0.05), Keras default
    "random_uniform": keras.initializers.RandomUniform,  # U(-0.05, 0.05), Keras default
    "uniform_0_1": lambda seed=None: keras.initializers.RandomUniform(0.0, 1.0, seed=seed),  # seed 004's "bad" init
    "orthogonal": keras.initializers.Orthogonal,
    "zeros": lambda seed=None: keras.initializers.Zeros(),
    "ones": lambda seed=None: keras.initializers.Ones(),
}


def reseeded(init: Any, seed: int | None) -> Any:
    """A copy of a Keras initializer instance with a new ``seed``.

    Instances that have no ``seed`` in their config (``Zeros``, plain
    callables) are returned unchanged.
    """
    if isinstance(init, keras.initializers.Initializer):
        cfg = init.get_config()
        if "seed" in cfg:
            cfg["seed"] = seed
            return type(init).from_config(cfg)
    return init


def _takes_seed(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return any(p.name == "seed" or p.kind is p.VAR_KEYWORD for p in params)


def get_initializer(spec: Any, seed: int | None = None) -> Any:
    """Resolve ``spec`` to something Keras accepts as ``kernel_initializer``.

    ``spec`` may be a registry name, a factory/class taking ``seed=`` (e.g.
    ``keras.initializers.HeNormal`` or a student's initializer class), an
    initializer instance (re-seeded with ``seed`` when given), or any callable
    ``f(shape, dtype=None)`` -- one that also takes ``seed=`` gets ``seed`` bound.
    """
    if isinstance(spec, str):
        try:
            factory = INITIALIZERS[spec]
        except KeyError:
            raise KeyError(
                f"unknown initializer {spec!r}; known: {', '.join(sorted(INITIALIZERS))}"
            ) from None
        return factory(seed=seed)
    if isinstance(spec, type):
        try:
            return spec(seed=seed)
        except TypeError:
            return spec()
    if isinstance(spec, keras.initializers.Initializer):
        return reseeded(spec, seed) if seed is not None else spec
    if callable(spec):
        # A plain function f(shape, dtype=None, seed=None) (e.g. a student's he_normal)
        # gets the seed bound, so layers and ensemble members draw independently.
        return functools.partial(spec, seed=seed) if seed is not None and _takes_seed(spec) else spec
    raise TypeError(f"initializer must be a name, class or callable, got {type(spec).__name__}")
