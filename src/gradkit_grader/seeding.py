"""Per-submission seeds for hidden tests.

A hidden test that draws random inputs (tensors, slopes, data sets, initial
weights) derives its seed from the assignment's base seed (its tolerances) and
the code of the student functions under test, so no two students face the same
numbers, no answer can be hard-coded against one draw, and a regrade of the
same submission reproduces them exactly:

>>> from gradkit_grader.seeding import submission_seed
>>> def relu(x):
...     return max(x, 0)
>>> submission_seed(7, relu) == submission_seed(7, relu)
True
>>> submission_seed(7, relu) != submission_seed(8, relu)
True

The fingerprint of a function is its source text when Python can find it
(notebook cells run by an IPython kernel, files) and otherwise a digest of its
byte code, names and constants, which is the same in every process of one
Python version. Every statistical bound of a hidden test holds for any seed
(the assignment's NOTES.md states how), so which seed a submission gets changes nothing but
the numbers it is tested on.
"""
from __future__ import annotations

import hashlib
import inspect
import types
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["code_fingerprint", "submission_seed", "seed_note", "seed_in_failures"]

#: Seeds lie in [0, SEED_LIMIT): every Keras / NumPy / JAX seeding path accepts them.
SEED_LIMIT = 2**31 - 1


def _code_bytes(code: types.CodeType) -> bytes:
    """Byte code, names and constants of ``code`` (nested code objects recursively); no file
    names or line numbers, which differ between kernels."""
    parts = [code.co_code, repr(code.co_names).encode(), repr(code.co_varnames).encode()]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            parts.append(_code_bytes(const))
        elif isinstance(const, frozenset):  # iteration order depends on PYTHONHASHSEED
            parts.append(repr(sorted(map(repr, const))).encode())
        else:
            parts.append(repr(const).encode())
    return b"\x1f".join(parts)


def _canonical(obj: Any) -> bytes:
    """What the fingerprint of one object is computed from."""
    if obj is None:
        return b"<None>"
    if isinstance(obj, (str, int, float, bool)):  # a plain answer (a name, a number): its value
        return f"<{type(obj).__name__}:{obj!r}>".encode()
    remote = getattr(type(obj), "__gradkit_canonical__", None)
    if remote is not None:  # a function in the student's kernel: the kernel computes these bytes
        return remote(obj)
    target = inspect.unwrap(obj) if callable(obj) else obj
    try:
        return inspect.getsource(target).encode()
    except (OSError, TypeError):
        pass
    code = getattr(target, "__code__", None)
    if isinstance(code, types.CodeType):
        return _code_bytes(code)
    if isinstance(target, type):  # a class without findable source: its methods' code, by name
        return b"".join(name.encode() + _canonical(member) for name, member in sorted(vars(target).items())
                        if isinstance(member, (types.FunctionType, staticmethod, classmethod, property)))
    if isinstance(target, (staticmethod, classmethod)):
        return _canonical(target.__func__)
    if isinstance(target, property):
        return b"".join(_canonical(f) for f in (target.fget, target.fset) if f is not None)
    return f"<{type(target).__module__}.{type(target).__qualname__}>".encode()


def code_fingerprint(*objs: Any) -> str:
    """SHA-256 hex digest of the code of ``objs`` (functions, classes; None allowed), in order."""
    digest = hashlib.sha256()
    for obj in objs:
        digest.update(_canonical(obj))
        digest.update(b"\x00")
    return digest.hexdigest()


def submission_seed(base: int, *student_objs: Any) -> int:
    """The seed of a hidden test's random inputs for this submission.

    Parameters
    ----------
    base : int
        The assignment's base seed (``seed`` in ``course/<name>/tolerances.yml``).
    *student_objs : callable, str, number or None
        The student's functions / classes the test calls, or the plain values it reads (None where undefined).

    Returns
    -------
    int
        In ``[0, 2**31 - 1)``; the same for the same base and the same code.
    """
    if isinstance(base, bool) or not isinstance(base, int):
        raise TypeError(f"base seed must be an int, got {type(base).__name__}")
    digest = hashlib.sha256(f"gradkit:{base}:".encode() + code_fingerprint(*student_objs).encode()).digest()
    return int.from_bytes(digest[:8], "big") % SEED_LIMIT


def seed_note(seed: int) -> str:
    """The text every hidden-test message carries, so a regrade can be traced to its inputs."""
    return f"[hidden-test seed {seed}, derived from your code; a regrade of the same code uses it again]"


@contextmanager
def seed_in_failures(seed: int, *, echo: bool = False) -> Iterator[None]:
    """Put :func:`seed_note` into every ``AssertionError`` of the block, on a line of its own.

    Parameters
    ----------
    seed : int
        The test's seed (:func:`submission_seed`).
    echo : bool
        Also print the note when the block starts (it then shows in the test's output even when
        the test passes).

    Raises
    ------
    AssertionError
        Any AssertionError of the block (``student_call``'s timeouts and exceptions included), with
        the note appended unless its message carries it already (``gradkit grade`` reads
        "timeout after N s in f" at a line end, so the note goes on the next line).
    """
    note = seed_note(seed)
    if echo:
        print(note)
    try:
        yield
    except AssertionError as exc:
        msg = str(exc) or "AssertionError"
        if note in msg:
            raise
        raise AssertionError(f"{msg}\n{note}") from None
