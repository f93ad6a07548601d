"""The student's initialiser called under guard, as every statistic of a2_init's hidden tests calls it."""
from __future__ import annotations

from typing import Any, Mapping

import keras
import numpy as np
from keras import ops

from gradkit.guard import assert_finite, student_call

__all__ = ["check_dtypes", "draws", "seeding_findings"]


def draws(fn: Any, what: str, calls: list[tuple], tol: Mapping, *, dtype: bool = True) -> list:
    """``[fn(shape, dtype="float32", seed=seed, **kw) for shape, seed[, kw] in calls]`` as float64 arrays,
    in ONE guarded call (time limit ``call_timeout_s`` for them all); fails on None, a dtype other than
    float32 (when ``dtype``), NaN/inf or the wrong shape."""
    out = student_call(lambda: [fn(c[0], dtype="float32", seed=c[1], **(c[2] if len(c) > 2 else {})) for c in calls],
                       timeout_s=tol["call_timeout_s"], what=what, forbid_as=what)
    arrays = []
    for (shape, *_), w in zip(calls, out):
        assert w is not None, f"{what} returned None: replace the ... by your code and return the tensor"
        if dtype and (got := keras.backend.standardize_dtype(getattr(w, "dtype", type(w)))) != "float32":
            raise AssertionError(f"{what}(shape, dtype='float32') returned dtype {got}")
        arrays.append(assert_finite(ops.convert_to_numpy(w), f"{what}{shape}"))
        assert arrays[-1].shape == shape, f"{what}{shape} returned shape {arrays[-1].shape}"
    return arrays


def check_dtypes(fn: Any, what: str, tol: Mapping, seed: int) -> None:
    """Fails unless ``fn((4, 3), seed=seed)`` is float32 (the default) and ``fn((4, 3), dtype="float16",
    seed=seed)`` is float16 (a dtype every backend has): the first check of every distribution test."""
    for kw, want in (({}, "float32"), ({"dtype": "float16"}, "float16")):
        out = student_call(fn, (4, 3), seed=seed, what=what, timeout_s=tol["call_timeout_s"], **kw)
        got = getattr(out, "dtype", None)
        got = type(out).__name__ if got is None else keras.backend.standardize_dtype(got)
        assert got == want, (
            f"{what}((4, 3){', dtype=' + repr(kw['dtype']) if kw else ''}) returned dtype {got}, expected {want}: "
            "pass `dtype` on to keras.random (its default is 'float32')")


def seeding_findings(what: str, first, again, other, s1: int, s2: int) -> list[tuple[float, str]]:
    """The two seeding checks of a distribution test, ``(p, message)`` with p = 0 or 1: ``first`` and
    ``again`` were drawn with seed ``s1`` and must be equal, ``other`` with ``s2`` and must differ."""
    return [(float(np.array_equal(first, again)), f"{what}: two calls with seed={s1} returned different "
             "tensors; pass seed=seed on to keras.random"),
            (float(not np.array_equal(first, other)), f"{what}: seeds {s1} and {s2} returned the same "
             "tensor; pass seed=seed on to keras.random")]
