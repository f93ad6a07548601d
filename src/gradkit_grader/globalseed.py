"""Keras' global seeds, set before each model a hidden test builds, without flushing TensorFlow's caches in vain.

The statistics of the hidden tests set every global seed to the model's seed before they build or
train it (``keras.utils.set_random_seed``: Python's ``random``, NumPy's legacy generator, Keras'
global seed and ``SeedGenerator``, TensorFlow's global seed, torch's). TensorFlow's part,
``tf.random.set_seed``, also clears the eager context's kernel cache, so that a stateful random
kernel made before (``tf.random.normal`` and every other op with ``seed``/``seed2`` attributes, which
keeps its generator in the kernel) restarts its stream; every other cached kernel goes with it, and
the next model sets all of them up again. a4_resnet's gradient statistic (ten model pairs, a reseed
before each) took 5.26 s per run with the clear and 2.43 s without, the same value bit for bit
(course/a4_resnet/NOTES.md, Calibration speed).

:func:`set_global_seed` sets the same seeds to the same values and clears the cache only when a kernel
it would restart may exist: it watches the ops TensorFlow runs and builds (``op_callbacks``, from the
first call on) and clears when a stateful op with ``seed``/``seed2`` attributes ran eagerly since the
last clear, or a function holding one was called (one traced before the watch began too), and at every
call once a graph traced under the watch holds one. Keras 3
draws with stateless ops seeded by its ``SeedGenerator`` and gradkit with NumPy, so the harness's
models never need the clear. TensorFlow's op callbacks are per thread: a call from another thread than
the first one's sets the seeds as ``keras.utils.set_random_seed`` does. tests/test_globalseed.py.
"""
from __future__ import annotations

import random
import sys
import threading

import keras
import numpy as np

__all__ = ["set_global_seed"]

_LOCK = threading.Lock()
_KINDS: dict[str, bool] = {}  # op or function name -> whether it runs a stateful op with seed and seed2 attributes


class _Watch:
    """What the op callback saw since the last clear of TensorFlow's kernel cache, in the watched thread."""

    thread: int | None = None  # the thread whose ops are watched (None: not watching)
    eager = True  # a seeded stateful op ran eagerly since the last clear (True until the watch starts)
    traced = False  # a traced graph holds a seeded stateful op (its kernels may run again at any call)

    @classmethod
    def seeded(cls, op_type) -> bool:
        """Whether ``op_type`` is a stateful op with ``seed`` and ``seed2`` attributes, or a function (a traced
        graph called eagerly, maybe traced before the watch began) with one in it or in a function it calls."""
        name = op_type.decode() if isinstance(op_type, bytes) else str(op_type)
        known = _KINDS.get(name)
        if known is None:
            _KINDS[name] = known = _reaches_seeded(name, set())
        return known

    @classmethod
    def callback(cls, op_type, inputs, attrs, outputs, op_name=None, graph=None):  # noqa: ARG003 - TF's signature
        if cls.seeded(op_type):
            if graph is None:
                cls.eager = True
            else:
                cls.traced = True
        return None  # the op's outputs unchanged


def _lookup(name: str) -> bool | list[str]:
    """An op's answer (a stateful op with ``seed`` and ``seed2`` attributes), or the names a function's nodes
    run: their ops and the functions their attributes name (a call, a loop's body); False for an unknown name."""
    from tensorflow.python.eager import context
    from tensorflow.python.framework import op_def_registry

    op_def, ctx = op_def_registry.get(name), context.context()
    if op_def is not None:
        return bool(op_def.is_stateful and {"seed", "seed2"} <= {a.name for a in op_def.attr})
    if ctx.has_function(name):
        return [called for node in ctx.get_function_def(name).node_def
                for called in (node.op, *(v.func.name for v in node.attr.values() if v.HasField("func")))]
    return False


def _reaches_seeded(name: str, visiting: set[str]) -> bool:
    """Whether ``name`` is, or runs, a seeded stateful op (:func:`_lookup`, functions followed depth first).

    A name met again while it is being resolved (functions that call each other) counts as False on that path;
    the search from where it was first met covers the rest of its callees. So a function's False is exact only
    for the name the search started from, and only True results of the functions below it are kept in ``_KINDS``
    (an op's answer always is). A lookup that raises counts as seeded: raising here would fail the op itself.
    """
    known = _KINDS.get(name)
    if known is not None:
        return known
    if name in visiting:
        return False
    visiting.add(name)
    try:
        found = _lookup(name)
    except Exception:  # noqa: BLE001 - unknown counts as seeded
        found = True
    if isinstance(found, bool):
        _KINDS[name] = found
        return found
    known = any(_reaches_seeded(called, visiting) for called in found)
    if known:
        _KINDS[name] = True
    return known


def set_global_seed(seed: int) -> None:
    """``keras.utils.set_random_seed(seed)``, with TensorFlow's kernel cache cleared only when a seeded stateful
    random kernel may be in it (see the module's docstring).

    Parameters
    ----------
    seed : int
        As ``keras.utils.set_random_seed`` takes it (an ``int``; anything else raises ``ValueError``).
    """
    if not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r} of type {type(seed).__name__}")
    with _LOCK:
        clean = _Watch.thread == threading.get_ident() and not (_Watch.eager or _Watch.traced)
        if clean and _set_keeping_cache(seed):
            return
        keras.utils.set_random_seed(seed)  # clears the cache (where TensorFlow is installed)
        _start_watch()


def _start_watch() -> None:
    """Watch this thread's ops from now on (after a clear: nothing seeded is cached)."""
    if "tensorflow" not in sys.modules or _Watch.thread not in (None, threading.get_ident()):
        return
    try:
        from tensorflow.python.eager import context
        from tensorflow.python.framework import op_callbacks
    except ImportError:
        return
    if not context.executing_eagerly():
        return
    if _Watch.thread is None:
        op_callbacks.add_op_callback(_Watch.callback)
        _Watch.thread = threading.get_ident()
    _Watch.eager = False


def _set_keeping_cache(seed: int) -> bool:
    """What ``keras.utils.set_random_seed`` does, but TensorFlow's eager seed set without the cache clear;
    False (nothing set) where this cannot be done as Keras does it: not executing eagerly, or the private
    names it relies on moved."""
    try:
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED
        from tensorflow.python.eager import context
    except ImportError:
        return False
    ctx = context.context()
    if not context.executing_eagerly() or not all(hasattr(ctx, a) for a in ("_seed", "_rng")):
        return False
    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    ctx._seed, ctx._rng = seed, random.Random(seed)  # context.Context._set_global_seed, less its cache clear
    if keras.backend.backend() == "torch":
        import torch

        torch.manual_seed(seed)
    return True
