"""Guards that tests put around student code: the public tests in a notebook and the hidden ones.

:func:`student_call` turns whatever a student's function does wrong -- raising, exiting
(``SystemExit``), running past its time limit -- into an ordinary ``AssertionError`` that costs
only the test that triggered it, with a message a student can act on. In a student's own notebook
(``grader.check``), in the unit tests and in the calibration the call is direct, under
``SIGALRM``, with the library functions a test compares with restored around it
(:func:`restore_libraries`). In grading the function is a handle on the student's kernel whose
type defines ``__gradkit_call__`` (:class:`gradkit_grader.remote.Remote`): the call crosses to the
kernel and the grading harness enforces the limit. This module is part of the student package
because the notebooks' public tests use it; it holds no answers.

>>> from gradkit.guard import student_call
>>> student_call(lambda: 1 + 1, timeout_s=5, what="add")
2
"""
from __future__ import annotations

import importlib
import signal
import sys
import threading
import types
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import numpy.testing

from gradkit import forbid

__all__ = ["StudentTimeout", "time_limit", "student_call", "assert_finite", "restore_libraries"]

#: Library functions hidden tests compare with. A submission that replaces one (``numpy.allclose =
#: lambda *a, **k: True``) gets it back before and after each of its calls (:func:`restore_libraries`).
_PROTECTED = {
    "numpy": ("allclose", "isclose", "array_equal", "array_equiv", "all", "any", "abs", "isfinite", "isnan",
              "asarray", "array", "ptp", "std", "var", "mean", "sum", "max", "min", "sort", "unique"),
    "numpy.testing": ("assert_allclose", "assert_array_equal", "assert_array_almost_equal", "assert_equal"),
    "math": ("isclose", "isfinite", "isnan", "sqrt", "log", "exp"),
    "builtins": ("abs", "all", "any", "isinstance", "len", "float", "int", "bool", "min", "max", "sum", "round",
                 "sorted", "callable", "hasattr", "getattr", "type", "range", "zip"),
}
_PRISTINE: dict[tuple[str, str], Any] = {}


def _snapshot() -> None:
    """Remember the protected functions, and every function of ``keras.ops`` once Keras is loaded."""
    for mod, names in _PROTECTED.items():
        m = sys.modules.get(mod) or importlib.import_module(mod)
        for name in names:
            _PRISTINE.setdefault((mod, name), getattr(m, name))
    ops = sys.modules.get("keras.ops")
    if ops is not None and ("keras.ops", "*") not in _PRISTINE:
        _PRISTINE[("keras.ops", "*")] = True
        for name, val in vars(ops).items():
            if callable(val) and getattr(val, "__module__", "") != "__main__":
                _PRISTINE[("keras.ops", name)] = val


_snapshot()  # at import: `gradkit grade` imports this module when the kernel starts, before any answer


def _planted(val: Any) -> bool:
    """A function defined by the notebook (module ``__main__``), not by a library."""
    return isinstance(val, (types.FunctionType, types.MethodType)) and getattr(val, "__module__", None) == "__main__"


def restore_libraries() -> list[str]:
    """Undo a submission's monkeypatching of what hidden tests rely on; return what was restored.

    Restores the functions of :data:`_PROTECTED` and ``keras.ops`` remembered when this module was
    first imported, and reloads gradkit modules in which the notebook planted a function. This
    matters where student code shares the process with the test (a student's own ``grader.check``);
    in grading it never does (:mod:`gradkit_grader.harness`).
    """
    _snapshot()
    restored = []
    for (mod, name), fn in _PRISTINE.items():
        m = sys.modules.get(mod)
        if name != "*" and m is not None and getattr(m, name, None) is not fn:
            setattr(m, name, fn)
            restored.append(f"{mod}.{name}")
    ops = sys.modules.get("keras.ops")
    for name, val in list(vars(ops).items()) if ops is not None else ():
        if _planted(val):  # planted before the snapshot: take the function from Keras' own modules
            for sub in [m for k, m in list(sys.modules.items()) if k.startswith("keras.src.ops.") and m is not None]:
                if callable(orig := getattr(sub, name, None)) and not _planted(orig):
                    setattr(ops, name, orig)
                    _PRISTINE[("keras.ops", name)] = orig
                    restored.append(f"keras.ops.{name}")
                    break
    for modname, m in _gradkit_modules():
        if any(_planted(v) for v in list(vars(m).values())):
            importlib.reload(m)
            restored.append(modname)
    return restored


_GRADKIT_MODULES: tuple[int, list] = (-1, [])


def _gradkit_modules() -> list:
    """``[(name, module)]`` of the loaded gradkit submodules but this one (rescanned when
    ``sys.modules`` changes size: a scan of thousands of modules per student call adds up)."""
    global _GRADKIT_MODULES
    if _GRADKIT_MODULES[0] != len(sys.modules):
        _GRADKIT_MODULES = (len(sys.modules), [(k, m) for k, m in list(sys.modules.items())
                                               if k.startswith(("gradkit.", "gradkit_grader."))
                                               and k != __name__ and m is not None])
    return _GRADKIT_MODULES[1]


class StudentTimeout(AssertionError):
    """Student code ran past its time limit (an AssertionError, so otter counts a failed case)."""


@contextmanager
def time_limit(seconds: float, what: str = "this test") -> Iterator[None]:
    """Raise :class:`StudentTimeout` ("timeout after N s") if the block runs longer.

    Uses ``SIGALRM`` where it can (main thread on POSIX, which is where an
    IPython kernel runs cells); elsewhere it runs the block unguarded, and the
    per-submission limit of ``gradkit grade`` is the backstop. Nested limits
    keep the tighter one.
    """
    if seconds is None or seconds <= 0 or not hasattr(signal, "SIGALRM") \
            or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _on_alarm(signum, frame):  # noqa: ARG001
        raise StudentTimeout(f"timeout after {seconds:g} s in {what}")

    previous = signal.signal(signal.SIGALRM, _on_alarm)
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    limit = seconds if remaining == 0 else min(seconds, remaining)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def student_call(fn: Callable[..., Any], *args: Any, timeout_s: float = 60.0,
                 what: str | None = None, forbid_as: str | None = None, **kwargs: Any) -> Any:
    """Call ``fn(*args, **kwargs)`` for a hidden test.

    Returns what ``fn`` returns. Raises ``AssertionError`` (so the case fails
    and other questions are still graded) when ``fn`` is missing, exceeds
    ``timeout_s``, raises ``SystemExit`` / ``KeyboardInterrupt``, or raises any
    other exception, or calls what its assignment forbids for it
    (:mod:`gradkit.forbid`, the rule of the stub named ``forbid_as``, default
    ``fn``'s name); the message names the function and what happened.
    """
    name = what or getattr(fn, "__name__", "your function")
    if fn is None or fn is Ellipsis or not callable(fn):
        raise AssertionError(f"{name} is not defined (or is not a function); define it and re-run its cell")
    rule = forbid.rule_for(forbid_as or getattr(fn, "__name__", None))
    hook = getattr(type(fn), "__gradkit_call__", None)
    if hook is not None:  # a function in the student's kernel: the harness guards the call
        return hook(fn, args, kwargs, timeout_s=timeout_s, what=name, forbid=rule)
    restore_libraries()
    try:
        try:
            with time_limit(timeout_s, what=name):
                if rule is None:
                    return fn(*args, **kwargs)
                return forbid.checked_call(rule, name, fn, args, kwargs)
        finally:  # what the call patched must not reach the test's comparisons
            restore_libraries()
    except StudentTimeout:
        raise
    except (SystemExit, KeyboardInterrupt) as exc:
        raise AssertionError(f"{name} raised {type(exc).__name__}; "
                             "do not exit or interrupt inside graded code") from None
    except AssertionError:
        raise
    except Exception as exc:  # the student's bug, reported as a failed case
        raise AssertionError(f"{name} raised {type(exc).__name__}: {exc}") from exc


def assert_finite(value: Any, what: str) -> np.ndarray:
    """Convert ``value`` to a float64 array and fail with a clear message on NaN/inf."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{what} is not numeric ({type(value).__name__}): {exc}") from None
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise AssertionError(f"{what} contains {bad} NaN/inf value(s); check for overflow or division by zero")
    return arr

