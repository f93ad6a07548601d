"""Guards that hidden tests put around student code.

Otter runs hidden tests inside the student's kernel with no time limit, and a
``SystemExit`` or ``KeyboardInterrupt`` raised by student code aborts the whole
notebook's grading. :func:`student_call` turns each of these into an ordinary
``AssertionError`` that costs only the test that triggered it, with a message
a student can act on:

>>> from gradkit.guard import student_call
>>> student_call(lambda: 1 + 1, timeout_s=5, what="add")
2
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np

__all__ = ["StudentTimeout", "time_limit", "student_call", "assert_finite"]


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
                 what: str | None = None, **kwargs: Any) -> Any:
    """Call ``fn(*args, **kwargs)`` for a hidden test.

    Returns what ``fn`` returns. Raises ``AssertionError`` (so the case fails
    and other questions are still graded) when ``fn`` is missing, exceeds
    ``timeout_s``, raises ``SystemExit`` / ``KeyboardInterrupt``, or raises any
    other exception; the message names the function and what happened.
    """
    name = what or getattr(fn, "__name__", "your function")
    if fn is None or fn is Ellipsis or not callable(fn):
        raise AssertionError(f"{name} is not defined (or is not a function); define it and re-run its cell")
    try:
        with time_limit(timeout_s, what=name):
            return fn(*args, **kwargs)
    except StudentTimeout:
        raise
    except (SystemExit, KeyboardInterrupt) as exc:
        raise AssertionError(f"{name} raised {type(exc).__name__}; do not exit or interrupt inside graded code") from None
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

