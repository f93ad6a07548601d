"""No callable of the student package answers a stub: each one, as the answer to each stub, earns no point.

Every public callable of :mod:`gradkit` (every name in a public module's ``__all__``, and every
callable value of its registries such as ``ACTIVATIONS``) stands in, one at a time, for every stub
of every assignment, its arguments adapted to the stub's by name and then by position; the rest of
the notebook is the solution. Each hidden test of the stub's question that takes the stub must fail,
under the stubs' forbidden calls as in grading (:mod:`gradkit.forbid`). The reference answers live in
``course/<name>/reference.py``, shipped in the assignment's autograder zip only.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import matplotlib.pyplot as plt
import pytest

import gradkit
from _masters import compiled_tests, master_parts, master_path, namespace
from gradkit.forbid import forbidding
from gradkit_grader.bands import clear_memo
from gradkit_tools.answers import prelude
from gradkit_tools.course import assignment, assignments, forbidden

COURSE = [a.name for a in assignments()]
P = inspect.Parameter


def student_callables() -> dict[str, object]:
    """``{qualified name: callable}`` of the student package, each object once."""
    modules = [gradkit] + [importlib.import_module(f"gradkit.{m.name}") for m in pkgutil.iter_modules(gradkit.__path__)
                           if not m.name.startswith("_")]
    found: dict[str, object] = {}
    seen: set[int] = set()
    for mod in modules:
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            items = [(f"{mod.__name__}.{name}", obj)]
            if isinstance(obj, dict):
                items = [(f"{mod.__name__}.{name}[{k!r}]", v) for k, v in obj.items()]
            for label, value in items:
                if callable(value) and id(value) not in seen:
                    seen.add(id(value))
                    found[label] = value
    return found


def adapt(candidate, stub):
    """``candidate`` with ``stub``'s name and signature: each of its parameters gets the stub's argument
    of the same name, else the next unused positional one; a required parameter left over raises."""
    stub_sig = inspect.signature(stub)
    positional = [p.name for p in stub_sig.parameters.values()
                  if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    try:
        params = list(inspect.signature(candidate).parameters.values())
    except (TypeError, ValueError):  # no signature: pass the stub's arguments through
        params = None

    def adapted(*args, **kwargs):
        bound = stub_sig.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        if params is None:
            return candidate(*args, **kwargs)
        used, cargs, ckw = set(), [], {}
        for p in params:
            if p.kind in (P.VAR_POSITIONAL, P.VAR_KEYWORD):
                continue
            if p.name in values:
                key = p.name
            elif p.kind != P.KEYWORD_ONLY and (rest := [n for n in positional if n not in used and n in values]):
                key = rest[0]
            elif p.default is P.empty:
                raise TypeError(f"nothing of {stub.__name__}'s arguments fits {p.name!r}")
            else:
                continue
            used.add(key)
            if p.kind == P.POSITIONAL_ONLY:
                cargs.append(values[key])
            else:
                ckw[p.name] = values[key]
        return candidate(*cargs, **ckw)

    adapted.__name__ = adapted.__qualname__ = stub.__name__
    return adapted


def _question_of(stub: str, solutions: dict[str, str]) -> str:
    """The question whose solution defines ``stub``."""
    (question,) = [q for q, src in solutions.items() if re.search(rf"^def {stub}\(", src, re.M)]
    return question


def _passes(test_fn, ns: dict) -> bool:
    try:
        test_fn(*[ns.get(p) for p in inspect.signature(test_fn).parameters])
    except Exception:  # noqa: BLE001 - otter's runner counts any exception as a failed case
        return False
    return True


@pytest.mark.parametrize("name", COURSE)
def test_no_callable_of_the_student_package_earns_points_for_a_stub(name):
    _, solutions, tests = master_parts(master_path(name))
    tests = compiled_tests(tests)
    solution = namespace(prelude(assignment(name)) + "\n", *solutions.values())
    hidden = {t: (q, fn) for t, (q, is_hidden, points, fn) in tests.items() if is_hidden and points}
    stubs = sorted({p for _, fn in hidden.values() for p in inspect.signature(fn).parameters
                    if inspect.isfunction(solution.get(p))})
    assert stubs, f"{name}: no stub found among the hidden tests' parameters"
    candidates = student_callables()
    assert len(candidates) > 40, sorted(candidates)
    earned = []
    with forbidding(forbidden(name)):
        for stub in stubs:
            question = _question_of(stub, solutions)
            its_tests = {t: fn for t, (q, fn) in hidden.items()
                         if q == question and stub in inspect.signature(fn).parameters}
            assert its_tests, f"{name}: no hidden test of {question} takes {stub}"
            for label, candidate in candidates.items():
                ns = {**solution, stub: adapt(candidate, solution[stub])}
                clear_memo()  # a banded test's cases share one value per candidate, not across candidates
                for test, fn in its_tests.items():
                    if _passes(fn, ns):
                        earned.append(f"{label} as {stub}: passes {test}")
                plt.close("all")
    clear_memo()
    assert not earned, f"{name}: the student package answers stubs:\n  " + "\n  ".join(earned)


def test_the_adapter_maps_by_name_then_position_and_refuses_what_it_cannot_fill():
    def stub(x, target_range, rtol=0.1):
        return None

    def by_name(rtol, x):
        return ("by name", rtol, x)

    def by_position(a, b, *, rtol=0.0):
        return ("by position", a, b, rtol)

    def needs_more(x, *, detector):
        return x

    assert adapt(by_name, stub)(1, 2) == ("by name", 0.1, 1)
    assert adapt(by_position, stub)(1, 2, rtol=3) == ("by position", 1, 2, 3)
    with pytest.raises(TypeError, match="detector"):
        adapt(needs_more, stub)(1, 2)
    assert adapt(by_name, stub).__name__ == "stub"


def test_the_screen_catches_an_answer(monkeypatch):
    """A student package that did export an answer (a3's reference is_collapsed) would be caught."""
    from gradkit_grader.course.a3_dying_relu import reference

    _, solutions, tests = master_parts(master_path("a3_dying_relu"))
    tests = compiled_tests(tests)
    solution = namespace(prelude(assignment("a3_dying_relu")) + "\n", *solutions.values())
    ns = {**solution, "is_collapsed": adapt(reference.constant_members, solution["is_collapsed"])}
    assert _passes(tests["test_is_collapsed_axis"][3], ns)
