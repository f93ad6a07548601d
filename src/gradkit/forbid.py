"""Forbidden calls: what a stub may not call while it runs (e.g. ``leaky_relu`` calling ``ops.leaky_relu``).

An assignment declares, per stub, the functions it forbids (``forbidden:`` in its tolerances.yml,
with the reason the notebook gives the student). A rule is a mapping

``calls``   name prefixes forbidden anywhere beneath the stub, at any depth of the call;
``direct``  name prefixes forbidden only where the submission's own code calls them (its functions
            share the stub's globals; frames of the callee's own top-level package in between, such
            as TensorFlow's dispatch wrappers, are looked through), so that a library the stub may
            use (``keras.ops.clip`` calls ``tf.clip_by_value``) can call them inside;
``reason``  one sentence for the student.

A function's name is its module's ``__name__`` and its code's qualified name, where it is defined
(``keras.ops.leaky_relu`` is ``keras.src.ops.nn.leaky_relu``); a builtin's is its ``__module__``
and ``__qualname__``. :func:`traced_call` runs the stub under a profiler (``sys.setprofile``, and
``threading.setprofile`` for threads it starts) and names what matched; :mod:`gradkit.guard`'s
``student_call`` fails the test with :func:`message`. In grading the same function runs in the
student's kernel, sent there as source by the harness: a stub that removes the profiler is
reported as calling ``sys.setprofile``. Code run through ``exec`` with other globals is not the
submission's own for ``direct``; ``calls`` still sees everything it calls.

:func:`forbidding` sets the rules of the assignment being graded, by stub name, for the calls that
do not pass one explicitly.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping

__all__ = ["traced_call", "checked_call", "forbidding", "rule_for", "message"]

_RULES: dict[str, Mapping[str, Any]] = {}


def traced_call(fn: Callable[..., Any], args: tuple, kwargs: dict, calls=(), direct=(),
                home: dict | None = None) -> tuple[Any, list[str]]:
    """``fn(*args, **kwargs)`` and the names of the forbidden functions it called, in call order.

    ``home`` is the submission's globals (default ``fn.__globals__``): calls from code with these
    globals are its own, for ``direct``. Self-contained (the harness sends its source to the
    student's kernel): imports inside.
    """
    import sys
    import threading

    calls, direct = tuple(calls), tuple(direct)
    home = home if home is not None else getattr(fn, "__globals__", None)
    seen: list[str] = []

    def profile(frame, event, arg):
        if event == "call":
            code = frame.f_code
            name = f"{frame.f_globals.get('__name__')}.{getattr(code, 'co_qualname', code.co_name)}"
            caller = frame.f_back
        elif event == "c_call":
            owner = getattr(arg, "__self__", None)
            module = getattr(arg, "__module__", None) or type(owner).__module__
            name = f"{module}.{getattr(arg, '__qualname__', getattr(arg, '__name__', '?'))}"
            caller = frame
        else:
            return
        if name.startswith(calls) or (direct and name.startswith(direct) and from_home(caller, name)):
            if name not in seen:
                seen.append(name)

    def from_home(caller, name):
        # through the callee's own package (dispatch wrappers) back to the first other frame: the submission's?
        top = name.split(".", 1)[0]
        while caller is not None and str(caller.f_globals.get("__name__")).split(".", 1)[0] == top:
            caller = caller.f_back
        return caller is not None and home is not None and caller.f_globals is home

    previous = sys.getprofile()
    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        result = fn(*args, **kwargs)
    finally:
        replaced = sys.getprofile() is not profile
        sys.setprofile(previous)
        threading.setprofile(None)
        if replaced:
            seen.append("sys.setprofile")
    return result, seen


def checked_call(rule: Mapping[str, Any], what: str, fn: Callable[..., Any], args: tuple, kwargs: dict,
                 home: dict | None = None) -> Any:
    """``fn(*args, **kwargs)`` under :func:`traced_call` with ``rule``; an ``AssertionError`` with
    :func:`message` (naming ``what``) when it made a call the rule forbids."""
    result, called = traced_call(fn, args, kwargs, rule.get("calls", ()), rule.get("direct", ()), home)
    if called:
        raise AssertionError(message(what, called, rule))
    return result


@contextmanager
def forbidding(rules: Mapping[str, Mapping[str, Any]] | None) -> Iterator[None]:
    """Within the block, :func:`rule_for` answers from ``rules`` (``{stub name: rule}``)."""
    global _RULES
    previous, _RULES = _RULES, dict(rules or {})
    try:
        yield
    finally:
        _RULES = previous


def rule_for(name: str | None) -> Mapping[str, Any] | None:
    """The rule of stub ``name`` set by :func:`forbidding`; None when it forbids nothing."""
    rule = _RULES.get(name) if name else None
    return rule if rule and (rule.get("calls") or rule.get("direct")) else None


def message(what: str, names: list[str], rule: Mapping[str, Any]) -> str:
    """The failed case's message: which call, and the rule's reason."""
    called = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{what} calls {called}, which this question forbids: {rule.get('reason', 'see the question')}"
