"""Gradients of a student's function with respect to its input, by the backend's own autodiff.

A hidden test that asks whether autodiff "sees through" a student's function (``leaky_relu`` made
of ``keras.ops``, not NumPy) needs the gradient computed where the function lives: in process for
a plain callable, in the student's kernel for a :class:`gradkit_grader.remote.Remote` (the kernel
runs :func:`backend_gradient`, whose source the harness sends it, and returns the array).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from gradkit import forbid

__all__ = ["input_gradient", "backend_gradient"]


def backend_gradient(fn: Callable[..., Any], x: Any, kwargs: dict) -> Any:
    """d/dx of ``sum(fn(x, **kwargs))`` at the float32 array ``x``, as a float64 NumPy array.

    Zeros where the backend finds no path from ``x`` to the output (e.g. ``fn`` went through NumPy
    under TensorFlow); the backend's own exception where it refuses (JAX on a NumPy call).
    """
    import keras
    import numpy

    backend = keras.backend.backend()
    x = numpy.asarray(x, dtype="float32")
    if backend == "tensorflow":
        import tensorflow as tf

        v = tf.Variable(x)
        with tf.GradientTape() as tape:
            y = tf.reduce_sum(tf.convert_to_tensor(fn(v, **kwargs)))
        g = tape.gradient(y, v)
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        g = jax.grad(lambda t: jnp.sum(fn(t, **kwargs)))(jnp.asarray(x))
    elif backend == "torch":
        import torch

        t = torch.tensor(x, requires_grad=True)
        y = torch.sum(torch.as_tensor(fn(t, **kwargs)))
        g = torch.autograd.grad(y, t, allow_unused=True)[0] if y.requires_grad else None
    else:
        raise NotImplementedError(f"no input gradient for the {backend} backend")
    if g is None:
        return numpy.zeros(x.shape, dtype=numpy.float64)
    return numpy.asarray(keras.ops.convert_to_numpy(g), dtype=numpy.float64)


def input_gradient(fn: Callable[..., Any], x: Any, **kwargs: Any) -> np.ndarray:
    """d/dx of ``sum(fn(x, **kwargs))`` at ``x``, wherever ``fn`` lives (see the module's text).

    Parameters
    ----------
    fn : callable
        The student's function, or a handle on it in the student's kernel. What its assignment
        forbids it to call (:mod:`gradkit.forbid`, by its name) fails the test here too.
    x : array-like
        The point, any shape; used as float32.
    **kwargs
        Passed to ``fn``.

    Returns
    -------
    ndarray of float64, shape of ``x``
    """
    rule = forbid.rule_for(getattr(fn, "__name__", None))
    remote = getattr(fn, "gradient", None)
    if getattr(type(fn), "__gradkit_canonical__", None) is not None and remote is not None:
        return np.asarray(remote(np.asarray(x, dtype="float32"), forbid=rule, **kwargs), dtype=np.float64)
    if rule is None:
        return backend_gradient(fn, x, kwargs)
    return forbid.checked_call(rule, getattr(fn, "__name__", "your function"), backend_gradient, (fn, x, kwargs), {},
                               home=getattr(fn, "__globals__", None))
